/**
 * BIRD 2 as this node's BGP speaker: the config text the daemon writes, `birdc` calls, and
 * parsers of birdc's replies (show protocols all, show bfd sessions, show route export).
 * No state here; src/cluster/bgp-speaker.ts drives it.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { BgpConfig } from '../config/schema';
import { canonicalAddress, canonicalOrSelf, compareAddresses, familyOf } from '../domain/address';

/** The static protocol holding the announced IPv4 VIP /32s; exported to the IPv4 peers. */
export const VIPS_PROTOCOL = 'xdplb_vips';
/** The static protocol holding the announced IPv6 VIP /128s; exported to the IPv6 peers. */
export const VIPS6_PROTOCOL = 'xdplb_vips6';
/** BFD timers: 100 ms x 3 = a dead peer is detected in 0.3 s (docs/decisions.md). */
export const BFD_INTERVAL_MS = 100;
export const BFD_MULTIPLIER = 3;

/** The BGP protocol name of a peer in BIRD's config (peer_198_18_10_1, peer_2001_2_0_c010__1). */
export function peerProtocol(address: string): string {
  return `peer_${canonicalAddress(address).replace(/[.:]/g, '_')}`;
}

/** The route prefix of a VIP: a.b.c.d/32 or v6/128. */
export function vipPrefix(vip: string): string {
  return familyOf(vip) === 6 ? `${canonicalAddress(vip)}/128` : `${vip}/32`;
}

/** The VIP of a host-route prefix (the inverse of vipPrefix); undefined for any other prefix. */
export function prefixVip(prefix: string): string | undefined {
  const m = /^(.+)\/(32|128)$/.exec(prefix);
  if (!m) return undefined;
  const family = m[1].includes(':') ? 6 : 4;
  if ((family === 6) !== (m[2] === '128')) return undefined;
  return canonicalOrSelf(m[1]);
}

/**
 * The BIRD config announcing `vips` (host addresses of either family) to the peers of `bgp`.
 * Routes are static blackholes in BIRD's own tables only (no kernel protocol: nothing changes in
 * this node's routing table): IPv4 VIPs as /32s in xdplb_vips (master4), IPv6 VIPs as /128s in
 * xdplb_vips6 (master6). A peer's address family picks its session's channel: an IPv4 peer's
 * session carries the ipv4 channel and exports the /32s, an IPv6 peer's session the ipv6
 * channel and exports the /128s, each with this node's address on that session as next hop.
 */
export function birdConfigText(bgp: BgpConfig, vips: readonly string[]): string {
  const lines = ['# Written by the xdplb daemon: edits are overwritten (config: bgp in the xdplb config file).'];
  if (bgp.routerId) lines.push(`router id ${bgp.routerId};`);
  lines.push('protocol device { scan time 10; }');
  if (bgp.bfd) {
    lines.push(`protocol bfd xdplb_bfd { interface "*" { min rx interval ${BFD_INTERVAL_MS} ms; min tx interval ${BFD_INTERVAL_MS} ms; multiplier ${BFD_MULTIPLIER}; }; }`);
  }
  // Each family in its own protocol: an IPv6 route in the ipv4 protocol (or the reverse) would
  // make BIRD refuse the whole file.
  const sorted = [...new Set(vips.map((v) => (familyOf(v) === 6 ? canonicalAddress(v) : v)))].sort(compareAddresses);
  lines.push(`protocol static ${VIPS_PROTOCOL} {`, '  ipv4;');
  for (const vip of sorted) if (familyOf(vip) === 4) lines.push(`  route ${vipPrefix(vip)} blackhole;`);
  lines.push('}');
  lines.push(`protocol static ${VIPS6_PROTOCOL} {`, '  ipv6;');
  for (const vip of sorted) if (familyOf(vip) === 6) lines.push(`  route ${vipPrefix(vip)} blackhole;`);
  lines.push('}');
  const keepalive = Math.max(1, Math.floor(bgp.holdTime / 3));
  for (const peer of bgp.peers) {
    const address = canonicalAddress(peer.address);
    const channel = familyOf(address) === 6 ? 'ipv6' : 'ipv4';
    const statics = channel === 'ipv6' ? VIPS6_PROTOCOL : VIPS_PROTOCOL;
    lines.push(`protocol bgp ${peerProtocol(address)} {`,
      `  local as ${bgp.localAs};`,
      `  neighbor ${address} as ${peer.as};`,
      `  hold time ${bgp.holdTime}; keepalive time ${keepalive};`,
      '  connect retry time 1; connect delay time 1; error wait time 1, 5;',
      ...(bgp.bfd ? ['  bfd on;'] : []),
      `  ${channel} { import none; export where proto = "${statics}"; next hop self; };`,
      '}');
  }
  return lines.join('\n') + '\n';
}

/** Where BIRD's files live for a control socket: bird.conf and bird.pid beside it. */
export function birdFiles(socket: string): { socket: string; config: string; pidFile: string; log: string } {
  const dir = path.dirname(socket);
  return { socket, config: path.join(dir, 'bird.conf'), pidFile: path.join(dir, 'bird.pid'), log: path.join(dir, 'bird.log') };
}

/** birdc beside the bird binary (/usr/sbin/bird -> /usr/sbin/birdc). */
export function birdcBinary(birdBinary: string): string {
  return path.join(path.dirname(birdBinary), 'birdc');
}

/**
 * Runs one birdc command against a socket and returns its output.
 * @throws Error naming the command when birdc cannot connect, times out or BIRD answers an error.
 */
export function birdc(birdcPath: string, socket: string, args: string[], timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(birdcPath, ['-s', socket, ...args], { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const out = String(stdout ?? '');
      if (err) return reject(new Error(`birdc ${args.join(' ')}: ${(String(stderr ?? '').trim() || out.trim() || err.message).split('\n')[0]}`));
      // birdc exits 0 even when BIRD refuses a command: its error replies are "syntax error", "...: error" lines.
      if (/^(Unable to connect|syntax error|.*parse error)/im.test(out)) return reject(new Error(`birdc ${args.join(' ')}: ${out.trim().split('\n').slice(-1)[0]}`));
      resolve(out);
    });
  });
}

export interface BirdProtocolState {
  name: string; proto: string; state: string; info: string;
  /** BGP only: "BGP state:" (Established, Active, Connect...). */
  bgpState?: string; neighbor?: string;
}

/** Parses `show protocols all`: one entry per protocol (header line then indented details). */
export function parseProtocols(text: string): BirdProtocolState[] {
  const out: BirdProtocolState[] = [];
  let current: BirdProtocolState | undefined;
  for (const line of text.split('\n')) {
    if (/^BIRD |^Name\s+Proto/.test(line) || line.trim() === '') continue;
    const head = /^(\S+)\s+(\S+)\s+(\S+)\s+(up|down|start|stop)\s+\S+(?:\s+\S+)?\s*(.*)$/.exec(line);
    if (head && !/^\s/.test(line)) {
      current = { name: head[1], proto: head[2], state: head[4], info: head[5].trim() };
      out.push(current);
      continue;
    }
    if (!current) continue;
    const bgp = /^\s+BGP state:\s+(\S+)/.exec(line);
    if (bgp) current.bgpState = bgp[1];
    const nb = /^\s+Neighbor address:\s+(\S+)/.exec(line);
    if (nb) current.neighbor = nb[1].replace(/%.*$/, '');
  }
  return out;
}

/** Parses `show bfd sessions`: neighbor address (canonical text, either family) -> state (Up, Down, Init, AdminDown). */
export function parseBfdSessions(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\d+\.\d+\.\d+\.\d+|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)\s+\S+\s+(Up|Down|Init|AdminDown)\b/.exec(line.trim());
    if (m) out.set(canonicalOrSelf(m[1]), m[2]);
  }
  return out;
}

/** Parses `show route ...`: the IPv4 and IPv6 prefixes listed (routes' first column). */
export function parseRoutePrefixes(text: string): string[] {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^(\d+\.\d+\.\d+\.\d+\/\d+|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*\/\d+)\s/.exec(line);
    if (m) out.add(m[1]);
  }
  return [...out];
}
