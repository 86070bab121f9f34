/**
 * Network namespaces, veth pairs and NAPI threads for the benchmarks. Every name carries the
 * benchmark prefix (BENCH_PREFIX) so clean-up removes exactly what the benchmarks made.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { run, tryRun } from './exec';

/** Prefix of every namespace, link and pin the benchmarks create. */
export const BENCH_PREFIX = 'xlbb';

/**
 * Checks that a name carries the benchmark prefix.
 * @throws Error when it does not: the benchmarks never touch anything else.
 */
export function assertBenchName(name: string): string {
  if (!name.startsWith(BENCH_PREFIX)) throw new Error(`benchmark name ${JSON.stringify(name)} must start with "${BENCH_PREFIX}"`);
  return name;
}

/** Names of the network namespaces that exist now. */
export function listNamespaces(): string[] {
  const out = tryRun('ip', ['netns', 'list']) ?? '';
  return out.split('\n').map((line) => line.split(' ')[0]).filter(Boolean);
}

/** Deletes a benchmark namespace (its veths go with it); a missing one is fine. */
export function deleteNamespace(name: string): void {
  assertBenchName(name);
  if (listNamespaces().includes(name)) tryRun('ip', ['netns', 'del', name]);
}

/**
 * Creates a fresh namespace (deleting a leftover of the same name first) with lo up. IPv6 is off
 * unless `ipv6` (the benchmarks with IPv6 rows): then it is on without duplicate address
 * detection (addresses usable at once), router solicitations or router advertisements, so the
 * links carry as little of the kernel's own chatter as IPv6 allows (the sinks count only UDP).
 * @throws Error when ip fails.
 */
export function createNamespace(name: string, options: { ipv6?: boolean } = {}): void {
  deleteNamespace(name);
  run('ip', ['netns', 'add', name]);
  if (options.ipv6) {
    setSysctls(name, Object.fromEntries(['all', 'default'].flatMap((scope) => [
      [`net.ipv6.conf.${scope}.disable_ipv6`, '0'], [`net.ipv6.conf.${scope}.accept_dad`, '0'],
      [`net.ipv6.conf.${scope}.accept_ra`, '0'], [`net.ipv6.conf.${scope}.router_solicitations`, '0'],
    ])));
  } else {
    // IPv4 only: no IPv6 neighbour discovery or MLD chatter on the benchmark links.
    setSysctls(name, { 'net.ipv6.conf.all.disable_ipv6': '1', 'net.ipv6.conf.default.disable_ipv6': '1' });
  }
  run('ip', ['link', 'set', 'lo', 'up'], { netns: name });
}

export interface VethEnd { netns: string; name: string; mac: string; cidrs: string[] }

/**
 * Creates a veth pair between two namespaces with fixed MACs and addresses, both ends up.
 * @throws Error when ip fails.
 */
export function createVeth(a: VethEnd, b: VethEnd): void {
  assertBenchName(a.name);
  assertBenchName(b.name);
  run('ip', ['link', 'add', a.name, 'netns', a.netns, 'address', a.mac, 'type', 'veth',
    'peer', 'name', b.name, 'netns', b.netns, 'address', b.mac]);
  for (const end of [a, b]) {
    // IPv6 ones without duplicate address detection: usable at once.
    for (const cidr of end.cidrs) run('ip', ['addr', 'add', cidr, 'dev', end.name, ...(cidr.includes(':') ? ['nodad'] : [])], { netns: end.netns });
    run('ip', ['link', 'set', end.name, 'up'], { netns: end.netns });
  }
}

/** Sets sysctls inside a namespace, e.g. {'net.ipv4.ip_forward': '1'}. */
export function setSysctls(netns: string, values: Record<string, string>): void {
  for (const [key, value] of Object.entries(values)) run('sysctl', ['-qw', `${key}=${value}`], { netns });
}

/**
 * Gives a veth its own NAPI thread: GRO on keeps the veth's NAPI instance alive (XDP_REDIRECT
 * and XDP_TX into a veth need it even without an XDP program on it), threaded NAPI moves its
 * receive processing out of softirq into a kthread we can pin to a CPU and account for.
 */
export function enableThreadedNapi(netns: string, ifname: string): void {
  run('ethtool', ['-K', ifname, 'gro', 'on', 'tso', 'off'], { netns });
  run('sh', ['-c', `echo 1 > /sys/class/net/${ifname}/threaded`], { netns });
}

/**
 * Makes a veth put full checksums in what it sends. With offload on, a local sender's TCP/UDP
 * checksum is only "partial" (the pseudo-header sum, to be finished by hardware): the kernel
 * copes, but an XDP program rewriting the packet and redirecting it as a raw frame turns it into
 * a checksum error at the receiver. A real NIC's wire never carries partial checksums.
 */
export function disableTxChecksumOffload(netns: string, ifname: string): void {
  run('ethtool', ['-K', ifname, 'tx', 'off'], { netns });
}

/**
 * The pids of the NAPI kthreads of an interface (named "napi/<ifname>-<napi id>").
 * Interface names are per namespace, hence the benchmark prefix keeps them unique.
 */
export function napiThreadPids(ifname: string): number[] {
  const wanted = `napi/${ifname}-`.slice(0, 15);
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let comm = '';
    try { comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim(); } catch { continue; }
    if (comm.startsWith(wanted)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * CPU time a task has run, in nanoseconds (/proc/<pid>/schedstat, first field: exact, unlike the
 * 10 ms ticks of /proc/<pid>/stat).
 * @throws Error when the task is gone.
 */
export function taskCpuNs(pid: number): number {
  const text = readFileSync(`/proc/${pid}/schedstat`, 'utf8');
  return Number(text.split(' ')[0]);
}

/** Sum of taskCpuNs over tasks; a task that vanished counts 0. */
export function tasksCpuNs(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try { total += taskCpuNs(pid); } catch { /* gone */ }
  }
  return total;
}

/**
 * Pins a task (a NAPI kthread) to one CPU and gives it real-time priority (SCHED_FIFO 50), so
 * the other work on a shared machine does not preempt the packet path under test.
 */
export function pinTask(pid: number, cpu: number): void {
  run('taskset', ['-p', '-c', String(cpu), String(pid)]);
  run('chrt', ['-f', '-p', '50', String(pid)]);
}

/** Number of online CPUs. */
export function onlineCpus(): number {
  const text = readFileSync('/sys/devices/system/cpu/online', 'utf8').trim();
  let count = 0;
  for (const part of text.split(',')) {
    const [lo, hi] = part.split('-').map(Number);
    count += (hi ?? lo) - lo + 1;
  }
  return count;
}

/** The ifindex of an interface inside a namespace. */
export function ifindexOf(netns: string, ifname: string): number {
  return Number(run('cat', [`/sys/class/net/${ifname}/ifindex`], { netns }).trim());
}
