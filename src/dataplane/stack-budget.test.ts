/**
 * The verifier limits the combined stack of a BPF-to-BPF call chain to 512 bytes. bpf/lb.bpf.c
 * (IPv4 + IPv6, several __noinline subprograms) must load whatever instruction set it is built
 * for (-mcpu=v1, v2, v3: the daemon test and users build variants) with headroom: each build is
 * loaded into the kernel here (the verifier's refusal is the failure message), and the per-function
 * stack sizes (llvm-readelf --stack-sizes) summed over the deepest call chain from xdp_lb
 * (llvm-objdump's calls) stay <= STACK_BUDGET. Builds go to a temp dir; nothing is pinned or
 * attached.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { BpfObject, BpfError, repoRoot } from '../bpf';
import { lbLoadOptions } from './load-options';
import { kernelTestSkip } from '../../test/support/kernel-env';

/** 512 (the verifier's limit) less 64 bytes of headroom for the next change. */
const STACK_BUDGET = 448;
const CPUS = ['v1', 'v2', 'v3'] as const;

function has(tool: string): boolean {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Per-function stack sizes of an object built with -fstack-size-section. */
export function parseStackSizes(text: string): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const m of text.matchAll(/^\s*(\d+)\s+([A-Za-z_]\w*)\s*$/gm)) sizes.set(m[2], Number(m[1]));
  return sizes;
}

/**
 * Caller -> callees of BPF-to-BPF calls (`call` with src_reg 1, "85 10 ..." in the raw bytes),
 * from `llvm-objdump -dr`: a call to a static function in another section is relocated against
 * the section (target instruction imm + 1), a global one against its symbol; an unrelocated call
 * is pc-relative.
 */
export function parseCallGraph(text: string): Map<string, Set<string>> {
  const starts = new Map<string, string>();   // "section:insn" -> function
  const calls: Array<{ section: string; from: string; insn: number; imm: number; reloc?: string }> = [];
  let section = '';
  let fn = '';
  for (const line of text.split('\n')) {
    let m = /^Disassembly of section (.*):$/.exec(line);
    if (m) { section = m[1]; continue; }
    m = /^([0-9a-f]+) <([^>]+)>:$/.exec(line);
    if (m) {
      if (!m[2].startsWith('LBB')) {
        fn = m[2];
        starts.set(`${section}:${parseInt(m[1], 16) / 8}`, fn);
      }
      continue;
    }
    m = /^\s*(\d+):\s+85 10 (?:[0-9a-f]{2}\s+){6}call (-?\d+)/.exec(line);
    if (m) { calls.push({ section, from: fn, insn: Number(m[1]), imm: Number(m[2]) }); continue; }
    m = /R_BPF_64_32\s+(\S+)/.exec(line);
    if (m && calls.length > 0 && calls[calls.length - 1].reloc === undefined) calls[calls.length - 1].reloc = m[1];
  }
  const graph = new Map<string, Set<string>>();
  for (const c of calls) {
    let to: string | undefined;
    if (c.reloc === undefined) to = starts.get(`${c.section}:${c.insn + c.imm + 1}`);
    else if (c.reloc.startsWith('.')) to = starts.get(`${c.reloc}:${c.imm + 1}`);
    else to = c.reloc;
    if (to === undefined) throw new Error(`call at ${c.section}:${c.insn} in ${c.from}: target not found`);
    if (!graph.has(c.from)) graph.set(c.from, new Set());
    graph.get(c.from)!.add(to);
  }
  return graph;
}

/** The call chain from `root` with the largest sum of stack sizes (BPF has no recursion). */
export function deepestChain(root: string, graph: Map<string, Set<string>>, sizes: Map<string, number>): { chain: string[]; bytes: number } {
  const own = (f: string) => {
    const s = sizes.get(f);
    if (s === undefined) throw new Error(`no stack size for ${f}`);
    return s;
  };
  const walk = (f: string, seen: string[]): { chain: string[]; bytes: number } => {
    if (seen.includes(f)) throw new Error(`recursion through ${f}`);
    let best = { chain: [] as string[], bytes: 0 };
    for (const callee of graph.get(f) ?? []) {
      const sub = walk(callee, [...seen, f]);
      if (sub.bytes > best.bytes || best.chain.length === 0) best = sub;
    }
    return { chain: [f, ...best.chain], bytes: own(f) + best.bytes };
  };
  return walk(root, []);
}

test('deepestChain and parseCallGraph on a hand-made listing', () => {
  const listing = [
    'Disassembly of section .text:', '', '0000000000000000 <leaf>:', '       0:\t95 00 00 00 00 00 00 00\texit',
    '0000000000000008 <mid>:', '       1:\t85 10 00 00 fe ff ff ff\tcall -2', '       2:\t95 00 00 00 00 00 00 00\texit',
    'Disassembly of section xdp:', '', '0000000000000000 <root>:',
    '       0:\t85 10 00 00 ff ff ff ff\tcall -1', '\t\t0000000000000000:  R_BPF_64_32\t.text',
    '       1:\t85 10 00 00 00 00 00 00\tcall 0', '\t\t0000000000000008:  R_BPF_64_32\t.text',
    '       2:\t85 10 00 00 ff ff ff ff\tcall -1', '\t\t0000000000000010:  R_BPF_64_32\tglobal_fn',
    '       3:\t85 00 00 00 01 00 00 00\tcall 1',
  ].join('\n');
  const g = parseCallGraph(listing);
  assert.deepEqual([...g.get('root')!].sort(), ['global_fn', 'leaf', 'mid'], 'section-relative, global and no helper calls');
  assert.deepEqual([...g.get('mid')!], ['leaf'], 'a pc-relative call');
  const sizes = new Map([['root', 100], ['mid', 50], ['leaf', 30], ['global_fn', 60]]);
  assert.deepEqual(deepestChain('root', g, sizes), { chain: ['root', 'mid', 'leaf'], bytes: 180 });
  sizes.set('global_fn', 90);
  assert.deepEqual(deepestChain('root', g, sizes), { chain: ['root', 'global_fn'], bytes: 190 });
  assert.deepEqual(parseStackSizes('         Size     Functions\n          232     xdp_lb\n            0     csum_region\n'),
    new Map([['xdp_lb', 232], ['csum_region', 0]]));
});

const noClang = has('clang') ? false : 'clang is not installed';
if (noClang && process.env.CI === 'true') throw new Error('stack budget tests cannot run in CI: clang is not installed');

describe('bpf/lb.bpf.c stack budget per -mcpu', { skip: noClang || kernelTestSkip('stack budget tests') }, () => {
  let dir = '';
  const objects = new Map<string, string>();

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdplb-stack-'));
    const arch = os.arch() === 'arm64' ? 'arm64' : 'x86';
    const triple = os.arch() === 'arm64' ? 'aarch64' : 'x86_64';
    for (const cpu of CPUS) {
      const out = path.join(dir, `lb-${cpu}.o`);
      // The flags of bpf/Makefile, with the instruction set and the stack-size section.
      execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-mcpu=${cpu}`, '-Wall', '-Werror', `-D__TARGET_ARCH_${arch}`,
        `-I/usr/include/${triple}-linux-gnu`, '-I', path.join(repoRoot(), 'bpf'), '-fstack-size-section',
        '-c', path.join(repoRoot(), 'bpf', 'lb.bpf.c'), '-o', out], { stdio: ['ignore', 'ignore', 'pipe'] });
      objects.set(cpu, out);
    }
  });

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const cpu of CPUS) {
    test(`-mcpu=${cpu}: the verifier loads it`, () => {
      let object: BpfObject | undefined;
      try {
        object = BpfObject.load(objects.get(cpu)!, lbLoadOptions({ hashSeed: 0, flowSets: 64 }));
      } catch (e) {
        // The verifier's own last words (not libbpf's lines nor the instruction count).
        const log = e instanceof BpfError && e.verifierLog
          ? e.verifierLog.split('\n').map((l) => l.trim()).filter((l) => l && !/^(libbpf:|processed \d+ insns|-- END)/.test(l)).slice(-2).join(' | ')
          : '';
        assert.fail(`-mcpu=${cpu} build refused by the verifier: ${log || (e as Error).message}`);
      } finally {
        object?.close();
      }
    });

    test(`-mcpu=${cpu}: the deepest call chain's stack stays <= ${STACK_BUDGET} bytes`, (t) => {
      if (!has('llvm-readelf') || !has('llvm-objdump')) {
        t.skip('llvm-readelf or llvm-objdump is not installed: stack sizes not checked');
        return;
      }
      const obj = objects.get(cpu)!;
      const sizes = parseStackSizes(execFileSync('llvm-readelf', ['--stack-sizes', obj], { encoding: 'utf8' }));
      const graph = parseCallGraph(execFileSync('llvm-objdump', ['-dr', obj], { encoding: 'utf8', maxBuffer: 64 << 20 }));
      // Not vacuous: the FIB leaves of both families and icmp6_to_vip (with its own callees) are
      // subprograms under xdp_lb (the IPv6 path itself is inlined: a call costs ~18 ns).
      const shownGraph = JSON.stringify([...graph].map(([f, c]) => [f, [...c]]));
      for (const leaf of ['nat_forward_fib', 'nat66_forward_fib', 'icmp6_to_vip']) assert.ok(graph.get('xdp_lb')?.has(leaf), `xdp_lb calls ${leaf}; graph ${shownGraph}`);
      assert.ok((graph.get('icmp6_to_vip')?.size ?? 0) > 0, `icmp6_to_vip calls subprograms; graph ${shownGraph}`);
      const deepest = deepestChain('xdp_lb', graph, sizes);
      assert.ok(deepest.chain.length >= 3, `a chain of three frames at least: ${deepest.chain.join(' -> ')}`);
      const shown = deepest.chain.map((f) => `${f} ${sizes.get(f)}`).join(' -> ');
      t.diagnostic(`-mcpu=${cpu}: ${shown} = ${deepest.bytes}`);
      assert.ok(deepest.bytes <= STACK_BUDGET, `-mcpu=${cpu}: ${shown} = ${deepest.bytes} bytes > ${STACK_BUDGET}`);
    });
  }
});
