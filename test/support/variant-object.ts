/**
 * Another build of bpf/lb.bpf.c for the upgrade tests (a daemon that replaces the pinned program
 * in place): the same source compiled for BPF ISA v2, where bpf/Makefile builds v3 (other jump
 * and ALU instructions, so another program tag).
 */
import os from 'node:os';
import path from 'node:path';
import { run } from '../../src/lab/netns';
import { repoPath } from '../../src/daemon/paths';

/** Compiles the variant into `dir` and returns its path. @throws when clang fails */
export function buildVariantObject(dir: string): string {
  const out = path.join(dir, 'lb-v2.o');
  const arch = os.arch() === 'arm64' ? 'arm64' : 'x86';
  const multiarch = os.arch() === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  run('clang', ['-O2', '-g', '-target', 'bpf', '-mcpu=v2', '-Wall', '-Werror', `-D__TARGET_ARCH_${arch}`, `-I/usr/include/${multiarch}`,
    `-I${repoPath('bpf')}`, '-c', repoPath('bpf/lb.bpf.c'), '-o', out], { timeoutMs: 120_000 });
  return out;
}
