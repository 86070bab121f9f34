import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jhash2, flowHash } from './jhash';
import { repoRoot } from '../paths';


function haveCc(): boolean {
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('jhash2 matches vectors of the kernel-style lookup3 (from bpf/jhash.h built natively)', () => {
  assert.equal(jhash2([1, 2, 3], 0), 2757843189);
  assert.equal(jhash2([1, 2, 3, 4], 0), 1716064838);
  assert.equal(jhash2([0xc6120001, 0xc6120101, ((1234 << 16) | 80) >>> 0, 6], 0x9e3779b9), 3042556186);
  assert.equal(flowHash(0xc6120001, 0xc6120101, 1234, 80, 6, 0x9e3779b9), jhash2([0xc6120001, 0xc6120101, ((1234 << 16) | 80) >>> 0], (0x9e3779b9 ^ 6) >>> 0));
  assert.equal(flowHash(0xc6120001, 0xc6120101, 0, 0, 1, 42), jhash2([0xc6120001, 0xc6120101, 1], 42));
});

test('jhash2 refuses words that are not u32', () => {
  assert.throws(() => jhash2([-1], 0), /not a u32/);
  assert.throws(() => jhash2([2 ** 32], 0), /not a u32/);
});

test('jhash2 agrees with bpf/jhash.h compiled by cc on 2000 random inputs', { skip: !haveCc() && 'no C compiler' }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'xdplb-jhash-'));
  try {
    const src = path.join(dir, 'jh.c');
    writeFileSync(src, `#include <stdio.h>
#include <stdlib.h>
#include <linux/types.h>
#include "${path.join(repoRoot(), 'bpf', 'jhash.h')}"
int main(void) {
  unsigned a, b, c, d, seed;
  while (scanf("%u %u %u %u %u", &a, &b, &c, &d, &seed) == 5)
    printf("%u %u\\n", jhash_3words(a, b, c, seed), jhash_4words(a, b, c, d, seed));
  return 0;
}
`);
    execFileSync('cc', ['-O1', '-o', path.join(dir, 'jh'), src]);
    let x = 0x12345678;
    const next = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
    const inputs = Array.from({ length: 2000 }, () => [next(), next(), next(), next(), next()]);
    const out = execFileSync(path.join(dir, 'jh'), { input: inputs.map((i) => i.join(' ')).join('\n') + '\n' })
      .toString().trim().split('\n');
    assert.equal(out.length, inputs.length);
    inputs.forEach(([a, b, c, d, seed], i) => {
      const [h3, h4] = out[i].split(' ').map(Number);
      assert.equal(jhash2([a, b, c], seed), h3, `3 words ${[a, b, c, seed]}`);
      assert.equal(jhash2([a, b, c, d], seed), h4, `4 words ${[a, b, c, d, seed]}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
