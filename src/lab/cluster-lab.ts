/**
 * `xdplb lab up --nodes N`: the multi-node lab of cluster-topology.ts (client, router running
 * BIRD, lb1..lbN, switch, backends, optional etcd members). Its state lives in
 * /run/xdplb-lab/<prefix>/cluster.json; `lab down` stops exactly the pids recorded there and
 * deletes the namespaces by name. The single-node lab (lab.ts) is untouched by this file.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  clusterTopology, clusterNamespaces, isClusterNetns, routerBirdConfig, BACKEND_LAN, CLIENT_LAN, RETURN_TABLE,
  BACKEND_LAN6, CLIENT_LAN6, CLUSTER_CLIENT_ADDRESS6, ROUTER_BACKEND_ADDRESS6, ROUTER_CLIENT_ADDRESS6, ROUTER_NODE_ADDRESS6, isLabVip6,
  type ClusterTopology, type ClusterTopologyOptions,
} from './cluster-topology';
import { ensureNetns, deleteNetns, ipIn, linkIn, listNetns, netnsExists, netnsPids, sysctlIn, readSysctlIn, setOffload, processGone, pidCommandLine, run } from './netns';
import { ensureVeth, syncAddresses, macOf, startServer, stopProcess, isOurProcess, serverMarker, xdpPassObject, BRIDGE_NF_SYSCTLS, type RecordedProcess } from './lab';
import { isLabVip, type LabTopology } from './topology';
import { repoRoot, stateDir } from './paths';

export interface ClusterLabState {
  kind: 'cluster';
  prefix: string;
  options: Required<Pick<ClusterTopologyOptions, 'nodes' | 'backends' | 'etcd'>> & { mode: 'nat' | 'dsr'; vips: string[] };
  namespaces: string[];
  servers: Record<string, RecordedProcess>;
  router?: RecordedProcess & { socket: string };
  etcd: Record<string, RecordedProcess>;
  /** Processes started through startLabProcess (e.g. daemons), by name. */
  processes: Record<string, RecordedProcess>;
  updatedAt: string;
}

export interface ClusterUpOptions extends ClusterTopologyOptions { log?: (line: string) => void; birdBinary?: string }

function statePath(prefix: string): string { return path.join(stateDir(prefix), 'cluster.json'); }

export function readClusterState(prefix: string): ClusterLabState | undefined {
  try { return JSON.parse(readFileSync(statePath(prefix), 'utf8')) as ClusterLabState; } catch { return undefined; }
}

function writeState(state: ClusterLabState): void {
  mkdirSync(stateDir(state.prefix), { recursive: true });
  state.updatedAt = new Date().toISOString();
  writeFileSync(`${statePath(state.prefix)}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${statePath(state.prefix)}.tmp`, statePath(state.prefix));
}

/** The topology a recorded cluster lab was built with. */
export function recordedTopology(prefix: string): ClusterTopology | undefined {
  const s = readClusterState(prefix);
  return s ? clusterTopology({ prefix, ...s.options }) : undefined;
}

function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }

function routerFiles(prefix: string) {
  const dir = stateDir(prefix);
  return { config: path.join(dir, 'router-bird.conf'), socket: path.join(dir, 'router-bird.ctl'), pidFile: path.join(dir, 'router-bird.pid') };
}

function birdMarker(socket: string): string[] { return ['bird', '-s', socket]; }
function etcdMarker(prefix: string, host: string): string[] { return ['etcd', '--name', host, '--data-dir', path.join(stateDir(prefix), `${host}.data`)]; }

/**
 * Builds or repairs the multi-node lab. Idempotent; the router's BIRD is reconfigured when
 * already running.
 * @throws Error on bad options or a failing step (what was created stays recorded for down).
 */
export async function clusterUp(options: ClusterUpOptions): Promise<ClusterStatus> {
  const t = clusterTopology(options);
  const log = options.log ?? (() => undefined);
  const { prefix } = t;
  const previous = readClusterState(prefix);
  if (!previous && existsSync(path.join(stateDir(prefix), 'state.json'))) {
    throw new Error(`a single-node lab ${prefix} is up: run lab down --prefix ${prefix} first`);
  }
  const state: ClusterLabState = {
    kind: 'cluster', prefix,
    options: { nodes: t.nodes.length, backends: t.backends.length, etcd: t.etcd.length, mode: t.mode, vips: options.vips ? [...options.vips] : [] },
    namespaces: [...new Set([...(previous?.namespaces ?? []), ...clusterNamespaces(t)])],
    servers: { ...(previous?.servers ?? {}) }, router: previous?.router, etcd: { ...(previous?.etcd ?? {}) },
    processes: { ...(previous?.processes ?? {}) }, updatedAt: '',
  };
  writeState(state);
  // Surplus hosts of a larger earlier lab.
  const wanted = new Set(clusterNamespaces(t));
  for (const netns of [...state.namespaces, ...listNetns().filter((n) => isClusterNetns(prefix, n))]) {
    if (wanted.has(netns)) continue;
    const host = netns.slice(prefix.length + 1);
    if (isOurProcess(state.servers[host], serverMarker(prefix, host))) await stopProcess(state.servers[host].pid);
    delete state.servers[host];
    if (isOurProcess(state.etcd[host], etcdMarker(prefix, host))) await stopProcess(state.etcd[host].pid);
    delete state.etcd[host];
    if (deleteNetns(netns)) log(`removed surplus ${netns}`);
  }
  state.namespaces = [...wanted];
  writeState(state);

  for (const netns of clusterNamespaces(t)) {
    if (ensureNetns(netns)) log(`created netns ${netns}`);
    sysctlIn(netns, 'net.ipv4.conf.all.rp_filter', 0);
    sysctlIn(netns, 'net.ipv4.conf.default.rp_filter', 0);
  }
  const { client, router, switch: sw, nodes, backends, etcd } = t;
  ensureVeth(client.netns, client.ifname, router.netns, router.clientLeg);
  ensureVeth(router.netns, router.backendLeg, sw.netns, router.switchPort);
  for (const x of nodes) {
    ensureVeth(x.netns, x.uplink, router.netns, x.routerPort);
    ensureVeth(x.netns, x.downlink, sw.netns, x.switchPort);
  }
  for (const b of backends) ensureVeth(b.netns, b.ifname, sw.netns, b.switchPort);
  for (const e of etcd) ensureVeth(e.netns, e.ifname, sw.netns, e.switchPort);
  // Remove ports of surplus nodes/backends/etcd members left on the bridges.
  const bridge = (netns: string, name: string, ports: string[]) => {
    if (!linkIn(netns, name)) ipIn(netns, ['link', 'add', name, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    ipIn(netns, ['link', 'set', name, 'up']);
    for (const key of BRIDGE_NF_SYSCTLS) if (readSysctlIn(netns, key) !== undefined) sysctlIn(netns, key, 0);
    for (const port of ports) {
      ipIn(netns, ['link', 'set', port, 'master', name]);
      ipIn(netns, ['link', 'set', port, 'up']);
    }
  };
  bridge(router.netns, router.bridge, nodes.map((x) => x.routerPort));
  bridge(sw.netns, sw.bridge, [router.switchPort, ...nodes.map((x) => x.switchPort), ...backends.map((b) => b.switchPort), ...etcd.map((e) => e.switchPort)]);

  const addr = (netns: string, ifname: string, address: string, len = 24) => {
    syncAddresses(netns, ifname, [`${address}/${len}`], () => true);
    ipIn(netns, ['link', 'set', ifname, 'up']);
    sysctlIn(netns, `net.ipv4.conf.${ifname}.rp_filter`, 0);
  };
  addr(client.netns, client.ifname, client.address);
  addr(router.netns, router.clientLeg, client.gateway);
  addr(router.netns, router.bridge, '198.18.10.1');
  addr(router.netns, router.backendLeg, '198.18.1.254');
  for (const x of nodes) {
    addr(x.netns, x.uplink, x.uplinkAddress);
    addr(x.netns, x.downlink, x.backendAddress);
    sysctlIn(x.netns, 'net.ipv4.ip_forward', 1);
    ipIn(x.netns, ['route', 'replace', 'default', 'via', '198.18.10.1']);
  }
  for (const b of backends) addr(b.netns, b.ifname, b.address);
  for (const e of etcd) addr(e.netns, e.ifname, e.address);

  sysctlIn(router.netns, 'net.ipv4.ip_forward', 1);
  // Flows (5-tuples), not address pairs, spread over the lb nodes. Only inside the router namespace.
  sysctlIn(router.netns, 'net.ipv4.fib_multipath_hash_policy', 1);
  ipIn(client.netns, ['route', 'replace', 'default', 'via', client.gateway]);
  for (const b of backends) ipIn(b.netns, ['route', 'replace', 'default', 'via', '198.18.1.254']);
  // NAT replies (a backend's own address to a client) go back through the lb nodes: table 100.
  ipIn(router.netns, ['rule', 'del', 'pref', '100'], { allowFail: true });
  ipIn(router.netns, ['rule', 'add', 'pref', '100', 'iif', router.backendLeg, 'from', BACKEND_LAN, 'to', CLIENT_LAN, 'lookup', String(RETURN_TABLE)]);

  setupIpv6(t);

  const dsr = t.mode === 'dsr';
  for (const b of backends) {
    syncAddresses(b.netns, 'lo', t.loopbackVips.map((v) => `${v}/32`), isLabVip);
    for (const scope of ['all', b.ifname]) {
      sysctlIn(b.netns, `net.ipv4.conf.${scope}.arp_ignore`, dsr ? 1 : 0);
      sysctlIn(b.netns, `net.ipv4.conf.${scope}.arp_announce`, dsr ? 2 : 0);
    }
  }

  // XDP_TX/REDIRECT from a node's legs land on these peers: GRO and xdp_pass make them take it at
  // once (lab.ts requiredOffloads/peerXdpPorts). Senders whose packets cross a node's XDP
  // program checksum in software.
  const peers = nodes.flatMap((x) => [{ netns: router.netns, ifname: x.routerPort }, { netns: sw.netns, ifname: x.switchPort }]);
  for (const p of peers) {
    setOffload(p.netns, p.ifname, 'gro', true);
    setOffload(p.netns, p.ifname, 'tx-checksum', false);
    const link = linkIn(p.netns, p.ifname);
    if (existsSync(xdpPassObject()) && !(link?.xdp?.prog ?? link?.xdp?.attached?.length)) {
      ipIn(p.netns, ['link', 'set', 'dev', p.ifname, 'xdpdrv', 'obj', xdpPassObject(), 'sec', 'xdp']);
    }
  }
  setOffload(client.netns, client.ifname, 'tx-checksum', false);
  setOffload(router.netns, router.clientLeg, 'tx-checksum', false);
  setOffload(router.netns, router.backendLeg, 'tx-checksum', false);
  for (const b of backends) setOffload(b.netns, b.ifname, 'tx-checksum', false);
  for (const e of etcd) setOffload(e.netns, e.ifname, 'tx-checksum', false);

  // Permanent neighbours for what the nodes' XDP program sends to (bpf_fib_lookup answers
  // NO_NEIGH for an unresolved next hop).
  const routerMac = macOf(router.netns, router.bridge);
  for (const x of nodes) {
    ipIn(x.netns, ['neigh', 'replace', '198.18.10.1', 'lladdr', routerMac, 'dev', x.uplink, 'nud', 'permanent']);
    for (const b of backends) ipIn(x.netns, ['neigh', 'replace', b.address, 'lladdr', macOf(b.netns, b.ifname), 'dev', x.downlink, 'nud', 'permanent']);
  }

  // Backend servers (lab.ts's server, same arguments as the single-node lab).
  const fake = { prefix, loopbackVips: t.loopbackVips } as unknown as LabTopology;
  for (const b of backends) {
    if (isOurProcess(state.servers[b.host], serverMarker(prefix, b.host))) continue;
    await startServer(fake, b.host, b.netns, (spawned) => { state.servers[b.host] = spawned; writeState(state); });
    log(`started ${b.host} server pid ${state.servers[b.host].pid}`);
  }

  // The router's BIRD.
  const rf = routerFiles(prefix);
  writeFileSync(rf.config, routerBirdConfig(t));
  const birdBinary = options.birdBinary ?? '/usr/sbin/bird';
  const birdc = path.join(path.dirname(birdBinary), 'birdc');
  if (state.router && isOurProcess(state.router, birdMarker(rf.socket))) {
    run('ip', ['netns', 'exec', router.netns, birdc, '-s', rf.socket, 'configure']);
  } else {
    rmSync(rf.pidFile, { force: true });
    run('ip', ['netns', 'exec', router.netns, birdBinary, '-c', rf.config, '-s', rf.socket, '-P', rf.pidFile]);
    let pid = 0;
    for (let i = 0; i < 100 && !pid; i++) {
      try { pid = Number(readFileSync(rf.pidFile, 'utf8').trim()); } catch { await sleep(50); }
    }
    if (!pid) throw new Error(`router BIRD did not write ${rf.pidFile}`);
    state.router = { pid, argv: [birdBinary, '-c', rf.config, '-s', rf.socket, '-P', rf.pidFile], startedAt: new Date().toISOString(), socket: rf.socket };
    writeState(state);
    log(`started router BIRD pid ${pid}`);
  }

  // startEtcdMember records each member in the state file itself: re-read, never overwrite it.
  for (const e of etcd) {
    if (!isOurProcess(state.etcd[e.host], etcdMarker(prefix, e.host))) await startEtcdMember(prefix, e.index);
  }
  state.etcd = readClusterState(prefix)?.etcd ?? state.etcd;
  writeState(state);
  return clusterStatus(prefix);
}

/**
 * The lab's IPv6 half (cluster-topology.ts): a /64 per segment from 2001:2:0:c000::/52, no DAD
 * (nodad, accept_dad 0), IPv6 forwarding on the router and the lb nodes only (inside their
 * namespaces), the router's L4 multipath hash for IPv6 too, default routes, the NAT return rule
 * (table 100, filled by the router's BIRD), and permanent neighbours between the hosts that
 * talk across a node's XDP program or to the router.
 */
function setupIpv6(t: ClusterTopology): void {
  const { client, router, nodes, backends } = t;
  const addr6 = (netns: string, ifname: string, address: string) => {
    sysctlIn(netns, `net.ipv6.conf.${ifname}.disable_ipv6`, 0);
    sysctlIn(netns, `net.ipv6.conf.${ifname}.accept_dad`, 0);
    const present = (linkIn(netns, ifname)?.addr_info ?? []).filter((a) => a.family === 'inet6' && a.local.startsWith('2001:2:0:c'));
    for (const a of present) if (`${a.local}/${a.prefixlen}` !== `${address}/64`) ipIn(netns, ['-6', 'addr', 'del', `${a.local}/${a.prefixlen}`, 'dev', ifname]);
    ipIn(netns, ['-6', 'addr', 'replace', `${address}/64`, 'dev', ifname, 'nodad']);
  };
  addr6(client.netns, client.ifname, CLUSTER_CLIENT_ADDRESS6);
  addr6(router.netns, router.clientLeg, ROUTER_CLIENT_ADDRESS6);
  addr6(router.netns, router.bridge, ROUTER_NODE_ADDRESS6);
  addr6(router.netns, router.backendLeg, ROUTER_BACKEND_ADDRESS6);
  for (const x of nodes) {
    addr6(x.netns, x.uplink, x.uplinkAddress6);
    addr6(x.netns, x.downlink, x.backendAddress6);
    sysctlIn(x.netns, 'net.ipv6.conf.all.forwarding', 1);
    ipIn(x.netns, ['-6', 'route', 'replace', 'default', 'via', ROUTER_NODE_ADDRESS6, 'dev', x.uplink]);
  }
  for (const b of backends) {
    addr6(b.netns, b.ifname, b.address6);
    ipIn(b.netns, ['-6', 'route', 'replace', 'default', 'via', ROUTER_BACKEND_ADDRESS6, 'dev', b.ifname]);
  }
  sysctlIn(router.netns, 'net.ipv6.conf.all.forwarding', 1);
  sysctlIn(router.netns, 'net.ipv6.fib_multipath_hash_policy', 1);
  ipIn(client.netns, ['-6', 'route', 'replace', 'default', 'via', ROUTER_CLIENT_ADDRESS6, 'dev', client.ifname]);
  ipIn(router.netns, ['-6', 'rule', 'del', 'pref', '100'], { allowFail: true });
  ipIn(router.netns, ['-6', 'rule', 'add', 'pref', '100', 'iif', router.backendLeg, 'from', BACKEND_LAN6, 'to', CLIENT_LAN6, 'lookup', String(RETURN_TABLE)]);

  const neigh = (netns: string, address: string, mac: string, dev: string) =>
    ipIn(netns, ['-6', 'neigh', 'replace', address, 'lladdr', mac, 'dev', dev, 'nud', 'permanent']);
  const routerNodeMac = macOf(router.netns, router.bridge);
  const routerBackendMac = macOf(router.netns, router.backendLeg);
  neigh(client.netns, ROUTER_CLIENT_ADDRESS6, macOf(router.netns, router.clientLeg), client.ifname);
  neigh(router.netns, CLUSTER_CLIENT_ADDRESS6, macOf(client.netns, client.ifname), router.clientLeg);
  for (const x of nodes) {
    neigh(x.netns, ROUTER_NODE_ADDRESS6, routerNodeMac, x.uplink);
    neigh(router.netns, x.uplinkAddress6, macOf(x.netns, x.uplink), router.bridge);
    neigh(router.netns, x.backendAddress6, macOf(x.netns, x.downlink), router.backendLeg);
    for (const b of backends) neigh(x.netns, b.address6, macOf(b.netns, b.ifname), x.downlink);
  }
  for (const b of backends) {
    neigh(b.netns, ROUTER_BACKEND_ADDRESS6, routerBackendMac, b.ifname);
    neigh(router.netns, b.address6, macOf(b.netns, b.ifname), router.backendLeg);
    for (const x of nodes) neigh(b.netns, x.backendAddress6, macOf(x.netns, x.downlink), b.ifname);
  }
}

/**
 * Starts a process inside a lab namespace, detached, output to <stateDir>/<name>.log, and
 * records its pid under `name` so that `lab down` stops it. With nsenter (default) the pid is
 * the process's own and the host's /sys stays visible (bpffs); `ip netns exec` otherwise.
 * @throws Error on an unknown lab or namespace.
 */
export function startLabProcess(prefix: string, name: string, netns: string, argv: string[], opts: { env?: NodeJS.ProcessEnv } = {}): RecordedProcess {
  const state = readClusterState(prefix);
  if (!state) throw new Error(`no cluster lab ${prefix} (lab up --nodes N first)`);
  if (!netnsExists(netns) || !isClusterNetns(prefix, netns)) throw new Error(`no lab namespace ${netns}`);
  const logFile = path.join(stateDir(prefix), `${name}.log`);
  const fd = openSync(logFile, 'a');
  const full = ['nsenter', `--net=/run/netns/${netns}`, ...argv];
  const child = spawn(full[0], full.slice(1), { detached: true, stdio: ['ignore', fd, fd], cwd: repoRoot(), env: opts.env ?? process.env });
  closeSync(fd);
  child.unref();
  const rec = { pid: child.pid!, argv, startedAt: new Date().toISOString() };
  state.processes[name] = rec;
  writeState(state);
  return rec;
}

/** Stops a process recorded by startLabProcess (SIGTERM, SIGKILL after 2 s; or SIGKILL at once). */
export async function stopLabProcess(prefix: string, name: string, opts: { kill?: boolean } = {}): Promise<void> {
  const state = readClusterState(prefix);
  const rec = state?.processes[name];
  if (!rec) return;
  if (!processGone(rec.pid) && pidCommandLine(rec.pid).includes(rec.argv[0])) {
    if (opts.kill) { try { process.kill(rec.pid, 'SIGKILL'); } catch { /* gone */ } } else await stopProcess(rec.pid);
  }
  for (let i = 0; i < 40 && !processGone(rec.pid); i++) await sleep(50);
  delete state!.processes[name];
  writeState(state!);
}

/**
 * Starts etcd member i of the lab (data in <stateDir>/etcdI.data; a new cluster of the lab's
 * members when the data dir is empty). Waits until it answers on its client URL.
 * @throws Error when the lab has no such member or etcd does not come up within 15 s.
 */
export async function startEtcdMember(prefix: string, index: number, etcdBinary = '/usr/bin/etcd'): Promise<RecordedProcess> {
  const t = recordedTopology(prefix);
  const e = t?.etcd.find((x) => x.index === index);
  if (!t || !e) throw new Error(`lab ${prefix} has no etcd member ${index}`);
  const state = readClusterState(prefix)!;
  const dataDir = path.join(stateDir(prefix), `${e.host}.data`);
  const argv = [etcdBinary, '--name', e.host, '--data-dir', dataDir,
    '--listen-client-urls', e.clientUrl, '--advertise-client-urls', e.clientUrl,
    '--listen-peer-urls', e.peerUrl, '--initial-advertise-peer-urls', e.peerUrl,
    '--initial-cluster', t.etcd.map((m) => `${m.host}=${m.peerUrl}`).join(','), '--initial-cluster-state', 'new',
    '--initial-cluster-token', `${prefix}-lab`, '--heartbeat-interval', '100', '--election-timeout', '1000'];
  const logFile = path.join(stateDir(prefix), `${e.host}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn('nsenter', [`--net=/run/netns/${e.netns}`, ...argv], { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.unref();
  const rec = { pid: child.pid!, argv, startedAt: new Date().toISOString() };
  state.etcd[e.host] = rec;
  writeState(state);
  if (t.etcd.length === 1 || Object.keys(state.etcd).length === t.etcd.length) {
    for (let i = 0; i < 150; i++) {
      const r = run('ip', ['netns', 'exec', e.netns, 'etcdctl', '--endpoints', e.clientUrl, '--dial-timeout', '1s', 'endpoint', 'health'], { allowFail: true, timeoutMs: 5000 });
      if (r.status === 0) return rec;
      if (processGone(rec.pid)) break;
      await sleep(100);
    }
    throw new Error(`etcd member ${e.host} did not become healthy; see ${logFile}`);
  }
  return rec;
}

/** Stops etcd member i (SIGKILL with kill: true). */
export async function stopEtcdMember(prefix: string, index: number, opts: { kill?: boolean } = {}): Promise<void> {
  const state = readClusterState(prefix);
  const host = `etcd${index}`;
  const rec = state?.etcd[host];
  if (!rec || !isOurProcess(rec, etcdMarker(prefix, host))) return;
  if (opts.kill) { try { process.kill(rec.pid, 'SIGKILL'); } catch { /* gone */ } } else await stopProcess(rec.pid);
  for (let i = 0; i < 40 && !processGone(rec.pid); i++) await sleep(50);
  delete state!.etcd[host];
  writeState(state!);
}

export interface ClusterDownResult { removedNamespaces: string[]; stoppedPids: number[]; foreignPids: Array<{ netns: string; pid: number; command: string }> }

/** Takes the cluster lab down: recorded pids (servers, router BIRD, etcd, lab processes), then the namespaces by name. */
export async function clusterDown(prefix: string): Promise<ClusterDownResult> {
  const state = readClusterState(prefix);
  const stoppedPids: number[] = [];
  for (const [name, rec] of Object.entries(state?.processes ?? {})) {
    if (!processGone(rec.pid) && pidCommandLine(rec.pid).includes(rec.argv[0])) { await stopProcess(rec.pid); stoppedPids.push(rec.pid); }
    void name;
  }
  for (const [host, rec] of Object.entries(state?.servers ?? {})) {
    if (isOurProcess(rec, serverMarker(prefix, host))) { await stopProcess(rec.pid); stoppedPids.push(rec.pid); }
  }
  for (const [host, rec] of Object.entries(state?.etcd ?? {})) {
    if (isOurProcess(rec, etcdMarker(prefix, host))) { await stopProcess(rec.pid); stoppedPids.push(rec.pid); }
  }
  if (state?.router && isOurProcess(state.router, birdMarker(state.router.socket))) { await stopProcess(state.router.pid); stoppedPids.push(state.router.pid); }
  const namespaces = [...new Set([...(state?.namespaces ?? []), ...listNetns().filter((n) => isClusterNetns(prefix, n))])].filter((n) => n.startsWith(`${prefix}-`));
  const foreignPids: ClusterDownResult['foreignPids'] = [];
  for (const netns of namespaces) {
    for (const pid of netnsPids(netns)) if (!stoppedPids.includes(pid)) foreignPids.push({ netns, pid, command: pidCommandLine(pid) });
  }
  const removedNamespaces = namespaces.filter((n) => deleteNetns(n));
  rmSync(stateDir(prefix), { recursive: true, force: true });
  return { removedNamespaces, stoppedPids, foreignPids };
}

export interface ClusterStatus {
  prefix: string; up: boolean; nodes: number; mode?: string;
  router: { pid: number; alive: boolean; sessions: Array<{ node: string; state: string }> } | null;
  /** VIP -> the node addresses of its ECMP route in the router's kernel. */
  routes: Record<string, string[]>;
  etcd: Array<{ host: string; url: string; pid: number | null; alive: boolean }>;
  problems: string[];
}

/** The router's kernel routes to the VIP subnet: VIP -> next hops (the ECMP set). */
export function routerEcmp(prefix: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const r = ipIn(`${prefix}-router`, ['-j', 'route', 'show', 'proto', 'bird'], { allowFail: true });
  if (r.status !== 0 || !r.stdout.trim()) return out;
  for (const route of JSON.parse(r.stdout) as Array<{ dst: string; gateway?: string; nexthops?: Array<{ gateway: string }> }>) {
    if (!isLabVip(route.dst.replace(/\/32$/, ''))) continue;
    out[route.dst.replace(/\/32$/, '')] = (route.nexthops ? route.nexthops.map((n) => n.gateway) : route.gateway ? [route.gateway] : []).sort();
  }
  return out;
}

/** The router's kernel routes to the cluster lab's IPv6 VIPs (2001:2:0:c100::/64): VIP -> next hops. */
export function routerEcmp6(prefix: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const r = ipIn(`${prefix}-router`, ['-6', '-j', 'route', 'show', 'proto', 'bird'], { allowFail: true });
  if (r.status !== 0 || !r.stdout.trim()) return out;
  for (const route of JSON.parse(r.stdout) as Array<{ dst: string; gateway?: string; nexthops?: Array<{ gateway: string }> }>) {
    const vip = route.dst.replace(/\/128$/, '');
    if (!isLabVip6(vip)) continue;
    out[vip] = (route.nexthops ? route.nexthops.map((n) => n.gateway) : route.gateway ? [route.gateway] : []).sort();
  }
  return out;
}

/** The cluster lab as it is now. */
export function clusterStatus(prefix: string): ClusterStatus {
  const state = readClusterState(prefix);
  const problems: string[] = [];
  if (!state) return { prefix, up: false, nodes: 0, router: null, routes: {}, etcd: [], problems: ['no cluster lab state (lab up --nodes N)'] };
  const t = clusterTopology({ prefix, ...state.options });
  for (const netns of clusterNamespaces(t)) if (!netnsExists(netns)) problems.push(`namespace ${netns} is missing`);
  for (const b of t.backends) if (!isOurProcess(state.servers[b.host], serverMarker(prefix, b.host))) problems.push(`backend server ${b.host} is not running`);
  let router: ClusterStatus['router'] = null;
  if (state.router) {
    const alive = isOurProcess(state.router, birdMarker(state.router.socket));
    if (!alive) problems.push('router BIRD is not running');
    const sessions: Array<{ node: string; state: string }> = [];
    if (alive) {
      const out = run('ip', ['netns', 'exec', t.router.netns, 'birdc', '-s', state.router.socket, 'show', 'protocols'], { allowFail: true }).stdout;
      for (const x of t.nodes) {
        const m = new RegExp(`^${x.host}\\s+BGP\\s+\\S+\\s+\\S+\\s+\\S+\\s+(\\S+)`, 'm').exec(out);
        sessions.push({ node: x.host, state: m ? m[1] : 'unknown' });
      }
    }
    router = { pid: state.router.pid, alive, sessions };
  }
  const etcd = t.etcd.map((e) => {
    const rec = state.etcd[e.host];
    const alive = isOurProcess(rec, etcdMarker(prefix, e.host));
    if (!alive) problems.push(`etcd member ${e.host} is not running`);
    return { host: e.host, url: e.clientUrl, pid: rec?.pid ?? null, alive };
  });
  return { prefix, up: problems.length === 0, nodes: t.nodes.length, mode: t.mode, router, routes: { ...routerEcmp(prefix), ...routerEcmp6(prefix) }, etcd, problems };
}

export function formatClusterStatus(s: ClusterStatus): string {
  const lines = [`lab ${s.prefix}: ${s.up ? 'up' : 'NOT up'} (${s.nodes} lb nodes${s.mode ? `, mode ${s.mode}` : ''})`];
  if (s.router) lines.push(`  router BIRD pid ${s.router.pid} ${s.router.alive ? 'alive' : 'DEAD'}: ${s.router.sessions.map((x) => `${x.node} ${x.state}`).join(', ')}`);
  for (const [vip, hops] of Object.entries(s.routes)) lines.push(`  route ${vip} via ${hops.join(', ')}`);
  for (const e of s.etcd) lines.push(`  ${e.host} ${e.url} pid ${e.pid ?? '-'} ${e.alive ? 'alive' : 'DEAD'}`);
  for (const p of s.problems) lines.push(`  problem: ${p}`);
  return lines.join('\n');
}

/** The argv that starts the daemon inside lb node k (nsenter, like lab.ts daemonCommand). */
export function clusterDaemonCommand(args: string[], prefix: string, node: number): string[] {
  return ['nsenter', `--net=/run/netns/${prefix}-lb${node}`, process.execPath, path.join(repoRoot(), 'dist', 'src', 'cli.js'), 'daemon', ...args];
}
