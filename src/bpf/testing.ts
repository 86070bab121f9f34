/** Helpers for the bridge's kernel tests: testdata objects, frames, and a veth pair in a netns. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './native';

/** Path of bpf/testdata/NAME.o (built by `make -C bpf`). */
export function testdataObject(name: string): string {
  return path.join(repoRoot(), 'bpf', 'testdata', `${name}.o`);
}

/** A 64-byte frame whose byte 14 is `slot` (what bridge.bpf.c's programs read). */
export function frame(slot: number): Buffer {
  const buf = Buffer.alloc(64);
  buf[14] = slot;
  return buf;
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

export function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Creates netns `ns` holding a veth pair `a` <-> `b` (both up). Returns the cleanup, which deletes
 * the namespace (and with it the pair) and tolerates it being gone already.
 */
export function createVethNetns(ns: string, a: string, b: string): () => void {
  const cleanup = (): void => {
    try {
      ip('netns', 'del', ns);
    } catch {
      /* already gone */
    }
  };
  cleanup();
  try {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    ip('-n', ns, 'link', 'set', a, 'up');
    ip('-n', ns, 'link', 'set', b, 'up');
  } catch (err) {
    cleanup();
    throw err;
  }
  return cleanup;
}

/** Where the bridge's tests pin (bpffs). */
export const PIN_DIR = '/sys/fs/bpf/xlbt-br';

/**
 * Creates PIN_DIR (empty) and returns a cleanup that removes it with whatever is pinned inside.
 * @throws Error when bpffs is not mounted at /sys/fs/bpf (run scripts/setup.sh).
 */
export function freshPinDir(): () => void {
  const mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
  if (!/ \/sys\/fs\/bpf bpf /.test(mounts)) throw new Error('bpffs is not mounted at /sys/fs/bpf: run scripts/setup.sh');
  const cleanup = (): void => fs.rmSync(PIN_DIR, { recursive: true, force: true });
  cleanup();
  fs.mkdirSync(PIN_DIR);
  return cleanup;
}

/** Cpus_allowed_list of the calling thread. */
export function threadCpus(): string {
  const status = fs.readFileSync('/proc/thread-self/status', 'utf8');
  return /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1] ?? '';
}

/**
 * The process's open fds as "fd -> target", without those of tsx's compile cache (tsx opens them
 * asynchronously while modules load, which would make a leak check flaky when run through tsx).
 */
export function fdSnapshot(): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let target = '';
    try {
      target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the directory fd of readdirSync itself, already closed
    }
    if (/\/tsx-\d+/.test(target)) continue;
    out.push(`${fd} -> ${target}`);
  }
  return out.sort();
}

/** Fails listing the fds opened since `before` (and those closed, which would hide a leak). */
export function assertNoFdLeak(before: string[], what: string): void {
  const now = fdSnapshot();
  const opened = now.filter((x) => !before.includes(x));
  const closed = before.filter((x) => !now.includes(x));
  if (opened.length || closed.length) {
    throw new Error(`${what}: fd leak; opened ${JSON.stringify(opened)}, closed ${JSON.stringify(closed)}`);
  }
}
