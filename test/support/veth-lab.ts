/**
 * A three-namespace veth topology for kernel tests that drive the Dataplane directly:
 * `<prefix>-c` (client, <clientNet>.2) -- `<prefix>-lb` (legs <prefix>-l0 / -l1, .1 on each
 * net, forwarding on) -- `<prefix>-b` (backend, <backendNet>.2). Neighbours are set permanent
 * up front, so the balancer's FIB lookup finds both next hops from the first packet; TX checksum
 * offload is off on the end hosts so frames carry real checksums. Addresses from 198.18.0.0/15.
 */
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { BpfObject, XdpLink, enterNetns, type Program } from '../../src/bpf';
import { repoRoot } from '../../src/paths';

/** Runs a command (inside `ns` when given); @throws with its stderr unless allowFail. */
export function sh(args: string[], opts: { ns?: string; allowFail?: boolean } = {}): string {
  const [cmd, ...argv] = opts.ns ? ['ip', 'netns', 'exec', opts.ns, ...args] : args;
  try {
    return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  } catch (err) {
    if (opts.allowFail) return '';
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${argv.join(' ')}: ${e.stderr || e.message}`);
  }
}

export interface VethLab {
  ns: { client: string; lb: string; backend: string };
  dev: { client: string; lbClient: string; lbBackend: string; backend: string };
  client: string;
  backend: string;
}

/** The names and addresses of the topology (nothing is created). */
export function vethLab(prefix: string, clientNet: string, backendNet: string): VethLab {
  return {
    ns: { client: `${prefix}-c`, lb: `${prefix}-lb`, backend: `${prefix}-b` },
    dev: { client: `${prefix}-c0`, lbClient: `${prefix}-l0`, lbBackend: `${prefix}-l1`, backend: `${prefix}-b0` },
    client: `${clientNet}.2`,
    backend: `${backendNet}.2`,
  };
}

/** Removes the lab's namespaces (their veths go with them), by name. */
export function removeVethLab(lab: VethLab): void {
  for (const ns of Object.values(lab.ns)) sh(['ip', 'netns', 'del', ns], { allowFail: true });
}

/** The MAC address of `dev` in `ns`. */
export const macOf = (ns: string, dev: string): string => (JSON.parse(sh(['ip', '-j', 'link', 'show', dev], { ns })) as Array<{ address: string }>)[0].address;

/** Builds the topology afresh (removing a leftover one of the same names first). */
export function buildVethLab(lab: VethLab): void {
  removeVethLab(lab);
  const { ns, dev } = lab;
  const gw = (host: string) => host.replace(/\.2$/, '.1');
  for (const n of Object.values(ns)) sh(['ip', 'netns', 'add', n]);
  sh(['ip', 'link', 'add', dev.client, 'netns', ns.client, 'type', 'veth', 'peer', 'name', dev.lbClient, 'netns', ns.lb]);
  sh(['ip', 'link', 'add', dev.backend, 'netns', ns.backend, 'type', 'veth', 'peer', 'name', dev.lbBackend, 'netns', ns.lb]);
  const inNs = (n: string, ...args: string[]) => sh(args, { ns: n });
  inNs(ns.client, 'ip', 'addr', 'add', `${lab.client}/24`, 'dev', dev.client);
  inNs(ns.lb, 'ip', 'addr', 'add', `${gw(lab.client)}/24`, 'dev', dev.lbClient);
  inNs(ns.lb, 'ip', 'addr', 'add', `${gw(lab.backend)}/24`, 'dev', dev.lbBackend);
  inNs(ns.backend, 'ip', 'addr', 'add', `${lab.backend}/24`, 'dev', dev.backend);
  for (const [n, d] of [[ns.client, dev.client], [ns.lb, dev.lbClient], [ns.lb, dev.lbBackend], [ns.backend, dev.backend]]) {
    inNs(n, 'ip', 'link', 'set', 'lo', 'up');
    inNs(n, 'ip', 'link', 'set', d, 'up');
  }
  inNs(ns.client, 'ip', 'route', 'add', 'default', 'via', gw(lab.client));
  inNs(ns.backend, 'ip', 'route', 'add', 'default', 'via', gw(lab.backend));
  inNs(ns.lb, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  inNs(ns.client, 'ethtool', '-K', dev.client, 'tx', 'off');
  inNs(ns.backend, 'ethtool', '-K', dev.backend, 'tx', 'off');
  inNs(ns.lb, 'ip', 'neigh', 'replace', lab.client, 'lladdr', macOf(ns.client, dev.client), 'dev', dev.lbClient, 'nud', 'permanent');
  inNs(ns.lb, 'ip', 'neigh', 'replace', lab.backend, 'lladdr', macOf(ns.backend, dev.backend), 'dev', dev.lbBackend, 'nud', 'permanent');
  inNs(ns.client, 'ip', 'neigh', 'replace', gw(lab.client), 'lladdr', macOf(ns.lb, dev.lbClient), 'dev', dev.client, 'nud', 'permanent');
  inNs(ns.backend, 'ip', 'neigh', 'replace', gw(lab.backend), 'lladdr', macOf(ns.lb, dev.lbBackend), 'dev', dev.backend, 'nud', 'permanent');
}

/**
 * XDP_PASS on the client's and the backend's veth, so that veth accepts frames redirected to
 * them (a veth peer without NAPI refuses redirected frames). The caller closes what it gets.
 */
export function attachPeerPass(lab: VethLab): { progs: Program[]; links: XdpLink[] } {
  const progs: Program[] = [];
  const links: XdpLink[] = [];
  const passObject = BpfObject.load(path.join(repoRoot(), 'bpf', 'xdp_pass.o'));
  try {
    for (const [ns, dev] of [[lab.ns.client, lab.dev.client], [lab.ns.backend, lab.dev.backend]]) {
      const restore = enterNetns(ns);
      try {
        const prog = passObject.program('xdp_pass');
        progs.push(prog);
        links.push(XdpLink.attach(prog, dev, 'native'));
      } finally {
        restore();
      }
    }
  } finally {
    passObject.close();
  }
  return { progs, links };
}
