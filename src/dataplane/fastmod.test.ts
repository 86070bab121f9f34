/**
 * bpf/fastmod.h (the Maglev slot of a flow hash without a division for the default table size)
 * compiled natively and compared with `%`: every remainder at and around every multiple of the
 * table size over the whole u32 range (where a fixed-point remainder goes wrong first), the
 * range's ends, and a million pseudo-random hashes; the general fastmod_u32 for other primes
 * (the largest table, a 32-bit prime) likewise. A sample of results is also checked here in JS,
 * so the comparison itself is not taken on the C program's word.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '../paths';
import { haveCc } from '../../test/support/cc';
import { LB } from './abi';


const PROGRAM = `#include <stdio.h>
#include <stdint.h>
#include <linux/types.h>
#include "${path.join(repoRoot(), 'bpf', 'lb_abi.h')}"
#include "${path.join(repoRoot(), 'bpf', 'fastmod.h')}"

static unsigned long checked, wrong;
static uint32_t x = 0x2545f491;
static uint32_t next(void) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x; }

/* slot(n) against n % d for one n */
#define CHECK(expr, n, d) do { uint32_t n_ = (n); checked++; if ((expr) != n_ % (d)) { wrong++; if (wrong < 5) printf("wrong %u %u\\n", n_, (d)); } } while (0)

static void sweep(uint32_t d, int slot) {
  uint64_t c = FASTMOD_C(d);
#define ONE(n) do { if (slot) CHECK(maglev_slot(n_, d), (n), d); else CHECK(fastmod_u32(n_, d, c), (n), d); } while (0)
  for (uint64_t m = 0; m <= 0xffffffffULL; m += d)
    for (int k = -2; k <= 2; k++) {
      int64_t n = (int64_t)m + k;
      if (n >= 0 && n <= 0xffffffffLL) { uint32_t n_ = (uint32_t)n; ONE(n_); }
    }
  for (uint32_t k = 0; k < 64; k++) { uint32_t n_ = 0xffffffffu - k; ONE(n_); n_ = k; ONE(n_); }
  for (int i = 0; i < 1000000; i++) { uint32_t n_ = next(); ONE(n_); }
}

int main(void) {
  static const uint32_t primes[] = { 13, 251, 65537, 131071, 1048573, 4294967291u };
  sweep(LB_MAGLEV_DEFAULT_SIZE, 1);     /* maglev_slot at the default size: the fastmod path */
  sweep(251, 1);                        /* maglev_slot at another size: the division */
  for (unsigned i = 0; i < sizeof(primes) / sizeof(primes[0]); i++) sweep(primes[i], 0);
  printf("checked %lu wrong %lu\\n", checked, wrong);
  /* a sample for the JS side: n, maglev_slot(n, default) */
  x = 7;
  for (int i = 0; i < 1000; i++) { uint32_t n = next(); printf("%u %u\\n", n, maglev_slot(n, LB_MAGLEV_DEFAULT_SIZE)); }
  return 0;
}
`;

test('fastmod.h: maglev_slot and fastmod_u32 equal % around every multiple, at the ends and on 1e6 random hashes', { skip: !haveCc() && 'no C compiler' }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'xdplb-fastmod-'));
  try {
    const src = path.join(dir, 'fm.c');
    writeFileSync(src, PROGRAM);
    execFileSync('cc', ['-O2', '-o', path.join(dir, 'fm'), src]);
    const lines = execFileSync(path.join(dir, 'fm'), { maxBuffer: 16 << 20 }).toString().trim().split('\n');
    const summary = lines.shift()!;
    const m = /^checked (\d+) wrong (\d+)$/.exec(summary);
    assert.ok(m, `C program output: ${summary}`);
    assert.equal(Number(m[2]), 0, summary);
    // 8 sweeps of ~(2^32 / d) * 5 + 128 + 1e6 checks: the sweeps really ran.
    assert.ok(Number(m[1]) > 8_000_000, summary);
    assert.equal(lines.length, 1000);
    for (const line of lines) {
      const [n, slot] = line.split(' ').map(Number);
      assert.equal(slot, n % LB.MAGLEV_DEFAULT_SIZE, `maglev_slot(${n})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
