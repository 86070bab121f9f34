/**
 * What every kernel-backed test file needs before it starts: whether this machine can run it
 * (root, bpffs, the built object), and a free loopback port. Under CI=true a test that would
 * skip for a reason this machine should not have fails instead, so a broken probe or a missing
 * install step cannot hide behind a skip.
 */
import fs from 'node:fs';
import net from 'node:net';
import { repoPath } from '../../src/daemon/paths';

/** Why kernel tests (netns, XDP, bpffs, the built lb.o) cannot run here, or null. */
export function whyKernelTestsCannotRun(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (netns, XDP, bpffs)';
  if (!fs.readFileSync('/proc/mounts', 'utf8').includes(' /sys/fs/bpf bpf ')) return 'bpffs is not mounted at /sys/fs/bpf (run scripts/setup.sh)';
  if (!fs.existsSync(repoPath('bpf/lb.o'))) return 'bpf/lb.o is not built (run scripts/build.sh)';
  return null;
}

/**
 * The skip reason for a describe() block (false = run it).
 * @throws Error under CI=true when the tests would be skipped: CI has everything they need.
 */
export function kernelTestSkip(what: string): string | false {
  const reason = whyKernelTestsCannotRun();
  if (reason && process.env.CI === 'true') throw new Error(`${what} cannot run in CI: ${reason}`);
  return reason ?? false;
}

/** A TCP port free on 127.0.0.1 right now (for host forwards and test servers). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
