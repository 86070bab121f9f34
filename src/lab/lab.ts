/**
 * `lab up`, `lab down`, `lab status`, `lab exec`: builds the topology of topology.ts out of
 * network namespaces, veth pairs and one bridge, starts a backend server in every backend, and
 * records what it started in /run/xdplb-lab/<prefix>/state.json so that `down` removes exactly
 * that. Only namespaces named `<prefix>-...` and pids recorded in the state file are touched;
 * nothing on the host changes (no host interfaces, routes or sysctls). Dual-stack: every lab
 * interface also carries its IPv6 address (2001:2::/48, without duplicate address detection, so
 * it is usable at once), IPv6 forwarding is on in the lb namespace only.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, rmSync, writeFileSync, renameSync, existsSync } from 'node:fs';
import path from 'node:path';
import { constants } from 'node:os';
import {
  labTopology, labHosts, findHost, isLabNetns, VIP_SUBNET, VIP_SUBNET6, BACKEND_HTTP_PORT, BACKEND_HTTP_PORT_ALT,
  BACKEND_UDP_ECHO_PORT, DEFAULT_API_PORT, DEFAULT_LAB_PREFIX, isLabVip, isLabVip6, isLabAddress6, isIpv6Text, validatePrefix,
  type LabTopology, type LabMode, type TopologyOptions,
} from './topology';
import {
  ensureNetns, deleteNetns, ipIn, linkIn, linksIn, listNetns, netnsExists, netnsPids, sysctlIn, readSysctlIn, setOffload,
  processGone, processInNetns, pidCommandLine, readOffload, type LinkInfo, type Offload,
} from './netns';
import { nodeScriptCommand, repoRoot, stateDir } from './paths';
import { startHostForward } from './host-forward';

export interface RecordedProcess { pid: number; argv: string[]; startedAt: string }

/** What `lab up` recorded; `lab down` trusts nothing else. */
export interface LabState {
  prefix: string;
  mode: LabMode;
  backends: number;
  vips: string[];
  namespaces: string[];
  servers: Record<string, RecordedProcess>;
  forward?: RecordedProcess & { listen: string; targetPort: number };
  /** Whether `up` attached bpf/xdp_pass.o to the peers of the lb's legs (see peerXdpPorts). */
  peerXdp?: boolean;
  updatedAt: string;
}

export interface LabUpOptions extends TopologyOptions {
  /** Also forward host 127.0.0.1:forwardPort to the daemon's port inside the lb namespace. */
  forwardPort?: number;
  /** The daemon's port inside the lb namespace (default 8720). */
  apiPort?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /**
   * Attach bpf/xdp_pass.o to the peers of the lb's legs (the client's interface and the
   * switch's port), so that XDP_TX from a program on the lb's legs reaches them at once
   * (default true; skipped with a log line when the object is not built). false removes it:
   * the peers then have GRO only, like a container host's side of a veth (docs/lab.md).
   */
  peerXdp?: boolean;
}

const SERVER_READY_TIMEOUT_MS = 15_000;

/**
 * Bridge netfilter (br_netfilter) sysctls, per namespace and 1 by default wherever the module is
 * loaded: bridged IPv4/IPv6/ARP would cross iptables, whose conntrack silently drops malformed
 * IPv4 (bad header checksum, bad length) in the switch and so hides forwarding errors from the
 * lab's tests. `lab up` sets them to 0 in the switch namespace (absent when the module is not
 * loaded: nothing to turn off).
 */
export const BRIDGE_NF_SYSCTLS: readonly string[] = [
  'net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables', 'net.bridge.bridge-nf-call-arptables',
];

function statePath(prefix: string): string {
  return path.join(stateDir(prefix), 'state.json');
}

/** The recorded state of a lab, or undefined when there is none (or it is unreadable). */
export function readLabState(prefix: string = DEFAULT_LAB_PREFIX): LabState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(prefix), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

function writeLabState(state: LabState): void {
  mkdirSync(stateDir(state.prefix), { recursive: true });
  const file = statePath(state.prefix);
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

/**
 * Whether a recorded pid is still the very process we started (pids get reused): its command
 * line must name our script and carry every flag/value pair of the marker.
 */
export function isOurProcess(recorded: RecordedProcess | undefined, marker: string[]): boolean {
  if (!recorded || processGone(recorded.pid)) return false;
  const words = pidCommandLine(recorded.pid).split(' ');
  if (!words.some((w) => w.includes(marker[0]))) return false;
  for (let i = 1; i + 1 < marker.length; i += 2) {
    const at = words.indexOf(marker[i]);
    if (at < 0 || words[at + 1] !== marker[i + 1]) return false;
  }
  return true;
}

export function serverMarker(prefix: string, host: string): string[] {
  return ['backend-server', '--lab-prefix', prefix, '--name', host];
}

function forwardMarker(prefix: string): string[] {
  return ['host-forward', '--lab-prefix', prefix];
}

/** Sends SIGTERM to one of our pids, then SIGKILL if it is still there after 2 s. */
export async function stopProcess(pid: number): Promise<void> {
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  for (let i = 0; i < 40; i++) {
    if (processGone(pid)) return;
    await sleep(50);
  }
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  for (let i = 0; i < 20 && !processGone(pid); i++) await sleep(50);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Creates a veth pair between two namespaces unless the first end already exists there. */
export function ensureVeth(netnsA: string, nameA: string, netnsB: string, nameB: string): void {
  if (linkIn(netnsA, nameA)) return;
  // A veth end cannot live without its peer, so a missing end means the pair is gone; but a
  // stale same-named end in B (from an interrupted run) would make the add fail: remove it.
  if (linkIn(netnsB, nameB)) ipIn(netnsB, ['link', 'del', nameB]);
  ipIn(netnsA, ['link', 'add', nameA, 'type', 'veth', 'peer', 'name', nameB, 'netns', netnsB]);
}

export function macOf(netns: string, ifname: string): string {
  const link = linkIn(netns, ifname);
  if (!link?.address) throw new Error(`no MAC address for ${ifname} in ${netns}`);
  return link.address;
}

/**
 * Replaces the addresses of one family of an interface in a range with exactly `wanted` (each a
 * CIDR). IPv6 addresses are added with `nodad`: no duplicate address detection, so they are
 * usable at once (the lab assigns every address itself; nothing else can hold it).
 */
export function syncAddresses(netns: string, ifname: string, wanted: string[], owns: (address: string) => boolean,
  family: 'inet' | 'inet6' = 'inet'): void {
  const present = (linkIn(netns, ifname)?.addr_info ?? []).filter((a) => a.family === family);
  for (const a of present) {
    if (owns(a.local) && !wanted.includes(`${a.local}/${a.prefixlen}`)) ipIn(netns, ['addr', 'del', `${a.local}/${a.prefixlen}`, 'dev', ifname]);
  }
  for (const cidr of wanted) ipIn(netns, ['addr', 'replace', cidr, 'dev', ifname, ...(family === 'inet6' ? ['nodad'] : [])]);
}

/**
 * The IPv6 sysctls of a lab namespace: IPv6 on, no duplicate address detection (for interfaces
 * made later too: `default`), forwarding on in the lb only (the others are hosts).
 */
export function ipv6Sysctls(role: string): Array<[string, number]> {
  return [
    ['net.ipv6.conf.all.disable_ipv6', 0], ['net.ipv6.conf.default.disable_ipv6', 0],
    ['net.ipv6.conf.all.accept_dad', 0], ['net.ipv6.conf.default.accept_dad', 0],
    ['net.ipv6.conf.all.forwarding', role === 'lb' ? 1 : 0],
  ];
}

interface RequiredOffload { netns: string; ifname: string; offload: Offload; on: boolean }

/**
 * The offload settings XDP forwarding in the lab depends on. XDP_REDIRECT/XDP_TX into a veth is
 * dropped unless the receiving peer runs NAPI: GRO on the two peers of the lb's legs. Frames
 * redirected by XDP lose CHECKSUM_PARTIAL, so hosts whose packets cross the XDP program must
 * checksum in software: tx checksum off on the client and the backends.
 */
function requiredOffloads(topology: LabTopology): RequiredOffload[] {
  const { client, switch: sw, backends } = topology;
  return [
    { netns: client.netns, ifname: client.interfaces[0].name, offload: 'gro', on: true },
    { netns: sw.netns, ifname: sw.lbPort, offload: 'gro', on: true },
    { netns: client.netns, ifname: client.interfaces[0].name, offload: 'tx-checksum', on: false },
    ...backends.map((be) => ({ netns: be.netns, ifname: be.interfaces[0].name, offload: 'tx-checksum' as Offload, on: false })),
  ];
}

/**
 * The peers of the lb's legs: where XDP_TX and redirects from the lb arrive. A veth wakes its
 * peer after XDP_TX only when the peer runs an XDP program (drivers/net/veth.c
 * veth_xdp_flush); with GRO alone the frames wait for the peer's next wake-up.
 */
function peerXdpPorts(topology: LabTopology): Array<{ netns: string; ifname: string }> {
  return [
    { netns: topology.client.netns, ifname: topology.client.interfaces[0].name },
    { netns: topology.switch.netns, ifname: topology.switch.lbPort },
  ];
}

/** The empty XDP program the lab attaches to the peers (built by scripts/build.sh). */
export function xdpPassObject(): string {
  return path.join(repoRoot(), 'bpf', 'xdp_pass.o');
}

/** The backend server's argv for a backend of this topology. */
function serverArgv(topology: LabTopology, host: string): string[] {
  return [...nodeScriptCommand('backend-server'), '--lab-prefix', topology.prefix, '--name', host,
    '--http-ports', `${BACKEND_HTTP_PORT},${BACKEND_HTTP_PORT_ALT}`, '--udp-port', String(BACKEND_UDP_ECHO_PORT),
    '--udp-bind', topology.loopbackVips.join(',')];
}

/** Starts a detached backend server in its namespace and waits for its "ready" line. */
export async function startServer(topology: LabTopology, host: string, netns: string, onSpawn: (spawned: RecordedProcess) => void): Promise<RecordedProcess> {
  const argv = serverArgv(topology, host);
  const logFile = path.join(stateDir(topology.prefix), `${host}.log`);
  writeFileSync(logFile, '');
  const log = openSync(logFile, 'a');
  const child = spawn('ip', ['netns', 'exec', netns, ...argv], { detached: true, cwd: repoRoot(), stdio: ['ignore', log, log] });
  closeSync(log);
  let exited: number | null | undefined;
  child.once('exit', (code) => { exited = code; });
  child.once('error', () => { exited = -1; });
  child.unref();
  const spawned = { pid: child.pid!, argv, startedAt: new Date().toISOString() };
  if (child.pid) onSpawn(spawned);
  const deadline = Date.now() + SERVER_READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const text = readFileSync(logFile, 'utf8');
    if (text.includes(`ready ${host}`)) return spawned;
    if (exited !== undefined) break;
    await sleep(50);
  }
  if (child.pid && exited === undefined) await stopProcess(child.pid);
  throw new Error(`backend server ${host} did not start: ${readFileSync(logFile, 'utf8').trim().slice(-500) || 'no output'}`);
}

/**
 * Brings the lab up, or repairs it: every step checks before it changes, so a second run is
 * harmless. Changing --backends removes surplus backends; changing --mode adds/removes the
 * DSR loopback VIPs and sysctls and restarts servers whose arguments changed.
 * @throws Error on bad options, a failing `ip`/`sysctl`/`ethtool`, a server that does not start
 *   or a forward port that is taken. Whatever was created stays recorded for `lab down`.
 */
export async function labUp(options: LabUpOptions = {}): Promise<LabStatus> {
  const topology = labTopology(options);
  const log = options.log ?? (() => undefined);
  const { prefix } = topology;
  mkdirSync(stateDir(prefix), { recursive: true });
  const previous = readLabState(prefix);
  const state: LabState = {
    prefix, mode: topology.mode, backends: topology.backends.length, vips: topology.loopbackVips,
    namespaces: [...new Set([...(previous?.namespaces ?? []), ...labHosts(topology).map((h) => h.netns)])],
    servers: { ...(previous?.servers ?? {}) }, forward: previous?.forward, updatedAt: new Date().toISOString(),
  };
  // Record the namespaces before creating them, so an interrupted run can still be taken down.
  writeLabState(state);

  // Surplus backends (a smaller --backends than before, or leftovers of an interrupted run).
  const wanted = new Set(labHosts(topology).map((h) => h.netns));
  for (const netns of [...new Set([...state.namespaces, ...listNetns().filter((n) => isLabNetns(prefix, n))])]) {
    if (wanted.has(netns)) continue;
    const host = netns.slice(prefix.length + 1);
    if (isOurProcess(state.servers[host], serverMarker(prefix, host))) await stopProcess(state.servers[host].pid);
    delete state.servers[host];
    if (deleteNetns(netns)) log(`removed surplus ${netns}`);
    const swPort = `${prefix}-s${host.replace(/^be/, 'b')}`;
    if (linkIn(topology.switch.netns, swPort)) ipIn(topology.switch.netns, ['link', 'del', swPort]);
  }
  state.namespaces = [...wanted];
  writeLabState(state);

  for (const host of labHosts(topology)) {
    if (ensureNetns(host.netns)) log(`created netns ${host.netns}`);
    // Lab traffic is asymmetric by design (DSR replies, VIP sources): strict reverse-path
    // filtering would drop it. Only inside the lab's namespaces.
    sysctlIn(host.netns, 'net.ipv4.conf.all.rp_filter', 0);
    sysctlIn(host.netns, 'net.ipv4.conf.default.rp_filter', 0);
    // Before the veths exist, so that they are made with DAD off (`default`).
    for (const [key, value] of ipv6Sysctls(host.role)) sysctlIn(host.netns, key, value);
  }

  const { client, lb, switch: sw, backends } = topology;
  ensureVeth(client.netns, client.interfaces[0].name, lb.netns, lb.clientLeg);
  ensureVeth(lb.netns, lb.backendLeg, sw.netns, sw.lbPort);
  for (const be of backends) ensureVeth(be.netns, be.interfaces[0].name, sw.netns, be.interfaces[0].peer!.name);

  // The switch: one bridge joins the lb's backend leg and every backend, so one lb interface
  // reaches all backends (a bridge in its own namespace keeps the lb's leg a plain veth, where
  // native XDP works; a bridge device in the lb namespace would not take native XDP).
  if (!linkIn(sw.netns, sw.bridge)) ipIn(sw.netns, ['link', 'add', sw.bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  ipIn(sw.netns, ['link', 'set', sw.bridge, 'up']);
  for (const key of BRIDGE_NF_SYSCTLS) {
    if (readSysctlIn(sw.netns, key) !== undefined) sysctlIn(sw.netns, key, 0);
  }
  for (const port of sw.interfaces) {
    ipIn(sw.netns, ['link', 'set', port.name, 'master', sw.bridge]);
    ipIn(sw.netns, ['link', 'set', port.name, 'up']);
  }

  for (const host of [client, lb, ...backends]) {
    for (const itf of host.interfaces) {
      sysctlIn(host.netns, `net.ipv6.conf.${itf.name}.disable_ipv6`, 0);
      sysctlIn(host.netns, `net.ipv6.conf.${itf.name}.accept_dad`, 0);
      syncAddresses(host.netns, itf.name, [itf.cidr!], () => true);
      syncAddresses(host.netns, itf.name, [itf.cidr6!], isLabAddress6, 'inet6');
      ipIn(host.netns, ['link', 'set', itf.name, 'up']);
      sysctlIn(host.netns, `net.ipv4.conf.${itf.name}.rp_filter`, 0);
    }
  }

  sysctlIn(lb.netns, 'net.ipv4.ip_forward', 1);
  ipIn(client.netns, ['route', 'replace', 'default', 'via', client.gateway]);
  ipIn(client.netns, ['route', 'replace', VIP_SUBNET, 'via', client.gateway]);
  ipIn(client.netns, ['-6', 'route', 'replace', 'default', 'via', client.gateway6]);
  ipIn(client.netns, ['-6', 'route', 'replace', VIP_SUBNET6, 'via', client.gateway6]);
  for (const be of backends) {
    ipIn(be.netns, ['route', 'replace', 'default', 'via', be.gateway!]);
    ipIn(be.netns, ['-6', 'route', 'replace', 'default', 'via', be.gateway6]);
    const dsr = topology.mode === 'dsr';
    syncAddresses(be.netns, 'lo', topology.loopbackVips.filter((v) => !isIpv6Text(v)).map((v) => `${v}/32`), isLabVip);
    // IPv6 has no ARP: a VIP on lo is not answered for in neighbour discovery on the backend's
    // link (Linux answers solicitations only for addresses of the interface asked on).
    syncAddresses(be.netns, 'lo', topology.loopbackVips.filter(isIpv6Text).map((v) => `${v}/128`), isLabVip6, 'inet6');
    // DSR: the VIP on lo must not be answered for in ARP, nor used as ARP source (IPVS-DR rules).
    for (const scope of ['all', be.interfaces[0].name]) {
      sysctlIn(be.netns, `net.ipv4.conf.${scope}.arp_ignore`, dsr ? 1 : 0);
      sysctlIn(be.netns, `net.ipv4.conf.${scope}.arp_announce`, dsr ? 2 : 0);
    }
  }

  for (const want of requiredOffloads(topology)) setOffload(want.netns, want.ifname, want.offload, want.on);

  const wantPeerXdp = options.peerXdp ?? true;
  if (wantPeerXdp && !existsSync(xdpPassObject())) {
    log(`no ${xdpPassObject()} (run scripts/build.sh): the lb legs' peers get no XDP program`);
  }
  state.peerXdp = wantPeerXdp && existsSync(xdpPassObject());
  for (const peer of peerXdpPorts(topology)) {
    const link = linkIn(peer.netns, peer.ifname);
    const attached = link ? xdpOf(link) : undefined;
    if (state.peerXdp && !attached) {
      ipIn(peer.netns, ['link', 'set', 'dev', peer.ifname, 'xdpdrv', 'obj', xdpPassObject(), 'sec', 'xdp']);
      log(`attached xdp_pass to ${peer.ifname} in ${peer.netns}`);
    } else if (!state.peerXdp && attached) {
      ipIn(peer.netns, ['link', 'set', 'dev', peer.ifname, 'xdpdrv', 'off']);
      log(`detached XDP from ${peer.ifname} in ${peer.netns}`);
    }
  }

  // Permanent neighbour entries: bpf_fib_lookup answers NO_NEIGH for an unresolved next hop,
  // and the first packet of a test must not be the one that triggers ARP.
  const lbClientMac = macOf(lb.netns, lb.clientLeg);
  const lbBackendMac = macOf(lb.netns, lb.backendLeg);
  ipIn(lb.netns, ['neigh', 'replace', client.address, 'lladdr', macOf(client.netns, client.interfaces[0].name), 'dev', lb.clientLeg, 'nud', 'permanent']);
  ipIn(client.netns, ['neigh', 'replace', client.gateway, 'lladdr', lbClientMac, 'dev', client.interfaces[0].name, 'nud', 'permanent']);
  // The same for IPv6 (neighbour discovery would otherwise resolve them on first use).
  const clientMac = macOf(client.netns, client.interfaces[0].name);
  ipIn(lb.netns, ['-6', 'neigh', 'replace', client.address6, 'lladdr', clientMac, 'dev', lb.clientLeg, 'nud', 'permanent']);
  ipIn(client.netns, ['-6', 'neigh', 'replace', client.gateway6, 'lladdr', lbClientMac, 'dev', client.interfaces[0].name, 'nud', 'permanent']);
  for (const be of backends) {
    const beMac = macOf(be.netns, be.interfaces[0].name);
    ipIn(lb.netns, ['neigh', 'replace', be.address, 'lladdr', beMac, 'dev', lb.backendLeg, 'nud', 'permanent']);
    ipIn(be.netns, ['neigh', 'replace', be.gateway!, 'lladdr', lbBackendMac, 'dev', be.interfaces[0].name, 'nud', 'permanent']);
    ipIn(lb.netns, ['-6', 'neigh', 'replace', be.address6, 'lladdr', beMac, 'dev', lb.backendLeg, 'nud', 'permanent']);
    ipIn(be.netns, ['-6', 'neigh', 'replace', be.gateway6, 'lladdr', lbBackendMac, 'dev', be.interfaces[0].name, 'nud', 'permanent']);
  }

  const toStart: typeof backends = [];
  for (const be of backends) {
    const recorded = state.servers[be.host];
    const same = recorded && JSON.stringify(recorded.argv) === JSON.stringify(serverArgv(topology, be.host));
    if (isOurProcess(recorded, serverMarker(prefix, be.host))) {
      // A server left in a namespace whose name was deleted and re-created serves nobody.
      if (same && processInNetns(recorded!.pid, be.netns)) continue;
      await stopProcess(recorded!.pid);
    }
    delete state.servers[be.host];
    toStart.push(be);
  }
  writeLabState(state);
  // In parallel (node start-up dominates with many backends); each pid is recorded as soon as
  // it is spawned, so an interrupted `up` still leaves `down` able to stop it.
  const started = await Promise.allSettled(toStart.map((be) => startServer(topology, be.host, be.netns, (spawned) => {
    state.servers[be.host] = spawned;
    writeLabState(state);
  })));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  for (const be of toStart) log(`started ${be.host} server pid ${state.servers[be.host].pid}`);

  if (options.forwardPort !== undefined) {
    const port = options.forwardPort;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`forward port ${String(port)} must be in 1..65535`);
    const targetPort = options.apiPort ?? DEFAULT_API_PORT;
    const current = state.forward;
    const running = isOurProcess(current, forwardMarker(prefix));
    if (!running || current!.listen !== `127.0.0.1:${port}` || current!.targetPort !== targetPort || !processInNetns(current!.pid, lb.netns)) {
      if (running) await stopProcess(current!.pid);
      const fwd = await startHostForward({
        prefix, netns: lb.netns, listenPort: port, targetPort, logFile: path.join(stateDir(prefix), 'forward.log'),
        onSpawn: (pid) => {
          state.forward = { pid, argv: [], startedAt: new Date().toISOString(), listen: `127.0.0.1:${port}`, targetPort };
          writeLabState(state);
        },
      });
      state.forward = { pid: fwd.pid, argv: [], startedAt: new Date().toISOString(), listen: fwd.listen, targetPort };
      log(`forwarding host ${fwd.listen} -> ${fwd.target} (pid ${fwd.pid})`);
    }
  }
  state.updatedAt = new Date().toISOString();
  writeLabState(state);
  return labStatus(prefix);
}

export interface LabDownResult {
  removedNamespaces: string[];
  stoppedPids: number[];
  /** Processes still inside a lab namespace that the lab did not start (left alone, e.g. a daemon). */
  foreignPids: Array<{ netns: string; pid: number; command: string }>;
}

/**
 * Takes the lab down: stops the pids recorded in its state file (only while they still are the
 * processes it started), deletes its namespaces by name and removes the state directory.
 * Processes the lab did not start are never signalled, only reported.
 * @throws Error on a bad prefix or a failing `ip netns del`.
 */
export async function labDown(prefix: string = DEFAULT_LAB_PREFIX): Promise<LabDownResult> {
  validatePrefix(prefix);
  const state = readLabState(prefix);
  const stoppedPids: number[] = [];
  for (const [host, recorded] of Object.entries(state?.servers ?? {})) {
    if (isOurProcess(recorded, serverMarker(prefix, host))) {
      await stopProcess(recorded.pid);
      stoppedPids.push(recorded.pid);
    }
  }
  if (state?.forward && isOurProcess(state.forward, forwardMarker(prefix))) {
    await stopProcess(state.forward.pid);
    stoppedPids.push(state.forward.pid);
  }
  const namespaces = [...new Set([...(state?.namespaces ?? []), ...listNetns().filter((n) => isLabNetns(prefix, n))])]
    .filter((n) => n.startsWith(`${prefix}-`));
  const foreignPids: LabDownResult['foreignPids'] = [];
  for (const netns of namespaces) {
    for (const pid of netnsPids(netns)) {
      if (!stoppedPids.includes(pid)) foreignPids.push({ netns, pid, command: pidCommandLine(pid) });
    }
  }
  const removedNamespaces = namespaces.filter((n) => deleteNetns(n));
  rmSync(stateDir(prefix), { recursive: true, force: true });
  return { removedNamespaces, stoppedPids, foreignPids };
}

export interface LabHostStatus {
  host: string;
  netns: string;
  exists: boolean;
  interfaces: Array<{
    name: string; up: boolean; mac?: string; addresses: string[]; xdp?: { progId: number; mode: string };
    /** The offloads the lab manages on this interface, as read back (see requiredOffloads). */
    offloads?: { gro?: boolean; txChecksum?: boolean };
  }>;
  server?: { pid: number; alive: boolean };
}

export interface LabStatus {
  prefix: string;
  up: boolean;
  mode?: LabMode;
  backends: number;
  hosts: LabHostStatus[];
  forward?: { pid: number; alive: boolean; listen: string; targetPort: number };
  /** XDP on the lb's legs, from `ip -j link` (what the daemon attached). */
  lbXdp: Array<{ ifname: string; progId: number; mode: string }>;
  /** XDP on the peers of the lb's legs (xdp_pass from `lab up`, see LabUpOptions.peerXdp). */
  peerXdp?: Array<{ ifname: string; progId: number; mode: string }>;
  problems: string[];
}

const XDP_MODES: Record<number, string> = { 1: 'native', 2: 'generic', 3: 'offload', 4: 'multi' };

function xdpOf(link: LinkInfo): { progId: number; mode: string } | undefined {
  const xdp = link.xdp;
  if (!xdp) return undefined;
  const id = xdp.prog?.id ?? xdp.attached?.[0]?.prog.id;
  if (!id) return undefined;
  return { progId: id, mode: XDP_MODES[xdp.attached?.[0]?.mode ?? xdp.mode] ?? String(xdp.mode) };
}

/**
 * Reports the lab as it is now: namespaces, interfaces, addresses, server pids, XDP on the lb legs,
 * and a list of problems (`up` is true when there are none).
 * @throws Error on a bad prefix.
 */
export function labStatus(prefix: string = DEFAULT_LAB_PREFIX): LabStatus {
  validatePrefix(prefix);
  const state = readLabState(prefix);
  const topology = labTopology({ prefix, backends: state?.backends ?? 1, mode: state?.mode ?? 'nat', vips: state?.vips?.length ? state.vips : undefined });
  const problems: string[] = [];
  if (!state) problems.push(`no lab state in ${stateDir(prefix)} (lab is not up)`);
  const hosts: LabHostStatus[] = labHosts(topology).map((h) => {
    const exists = netnsExists(h.netns);
    if (!exists && state) problems.push(`namespace ${h.netns} is missing`);
    const links = exists ? linksIn(h.netns) : [];
    const interfaces = h.interfaces.map((itf) => {
      const link = links.find((l) => l.ifname === itf.name);
      if (exists && !link) problems.push(`${itf.name} is missing in ${h.netns}`);
      const up = link?.operstate === 'UP' || (link?.flags ?? []).includes('LOWER_UP');
      if (link && !up) problems.push(`${itf.name} in ${h.netns} is not up`);
      const addresses = (link?.addr_info ?? []).filter((a) => a.family === 'inet' || (a.family === 'inet6' && isLabAddress6(a.local)))
        .map((a) => `${a.local}/${a.prefixlen}`);
      if (link && itf.cidr && !addresses.includes(itf.cidr)) problems.push(`${itf.name} in ${h.netns} lacks ${itf.cidr}`);
      if (link && itf.cidr6 && !addresses.includes(itf.cidr6)) problems.push(`${itf.name} in ${h.netns} lacks ${itf.cidr6}`);
      const tentative = (link?.addr_info ?? []).filter((a) => a.family === 'inet6' && isLabAddress6(a.local) && (a.tentative || a.dadfailed));
      for (const a of tentative) problems.push(`${a.local} on ${itf.name} in ${h.netns} is ${a.dadfailed ? 'dadfailed' : 'tentative'} (not usable)`);
      return { name: itf.name, up, mac: link?.address, addresses, xdp: link ? xdpOf(link) : undefined };
    });
    const status: LabHostStatus = { host: h.host, netns: h.netns, exists, interfaces };
    if (h.role === 'backend') {
      const recorded = state?.servers[h.host];
      const alive = isOurProcess(recorded, serverMarker(prefix, h.host));
      if (state && !alive) problems.push(`backend server ${h.host} is not running`);
      if (alive && exists && !processInNetns(recorded!.pid, h.netns)) problems.push(`backend server ${h.host} runs outside ${h.netns} (namespace re-created)`);
      if (recorded) status.server = { pid: recorded.pid, alive };
    }
    return status;
  });
  for (const want of requiredOffloads(topology)) {
    if (!netnsExists(want.netns) || !linkIn(want.netns, want.ifname)) continue;
    const actual = readOffload(want.netns, want.ifname, want.offload);
    const itf = hosts.find((h) => h.netns === want.netns)?.interfaces.find((i) => i.name === want.ifname);
    if (itf && actual !== undefined) itf.offloads = { ...itf.offloads, [want.offload === 'gro' ? 'gro' : 'txChecksum']: actual };
    if (actual !== undefined && actual !== want.on) {
      problems.push(`${want.offload} is ${actual ? 'on' : 'off'} on ${want.ifname} in ${want.netns} (XDP forwarding needs it ${want.on ? 'on' : 'off'})`);
    }
  }
  if (state?.peerXdp) {
    for (const peer of peerXdpPorts(topology)) {
      const itf = hosts.find((h) => h.netns === peer.netns)?.interfaces.find((i) => i.name === peer.ifname);
      if (itf && !itf.xdp) problems.push(`${peer.ifname} in ${peer.netns} has no XDP program (lab up attaches xdp_pass: XDP_TX from the lb would wait)`);
    }
  }
  if (netnsExists(topology.switch.netns)) {
    for (const key of BRIDGE_NF_SYSCTLS) {
      if (readSysctlIn(topology.switch.netns, key) === '1') problems.push(`${key} is 1 in ${topology.switch.netns} (bridged packets cross iptables; lab up sets 0)`);
    }
  }
  const lbHost = hosts.find((h) => h.host === 'lb');
  const lbXdp = (lbHost?.interfaces ?? []).filter((i) => i.xdp).map((i) => ({ ifname: i.name, ...i.xdp! }));
  const forward = state?.forward
    ? { pid: state.forward.pid, alive: isOurProcess(state.forward, forwardMarker(prefix)), listen: state.forward.listen, targetPort: state.forward.targetPort }
    : undefined;
  if (forward && !forward.alive) problems.push(`forwarder ${forward.listen} is not running`);
  if (forward?.alive && netnsExists(topology.lb.netns) && !processInNetns(forward.pid, topology.lb.netns)) {
    problems.push(`forwarder ${forward.listen} connects into a namespace that is no longer ${topology.lb.netns}`);
  }
  const peerXdp = peerXdpPorts(topology).flatMap((peer) => {
    const itf = hosts.find((h) => h.netns === peer.netns)?.interfaces.find((i) => i.name === peer.ifname);
    return itf?.xdp ? [{ ifname: peer.ifname, ...itf.xdp }] : [];
  });
  return { prefix, up: problems.length === 0, mode: state?.mode, backends: state?.backends ?? 0, hosts, forward, lbXdp, peerXdp, problems };
}

/** Status as a few lines for people. */
export function formatLabStatus(status: LabStatus): string {
  const lines = [`lab ${status.prefix}: ${status.up ? 'up' : 'NOT up'}${status.mode ? ` (mode ${status.mode}, ${status.backends} backends)` : ''}`];
  for (const h of status.hosts) {
    const server = h.server ? `  server pid ${h.server.pid} ${h.server.alive ? 'alive' : 'DEAD'}` : '';
    lines.push(`  ${h.host.padEnd(6)} ${h.netns}${h.exists ? '' : ' (missing)'}${server}`);
    for (const i of h.interfaces) {
      const xdp = i.xdp ? `  xdp prog ${i.xdp.progId} (${i.xdp.mode})` : '';
      const offloads = [
        i.offloads?.gro !== undefined ? `gro ${i.offloads.gro ? 'on' : 'off'}` : '',
        i.offloads?.txChecksum !== undefined ? `tx-csum ${i.offloads.txChecksum ? 'on' : 'off'}` : '',
      ].filter(Boolean).join(', ');
      lines.push(`         ${i.name.padEnd(15)} ${i.up ? 'UP  ' : 'DOWN'} ${i.addresses.join(' ') || '-'}${offloads ? `  (${offloads})` : ''}${xdp}`);
    }
  }
  if (status.forward) lines.push(`  forward ${status.forward.listen} -> lb 127.0.0.1:${status.forward.targetPort} pid ${status.forward.pid} ${status.forward.alive ? 'alive' : 'DEAD'}`);
  lines.push(`  xdp on lb legs: ${status.lbXdp.length ? status.lbXdp.map((x) => `${x.ifname}=prog ${x.progId} ${x.mode}`).join(', ') : 'none'}`);
  if (status.peerXdp) lines.push(`  xdp on their peers: ${status.peerXdp.length ? status.peerXdp.map((x) => `${x.ifname}=prog ${x.progId}`).join(', ') : 'none'}`);
  for (const p of status.problems) lines.push(`  problem: ${p}`);
  return lines.join('\n');
}

/**
 * The argv that runs a command inside a lab host (`ip netns exec <prefix>-<host> ...`).
 * @throws Error on an unknown host or an empty command.
 */
export function labExecCommand(host: string, command: string[], prefix: string = DEFAULT_LAB_PREFIX): string[] {
  if (command.length === 0) throw new Error('lab exec needs a command after --');
  const state = readLabState(prefix);
  const h = findHost(labTopology({ prefix, backends: state?.backends ?? 50 }), host);
  return ['ip', 'netns', 'exec', h.netns, ...command];
}

/**
 * Runs a command inside a lab host with inherited stdio and returns its exit code.
 * @throws Error on an unknown host, an empty command or a host namespace that does not exist.
 */
export function labExec(host: string, command: string[], prefix: string = DEFAULT_LAB_PREFIX): number {
  const argv = labExecCommand(host, command, prefix);
  if (!netnsExists(argv[3])) throw new Error(`lab host ${host} (${argv[3]}) does not exist: run lab up first`);
  const result = spawnSync(argv[0], argv.slice(1), { stdio: 'inherit' });
  if (result.error) throw result.error;
  if (result.status !== null) return result.status;
  // Killed by a signal: the shell convention, 128 + its number.
  return 128 + (result.signal ? (constants.signals[result.signal] ?? 0) : 0);
}

/**
 * The argv that starts the daemon inside the lab's lb namespace, where its XDP attach and
 * bpf_fib_lookup see the lab interfaces:
 * `nsenter --net=/run/netns/<prefix>-lb node <repo>/dist/src/cli.js daemon ARGS`.
 * nsenter, not `ip netns exec`: the latter remounts /sys privately, hiding the host's bpffs
 * (/sys/fs/bpf), so the daemon's pins would vanish with it. nsenter execs: the pid is the daemon's.
 * @throws Error on a bad prefix.
 */
export function daemonCommand(args: string[], prefix: string = DEFAULT_LAB_PREFIX): string[] {
  validatePrefix(prefix);
  const cli = path.join(repoRoot(), 'dist', 'src', 'cli.js');
  return ['nsenter', `--net=/run/netns/${prefix}-lb`, process.execPath, cli, 'daemon', ...args];
}

/** Whether the lab's state directory exists (cheap check for scripts). */
export function labStateExists(prefix: string = DEFAULT_LAB_PREFIX): boolean {
  return existsSync(statePath(prefix));
}
