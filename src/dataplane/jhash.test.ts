import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jhash2, flowHash, fold6, flowHash6, flowCacheHash6, vipFilterBit6, vipFilterWords6 } from './jhash';
import { bytesToIpv6 } from './abi';
import { repoRoot } from '../paths';
import { haveCc } from '../../test/support/cc';



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

test('IPv6 hashes: fold6 xors the host-order words; the flow hash is jhash over the folds, salted', () => {
  assert.equal(fold6('2001:2::5'), (0x20010002 ^ 5) >>> 0);
  assert.equal(fold6('::'), 0);
  assert.equal(flowHash6('2001:2:ff::1', '2001:2::10', 1234, 80, 6, 7),
    jhash2([fold6('2001:2:ff::1'), fold6('2001:2::10'), ((1234 << 16) | 80) >>> 0], (7 ^ 6 ^ 0x60000000) >>> 0));
  assert.equal(flowHash6('2001:2:ff::1', '2001:2::10', 0, 0, 58, 7), jhash2([fold6('2001:2:ff::1'), fold6('2001:2::10'), 58], (7 ^ 0x60000000) >>> 0));
  // A v6 flow whose folds equal a v4 flow's words hashes differently (the salt).
  assert.notEqual(flowHash6('::c612:1', '::c612:101', 1, 2, 6, 0), flowHash(0xc6120001, 0xc6120101, 1, 2, 6, 0));
  const words = vipFilterWords6(['2001:2::10', '2001:2::11']);
  for (const a of ['2001:2::10', '2001:2::11']) {
    const bit = vipFilterBit6(a);
    assert.ok((words[bit >>> 5] >>> (bit & 31)) & 1, a);
  }
  assert.throws(() => fold6('2001:2::g'), /not an IPv6 address/);
});

test('IPv6 hashes agree with bpf/hash6.h compiled by cc on 2000 random flows', { skip: !haveCc() && 'no C compiler' }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'xdplb-hash6-'));
  try {
    const src = path.join(dir, 'h6.c');
    writeFileSync(src, `#include <stdio.h>
#include <string.h>
#include <linux/types.h>
#include "${path.join(repoRoot(), 'bpf', 'lb_abi.h')}"
#include "${path.join(repoRoot(), 'bpf', 'jhash.h')}"
#include "${path.join(repoRoot(), 'bpf', 'hash6.h')}"
int main(void) {
  unsigned char s[16], d[16];
  unsigned sport, dport, proto, seed;
  char hs[40], hd[40];
  while (scanf("%32s %32s %u %u %u %u", hs, hd, &sport, &dport, &proto, &seed) == 6) {
    struct lb_flow_key6 k;
    for (int i = 0; i < 16; i++) { sscanf(hs + 2 * i, "%2hhx", &s[i]); sscanf(hd + 2 * i, "%2hhx", &d[i]); }
    memset(&k, 0, sizeof(k));
    memcpy(&k.saddr, s, 16); memcpy(&k.daddr, d, 16);
    k.sport = htons(sport); k.dport = htons(dport); k.proto = proto;
    printf("%u %u %u\\n", fold6(&k.saddr), flow_hash6(&k.saddr, &k.daddr, k.sport, k.dport, proto, seed), flow_cache_hash6(&k, seed));
  }
  return 0;
}
`);
    execFileSync('cc', ['-O1', '-include', 'arpa/inet.h', '-o', path.join(dir, 'h6'), src]);
    let x = 0x9abcdef1;
    const next = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
    const addr = () => { const b = Buffer.alloc(16); for (let i = 0; i < 4; i++) b.writeUInt32BE(next(), i * 4); return b; };
    const inputs = Array.from({ length: 2000 }, (_, i) => ({
      s: addr(), d: addr(), sport: next() & 0xffff, dport: next() & 0xffff, proto: [6, 17, 58][i % 3], seed: next(),
    }));
    const out = execFileSync(path.join(dir, 'h6'), {
      input: inputs.map((f) => `${f.s.toString('hex')} ${f.d.toString('hex')} ${f.sport} ${f.dport} ${f.proto} ${f.seed}`).join('\n') + '\n',
    }).toString().trim().split('\n');
    assert.equal(out.length, inputs.length);
    inputs.forEach((f, i) => {
      const [fold, h, hc] = out[i].split(' ').map(Number);
      assert.equal(fold6(f.s), fold, `fold6 ${bytesToIpv6(f.s)}`);
      assert.equal(flowHash6(f.s, f.d, f.sport, f.dport, f.proto, f.seed), h, `flowHash6 #${i}`);
      assert.equal(flowCacheHash6(bytesToIpv6(f.s), bytesToIpv6(f.d), f.sport, f.dport, f.proto, f.seed), hc, `flowCacheHash6 #${i}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
