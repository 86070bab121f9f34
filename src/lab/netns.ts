/**
 * Thin wrappers over `ip`, `sysctl` and `ethtool` for the lab. The lab may shell out (it is not
 * the daemon); every call is synchronous, argument-vector based (no shell) and names its command
 * in the error it throws.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';

export interface RunResult { status: number; stdout: string; stderr: string }

/**
 * Runs a command without a shell and returns its output.
 * @throws Error carrying the command line and its stderr when it exits non-zero (unless allowFail).
 */
export function run(command: string, args: string[], options: { allowFail?: boolean; input?: string; timeoutMs?: number } = {}): RunResult {
  const result = spawnSync(command, args, {
    encoding: 'utf8', input: options.input, timeout: options.timeoutMs ?? 30_000, stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (result.error) {
    if (options.allowFail) return { status: -1, stdout: '', stderr: String(result.error.message) };
    throw new Error(`${command} ${args.join(' ')}: ${result.error.message}`);
  }
  const out: RunResult = { status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
  if (out.status !== 0 && !options.allowFail) {
    throw new Error(`${command} ${args.join(' ')} failed (exit ${out.status}): ${out.stderr.trim() || out.stdout.trim()}`);
  }
  return out;
}

/** Runs `ip ARGS` inside a namespace (`ip -n NS ...`). @throws Error when ip fails. */
export function ipIn(netns: string, args: string[], options: { allowFail?: boolean } = {}): RunResult {
  return run('ip', ['-n', netns, ...args], options);
}

/** Runs any command inside a namespace (`ip netns exec NS CMD...`). @throws Error when it fails. */
export function execIn(netns: string, command: string[], options: { allowFail?: boolean; timeoutMs?: number } = {}): RunResult {
  return run('ip', ['netns', 'exec', netns, ...command], options);
}

/** Names of every network namespace on the host (`ip netns list`). */
export function listNetns(): string[] {
  const out = run('ip', ['-j', 'netns', 'list'], { allowFail: true });
  if (out.status !== 0 || out.stdout.trim() === '') return [];
  return (JSON.parse(out.stdout) as Array<{ name: string }>).map((n) => n.name);
}

export function netnsExists(netns: string): boolean {
  return existsSync(`/run/netns/${netns}`);
}

/** Creates a namespace unless it exists, with `lo` up. @throws Error when ip fails. */
export function ensureNetns(netns: string): boolean {
  const created = !netnsExists(netns);
  if (created) run('ip', ['netns', 'add', netns]);
  ipIn(netns, ['link', 'set', 'lo', 'up']);
  return created;
}

/** Deletes a namespace by name if it exists. @throws Error when ip fails. */
export function deleteNetns(netns: string): boolean {
  if (!netnsExists(netns)) return false;
  run('ip', ['netns', 'del', netns]);
  return true;
}

/** Pids of processes whose network namespace is this one (`ip netns pids`). */
export function netnsPids(netns: string): number[] {
  if (!netnsExists(netns)) return [];
  const out = run('ip', ['netns', 'pids', netns], { allowFail: true });
  return out.stdout.split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 0);
}

export interface LinkInfo {
  ifname: string; ifindex: number; address?: string; operstate?: string; flags?: string[];
  link?: string; link_netnsid?: number; master?: string;
  xdp?: { mode: number; prog?: { id: number }; attached?: Array<{ mode: number; prog: { id: number } }> };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; tentative?: boolean; dadfailed?: boolean }>;
}

/** `ip -j -d addr` of a namespace (links with addresses and XDP state); [] when it does not exist. */
export function linksIn(netns: string): LinkInfo[] {
  if (!netnsExists(netns)) return [];
  const out = ipIn(netns, ['-j', '-d', 'addr', 'show'], { allowFail: true });
  if (out.status !== 0 || !out.stdout.trim()) return [];
  return JSON.parse(out.stdout) as LinkInfo[];
}

export function linkIn(netns: string, ifname: string): LinkInfo | undefined {
  return linksIn(netns).find((l) => l.ifname === ifname);
}

/** Writes a sysctl inside a namespace. @throws Error when it fails. */
export function sysctlIn(netns: string, key: string, value: string | number): void {
  execIn(netns, ['sysctl', '-q', '-w', `${key}=${value}`]);
}

/** Reads a sysctl inside a namespace (trimmed), or undefined when it cannot be read. */
export function readSysctlIn(netns: string, key: string): string | undefined {
  const out = execIn(netns, ['sysctl', '-n', key], { allowFail: true });
  return out.status === 0 ? out.stdout.trim() : undefined;
}

/** Which tool can toggle interface offloads here: ethtool, a python3 ioctl fallback, or none. */
function offloadTool(): 'ethtool' | 'python3' | undefined {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin']) {
    if (existsSync(`${dir}/ethtool`)) return 'ethtool';
  }
  return run('python3', ['-c', 'import fcntl, ctypes'], { allowFail: true }).status === 0 ? 'python3' : undefined;
}

// The legacy SIOCETHTOOL commands (ETHTOOL_SGRO = 0x2c, ETHTOOL_STXCSUM = 0x17) set exactly the
// two features the lab needs, for machines where ethtool is not installed yet.
const ETHTOOL_IOCTL_PY = `
import ctypes, fcntl, socket, struct, sys
name, cmd, val = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3])
buf = ctypes.create_string_buffer(struct.pack('II', cmd, val), 8)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
fcntl.ioctl(s, 0x8946, struct.pack('16sP', name.encode(), ctypes.addressof(buf)))
`;

export type Offload = 'gro' | 'tx-checksum';

/**
 * Turns an offload of a lab interface on or off, inside its namespace.
 * Why the lab needs it: XDP_REDIRECT/XDP_TX into a veth is dropped unless the receiving peer
 * runs NAPI (GRO on), and a frame redirected by XDP loses CHECKSUM_PARTIAL, so senders whose
 * packets cross the XDP program must compute TCP/UDP checksums in software (tx checksum off).
 * @throws Error when neither ethtool nor python3 is available, or the change fails.
 */
export function setOffload(netns: string, ifname: string, offload: Offload, on: boolean): void {
  const tool = offloadTool();
  const viaIoctl = () => execIn(netns, ['python3', '-c', ETHTOOL_IOCTL_PY, ifname, offload === 'gro' ? '0x2c' : '0x17', on ? '1' : '0']);
  if (tool === 'ethtool') {
    const result = execIn(netns, ['ethtool', '-K', ifname, offload === 'gro' ? 'gro' : 'tx', on ? 'on' : 'off'], { allowFail: true });
    if (result.status === 0) return;
    // Some ethtool versions exit non-zero when nothing needed changing; the ioctl is the judge.
    if (run('python3', ['-c', 'import fcntl, ctypes'], { allowFail: true }).status === 0) return void viaIoctl();
    throw new Error(`ethtool -K ${ifname} in ${netns} failed (exit ${result.status}): ${result.stderr.trim()}`);
  }
  if (tool === 'python3') return void viaIoctl();
  throw new Error(`cannot set ${offload} on ${ifname}: ethtool is not installed (run bash scripts/setup.sh)`);
}

const ETHTOOL_IOCTL_GET_PY = `
import ctypes, fcntl, socket, struct, sys
name, cmd = sys.argv[1], int(sys.argv[2], 0)
buf = ctypes.create_string_buffer(struct.pack('II', cmd, 0), 8)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
fcntl.ioctl(s, 0x8946, struct.pack('16sP', name.encode(), ctypes.addressof(buf)))
print(struct.unpack('II', buf.raw)[1])
`;

/**
 * Reads whether an offload is on (`ethtool -k`, or the legacy ETHTOOL_GGRO / ETHTOOL_GTXCSUM
 * ioctls through python3); undefined when it cannot be read.
 */
export function readOffload(netns: string, ifname: string, offload: Offload): boolean | undefined {
  const tool = offloadTool();
  if (tool === 'ethtool') {
    const out = execIn(netns, ['ethtool', '-k', ifname], { allowFail: true });
    const key = offload === 'gro' ? 'generic-receive-offload' : 'tx-checksumming';
    const m = new RegExp(`^${key}: (on|off)`, 'm').exec(out.stdout);
    return m ? m[1] === 'on' : undefined;
  }
  if (tool === 'python3') {
    const out = execIn(netns, ['python3', '-c', ETHTOOL_IOCTL_GET_PY, ifname, offload === 'gro' ? '0x2b' : '0x16'], { allowFail: true });
    return out.status === 0 ? out.stdout.trim() !== '0' : undefined;
  }
  return undefined;
}

/** Whether a process exists (signal 0). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a process has exited: gone, or a zombie its parent has not reaped yet. */
export function processGone(pid: number): boolean {
  if (!pidAlive(pid)) return true;
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/**
 * Whether a process lives in the named namespace now (same network-namespace inode). False when
 * the name was deleted and re-created while the process kept the old namespace.
 */
export function processInNetns(pid: number, netns: string): boolean {
  try {
    return statSync(`/proc/${pid}/ns/net`).ino === statSync(`/run/netns/${netns}`).ino;
  } catch {
    return false;
  }
}

/** A process's command line as one string ('' when it is gone). */
export function pidCommandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}
