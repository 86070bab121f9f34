/**
 * A development/test double of the xdplb daemon's HTTP surface: it serves web/dist and answers
 * the API v1 shapes (docs/api.md) with SYNTHETIC, changing numbers. It exists so the dashboard
 * can be built, screenshotted and tested while (or where) the real daemon cannot run. It says
 * nothing about the kernel: never use it to claim data-plane behaviour.
 *
 * Run by hand: `node --import tsx test/browser/dev-server.ts --serve [port]` (default 8721).
 * (--serve, not `require.main`: `node --test dist/test` runs every file under test/ as a test,
 * and this one must then load and exit, not serve forever.)
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import type {
  BackendView, MapView, ProgramView, ServiceView, SettingsView, StatsView, StreamMessage,
} from '../../src/domain/types';
import type { TraceEvent } from '../../src/dataplane/types';
import { REASONS, XDP_ACTIONS } from '../../src/dataplane/types';
import { findDisagreements, type ClusterView, type NodeStatus } from '../../src/api/cluster-view';
import { repoRoot } from './repo-root';
import { forbiddenAddressReason, formatHostPort as hostPort, tryParseAddress, tryParseHostPort, type ParsedAddress } from '../../src/domain/address';

export interface DevUser { password: string; role: 'viewer' | 'admin' }
export interface DevServerOptions {
  port?: number;                      // 0 = any free port (default)
  users?: Record<string, DevUser>;    // default: admin/admin-pass, viewer/viewer-pass
  bench?: unknown;                    // what /bench/latest returns (default null)
  /** Dual stack: two IPv6 services (long and short addresses) beside the IPv4 ones. */
  ipv6?: boolean;
  /** Made-up trace events four times a second (default true); false: only emitEvents(). */
  randomEvents?: boolean;
}
export interface DevServer {
  url: string;
  /** Drops every live stream connection (what a daemon restart looks like to the browser). */
  dropStreams(): void;
  /** Makes the synthetic cluster's store unreachable (reason) or reachable again (null). */
  setStoreStale(reason: string | null): void;
  /** Gives a node of the synthetic cluster this many moved Maglev slots (0: steady). */
  setMovedSlots(node: string, slots: number): void;
  /** Every accepted PUT /api/v1/nodes/{name}/drain, in order (node and body as received). */
  drainRequests: Array<{ node: string; body: Record<string, unknown> }>;
  /** Sends these trace events on every live stream now. */
  emitEvents(events: TraceEvent[]): void;
  close(): Promise<void>;
}

export const DEFAULT_DEV_USERS: Record<string, DevUser> = {
  admin: { password: 'admin-pass', role: 'admin' },
  viewer: { password: 'viewer-pass', role: 'viewer' },
};

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly field?: string) { super(message); }
}

interface BackendState { address: string; port: number; weight: number; drain: boolean; health: BackendView['health']; id: number }
interface ServiceState {
  id: number; name: string; vip: string; port: number; protocol: 'tcp' | 'udp'; mode: 'nat' | 'dsr';
  tableSize: number; baseFwdPps: number; pktSize: number; backends: BackendState[];
}
type Counter = { packets: number; bytes: number };

/** Synthetic state of one fake balancer. Every number here is made up. */
class SyntheticBalancer {
  settings: SettingsView = { fragPolicy: 'drop', sampleRate: 100, flowCache: false };
  statsEnabled = false;
  history: StatsView[] = [];
  private nextBackendId = 10;
  private tick = 0;
  private counters = new Map<string, Counter>();
  private programRuns = 0;
  private programRunNs = 0;
  readonly startedAt = Date.now();
  services: ServiceState[] = [
    { id: 1, name: 'web', vip: '198.18.0.10', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 65537, baseFwdPps: 48_000, pktSize: 620,
      backends: [this.backend('198.18.1.11', 8080, 1), this.backend('198.18.1.12', 8080, 1), this.backend('198.18.1.13', 8080, 2)] },
    { id: 2, name: 'dns', vip: '198.18.0.53', port: 53, protocol: 'udp', mode: 'dsr', tableSize: 251, baseFwdPps: 12_500, pktSize: 84,
      backends: [this.backend('198.18.2.21', 53, 1), this.backend('198.18.2.22', 53, 1)] },
  ];

  constructor(ipv6 = false) {
    // The IPv6 fixtures: canonical text as the daemon outputs it; the longest form a 2001:2::/48
    // address takes (8 groups of 4 digits but the 0) next to short ones.
    if (ipv6) {
      this.services.push(
        { id: 3, name: 'web6', vip: '2001:2:0:a5a5::10', port: 443, protocol: 'tcp', mode: 'nat', tableSize: 65537, baseFwdPps: 31_000, pktSize: 900,
          backends: [this.backend('2001:2:0:a5a5:b6b6:c7c7:d8d8:e9e9', 8443, 1), this.backend('2001:2:0:a5a5:b6b6:c7c7:d8d8:e9ea', 8443, 1),
            this.backend('2001:2::1:11', 8443, 2)] },
        { id: 4, name: 'dns6', vip: '2001:2::53', port: 53, protocol: 'udp', mode: 'dsr', tableSize: 251, baseFwdPps: 7_000, pktSize: 104,
          backends: [this.backend('2001:2::2:21', 53, 1), this.backend('2001:2::2:22', 53, 1)] });
    }
    const now = Date.now();
    for (let i = 120; i > 0; i--) this.history.push(this.sample(now - i * 1000));
  }

  private backend(address: string, port: number, weight: number): BackendState {
    return { address, port, weight, drain: false, health: 'up', id: this.nextBackendId++ };
  }

  private eligible(svc: ServiceState): BackendState[] {
    return svc.backends.filter((b) => !b.drain && b.health !== 'down' && b.weight > 0);
  }

  view(svc: ServiceState): ServiceView {
    const eligible = this.eligible(svc);
    const totalWeight = eligible.reduce((acc, b) => acc + b.weight, 0);
    return {
      id: svc.id, name: svc.name, vip: svc.vip, port: svc.port, protocol: svc.protocol, mode: svc.mode, tableSize: svc.tableSize,
      healthCheck: svc.protocol === 'tcp'
        ? { type: 'http', path: '/healthz', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3 }
        : { type: 'tcp', intervalMs: 2000, timeoutMs: 500, rise: 2, fall: 3 },
      backends: svc.backends.map((b) => ({
        address: b.address, port: b.port, weight: b.weight, drain: b.drain, id: b.id, key: hostPort(b.address, b.port),
        health: b.health, draining: b.drain, inTable: eligible.includes(b),
        tableShare: eligible.includes(b) && totalWeight > 0 ? b.weight / totalWeight : 0,
      })),
    };
  }

  views(): ServiceView[] { return this.services.map((s) => this.view(s)); }

  private count(key: string, packets: number, bytes: number): Counter {
    const c = this.counters.get(key) ?? { packets: 0, bytes: 0 };
    c.packets += packets;
    c.bytes += bytes;
    this.counters.set(key, c);
    return c;
  }

  /** Advances the synthetic counters by one second and returns the StatsView at `at`. */
  sample(at = Date.now()): StatsView {
    this.tick++;
    const wave = (period: number, phase: number) => 1 + 0.35 * Math.sin((this.tick + phase) / period) + 0.08 * (Math.random() - 0.5);
    const services: StatsView['services'] = [];
    let forwarded = 0;
    let forwardedBytes = 0;
    for (const svc of this.services) {
      const view = this.view(svc);
      const fwdPps = Math.round(svc.baseFwdPps * wave(9, svc.id * 7));
      const revPps = svc.mode === 'nat' ? Math.round(fwdPps * 0.92) : 0;
      const backends = view.backends.map((b) => {
        const bf = Math.round(fwdPps * b.tableShare);
        const br = Math.round(revPps * b.tableShare);
        const c = this.count(`b:${svc.name}:${b.key}`, bf + br, (bf + br) * svc.pktSize);
        // bps fields are BITS per second, as the daemon reports them.
        return { key: b.key, fwdPps: bf, fwdBps: bf * svc.pktSize * 8, revPps: br, revBps: br * svc.pktSize * 2 * 8,
          packets: c.packets, bytes: c.bytes, health: b.health };
      });
      const c = this.count(`s:${svc.name}`, fwdPps + revPps, (fwdPps + revPps) * svc.pktSize);
      services.push({ name: svc.name, fwdPps, fwdBps: fwdPps * svc.pktSize * 8, revPps, revBps: revPps * svc.pktSize * 2 * 8,
        packets: c.packets, bytes: c.bytes, backends });
      forwarded += fwdPps + revPps;
      forwardedBytes += fwdPps * svc.pktSize + revPps * svc.pktSize * 2;
    }
    const passPps = Math.round(900 * wave(5, 3));
    const dropPps = Math.round(40 * wave(3, 1));
    const actionPps: Record<string, number> = { aborted: 0, drop: dropPps, pass: passPps, tx: forwarded, redirect: 0 };
    const reasonPps: Record<string, number> = {
      forwarded: forwarded - Math.round(forwarded * 0.46), reversed: Math.round(forwarded * 0.46), not_vip: passPps - 12,
      not_ip: 12, no_backend: Math.round(dropPps * 0.2), malformed: Math.round(dropPps * 0.1), fragment: dropPps - Math.round(dropPps * 0.2) - Math.round(dropPps * 0.1),
    };
    const totalPps = forwarded + passPps + dropPps;
    const totalBps = forwardedBytes + passPps * 300 + dropPps * 100;
    const total = this.count('total', totalPps, totalBps);
    this.programRuns += totalPps;
    this.programRunNs += totalPps * (48 + 10 * Math.random());
    return {
      at, interval: 1, totals: { pps: totalPps, bps: totalBps * 8, packets: total.packets, bytes: total.bytes }, services,
      actions: XDP_ACTIONS.map((name) => ({ name, pps: actionPps[name] ?? 0, packets: this.count(`a:${name}`, actionPps[name] ?? 0, 0).packets })),
      reasons: REASONS.map((name) => ({ name, pps: reasonPps[name] ?? 0, packets: this.count(`r:${name}`, reasonPps[name] ?? 0, 0).packets })),
    };
  }

  /** Flips the health of the last web backend now and then, so the dashboard shows transitions. */
  maybeFlapHealth(): { service: string; backend: string; health: 'up' | 'down' } | null {
    if (this.tick % 45 !== 0) return null;
    const b = this.services[0].backends[this.services[0].backends.length - 1];
    if (!b) return null;
    b.health = b.health === 'down' ? 'up' : 'down';
    return { service: this.services[0].name, backend: hostPort(b.address, b.port), health: b.health };
  }

  randomEvent(): TraceEvent {
    const svc = this.services[Math.floor(Math.random() * this.services.length)];
    const eligible = this.eligible(svc);
    const r = Math.random();
    const base = { tsNs: Number(process.hrtime.bigint()), ifindex: 3, pktLen: svc.pktSize + Math.floor(Math.random() * 40),
      serviceId: svc.id, sport: 1024 + Math.floor(Math.random() * 60000), proto: svc.protocol === 'tcp' ? 6 : 17 };
    const v6 = svc.vip.includes(':');
    const client = v6 ? `2001:2:0:c11e:${(1 + Math.floor(Math.random() * 0xfffe)).toString(16)}::${(1 + Math.floor(Math.random() * 40)).toString(16)}`
      : `198.18.100.${1 + Math.floor(Math.random() * 40)}`;
    if (r < 0.06 || eligible.length === 0) {
      return { ...base, service: svc.name, backend: null, backendId: 0, saddr: client, daddr: svc.vip, dport: svc.port,
        action: 'drop', reason: eligible.length === 0 ? 'no_backend' : 'fragment' };
    }
    if (r < 0.12) {
      return { ...base, service: null, backend: null, serviceId: 0, backendId: 0, saddr: client, daddr: v6 ? '2001:2::1' : '198.18.0.1', dport: 22,
        proto: 6, action: 'pass', reason: 'not_vip' };
    }
    const b = eligible[Math.floor(Math.random() * eligible.length)];
    if (r < 0.5 && svc.mode === 'nat') {
      return { ...base, service: svc.name, backend: hostPort(b.address, b.port), backendId: b.id, saddr: b.address, sport: b.port,
        daddr: client, dport: base.sport, action: 'tx', reason: 'reversed' };
    }
    return { ...base, service: svc.name, backend: hostPort(b.address, b.port), backendId: b.id, saddr: client, daddr: svc.vip,
      dport: svc.port, action: 'tx', reason: 'forwarded' };
  }

  programs(): ProgramView[] {
    const now = Date.now();
    const lb: ProgramView = {
      id: 142, name: 'xdplb_lb', type: 6, typeName: 'xdp', tag: '8f3a1c2be90d4471', loadTime: this.startedAt,
      jitedSize: 5912, xlatedSize: 9848, mapIds: [201, 202, 203, 204, 205, 206], runCount: this.statsEnabled ? this.programRuns : 0,
      runTimeNs: this.statsEnabled ? Math.round(this.programRunNs) : 0, btfId: 88, uid: 0,
      attach: { ifname: 'xlbdev-lb0', ifindex: 3, mode: 'native' },
      avgNs: this.statsEnabled && this.programRuns ? this.programRunNs / this.programRuns : null, xdplb: true,
    };
    const other = (id: number, name: string, type: number, typeName: string, ageMs: number): ProgramView => ({
      id, name, type, typeName, tag: (id * 2654435761).toString(16).padStart(16, '0').slice(0, 16), loadTime: now - ageMs,
      jitedSize: 300 + id, xlatedSize: 500 + id * 2, mapIds: [], runCount: 0, runTimeNs: 0, btfId: 0, uid: 0, avgNs: null, xdplb: false,
    });
    return [other(3, 'sd_devices', 15, 'cgroup_device', 86_400_000), other(7, 'sd_fw_egress', 8, 'cgroup_skb', 86_400_000),
      other(8, 'sd_fw_ingress', 8, 'cgroup_skb', 86_400_000), lb];
  }

  maps(): MapView[] {
    const svcCount = this.services.length;
    const backendCount = this.services.reduce((a, s) => a + s.backends.length, 0);
    return [
      { id: 201, name: 'services', type: 1, typeName: 'hash', keySize: 8, valueSize: 8, maxEntries: 512, usedEntries: svcCount },
      { id: 202, name: 'maglev', type: 12, typeName: 'array_of_maps', keySize: 4, valueSize: 4, maxEntries: 512, usedEntries: svcCount },
      { id: 203, name: 'backends', type: 2, typeName: 'array', keySize: 4, valueSize: 12, maxEntries: 4096, usedEntries: backendCount },
      { id: 204, name: 'reverse', type: 1, typeName: 'hash', keySize: 8, valueSize: 8, maxEntries: 4096, usedEntries: backendCount - 2 },
      { id: 205, name: 'stats', type: 6, typeName: 'percpu_array', keySize: 4, valueSize: 16, maxEntries: 8192, usedEntries: 64 },
      { id: 206, name: 'events', type: 27, typeName: 'ringbuf', keySize: 0, valueSize: 0, maxEntries: 262144, usedEntries: 0 },
      ...(this.services.some((s) => s.vip.includes(':')) ? [
        { id: 207, name: 'services6', type: 1, typeName: 'hash', keySize: 20, valueSize: 8, maxEntries: 512,
          usedEntries: this.services.filter((s) => s.vip.includes(':')).length },
        { id: 208, name: 'backends6', type: 2, typeName: 'array', keySize: 4, valueSize: 44, maxEntries: 4096,
          usedEntries: this.services.filter((s) => s.vip.includes(':')).reduce((a, s) => a + s.backends.length, 0) },
      ] : []),
    ];
  }

  mapEntries(name: string): Array<{ key: unknown; value: unknown }> {
    const views = this.views();
    switch (name) {
      case 'services6':
        return views.filter((s) => s.vip.includes(':')).map((s) => ({ key: { vip: s.vip, port: s.port, proto: s.protocol }, value: { serviceId: s.id, mode: s.mode, flags: 0 } }));
      case 'backends6':
        return views.filter((s) => s.vip.includes(':')).flatMap((s) => s.backends.map((b) => ({ key: { backendId: b.id },
          value: { ip: b.address, port: b.port, flags: b.draining ? 'draining' : '', serviceId: s.id, vip: s.vip, vport: s.port } })));
      case 'services':
        return views.filter((s) => !s.vip.includes(':')).map((s) => ({ key: { vip: s.vip, port: s.port, proto: s.protocol }, value: { serviceId: s.id, mode: s.mode, flags: 0 } }));
      case 'maglev':
        return views.map((s) => ({ key: { serviceId: s.id }, value: {
          serviceId: s.id, service: s.name, tableSize: s.tableSize,
          shares: s.backends.filter((b) => b.inTable).map((b) => ({ backend: b.key, slots: Math.round(b.tableShare * (s.tableSize ?? 0)), share: b.tableShare })),
        } }));
      case 'backends':
        return views.filter((s) => !s.vip.includes(':')).flatMap((s) => s.backends.map((b) => ({ key: { backendId: b.id }, value: { ip: b.address, port: b.port, flags: b.draining ? 'draining' : '' } })));
      case 'reverse':
        return views.filter((s) => s.mode === 'nat' && !s.vip.includes(':')).flatMap((s) => s.backends.map((b) => ({
          key: { ip: b.address, port: b.port, proto: s.protocol }, value: { vip: s.vip, vport: s.port } })));
      case 'stats': {
        const last = this.history[this.history.length - 1];
        return Array.from({ length: 64 }, (_, i) => ({ key: { index: i }, value: {
          packets: last ? Math.round(last.totals.packets / (i + 2)) : 0, bytes: last ? Math.round(last.totals.bytes / (i + 2)) : 0 } }));
      }
      case 'events': return [];
      default: throw new HttpError(404, 'XDPLB_ERR_NOT_FOUND', `no map named "${name}"`);
    }
  }

  /** Synthetic cluster: lb1 is this balancer, lb2 lags one revision, lb3 sees 198.18.1.12 down (a disagreement). */
  readonly drained = new Map<string, boolean>([['lb1', false], ['lb2', false], ['lb3', false]]);
  /** Moved Maglev slots per node (a drain without force is refused while > 0, as the daemon does). */
  readonly movedSlots = new Map<string, number>();
  private readonly revision = 1042;
  storeStale: string | null = null;

  cluster(): ClusterView {
    const latest = this.history[this.history.length - 1];
    const selfHealth: NodeStatus['health'] = Object.fromEntries(this.views().map((s) => [s.name, Object.fromEntries(s.backends.map((b) => [b.key, b.health]))]));
    const node = (name: string, index: number, lag: number, share: number, cpu: number, health: NodeStatus['health']): NodeStatus => {
      const drained = this.drained.get(name) ?? false;
      const usable = this.views().filter((s) => s.backends.some((b) => !b.draining && b.weight > 0 && (health[s.name]?.[b.key] === 'up' || health[s.name]?.[b.key] === 'unchecked')));
      return {
        name, self: index === 1, alive: true, appliedRevision: this.revision - lag, lag,
        dataplane: { attached: true, interfaces: [`xlbdev-lb${index}`] },
        bgp: { state: 'established', peers: [{ peer: '198.18.250.1', state: 'established', bfd: 'up' }],
          announced: drained ? [] : usable.map((s) => `${s.vip}/${s.vip.includes(':') ? 128 : 32}`), drained },
        health,
        rates: { pps: Math.round((latest?.totals.pps ?? 0) * share), bps: Math.round((latest?.totals.bps ?? 0) * share) },
        cpu: +(cpu + 0.05 * Math.sin(this.tick / 7 + index)).toFixed(3),
        movedSlots: this.movedSlots.get(name) ?? 0,
        updatedAt: new Date(Date.now() - 300 * index).toISOString(),
      };
    };
    const lb3Health = JSON.parse(JSON.stringify(selfHealth)) as NodeStatus['health'];
    if (lb3Health.web?.['198.18.1.12:8080']) lb3Health.web['198.18.1.12:8080'] = 'down';
    const nodes = [node('lb1', 1, 0, 1, 0.42, selfHealth), node('lb2', 2, 1, 0.93, 0.39, selfHealth), node('lb3', 3, 0, 1.07, 0.47, lb3Health)];
    return {
      mode: 'etcd', self: 'lb1', revision: this.revision,
      store: { url: 'etcd://198.18.250.10:2379/xdplb', connected: this.storeStale === null, stale: this.storeStale !== null,
        ...(this.storeStale !== null ? { reason: this.storeStale } : {}) },
      nodes, disagreements: findDisagreements(nodes),
    };
  }

  findService(name: string): ServiceState {
    const svc = this.services.find((s) => s.name === name);
    if (!svc) throw new HttpError(404, 'XDPLB_ERR_NOT_FOUND', `no service named "${name}"`);
    return svc;
  }

  findBackend(svc: ServiceState, key: string): BackendState {
    const parsed = tryParseHostPort(key);
    const canonical = 'error' in parsed ? key : parsed.text;
    const b = svc.backends.find((x) => hostPort(x.address, x.port) === canonical);
    if (!b) throw new HttpError(404, 'XDPLB_ERR_NOT_FOUND', `service "${svc.name}" has no backend "${key}"`);
    return b;
  }

  addBackend(svc: ServiceState, body: Record<string, unknown>, field = ''): void {
    const address = checkAddress(body.address, `${field}/address`);
    const vipFamily = svc.vip.includes(':') ? 6 : 4;
    if (address.family !== vipFamily) {
      throw new HttpError(400, 'XDPLB_ERR_VALIDATION', `${field}/address: service "${svc.name}": backend ${address.text} is IPv${address.family} ` +
        `but the VIP ${svc.vip} is IPv${vipFamily}; a service is one family (no NAT64/46)`, `${field}/address`);
    }
    const port = body.port;
    if (!Number.isInteger(port) || (port as number) < 0 || (port as number) > 65535) throw new HttpError(400, 'XDPLB_ERR_VALIDATION', `${field}/port: must be an integer 0..65535`, `${field}/port`);
    const weight = body.weight ?? 1;
    if (!Number.isInteger(weight) || (weight as number) < 0 || (weight as number) > 1000) throw new HttpError(400, 'XDPLB_ERR_VALIDATION', `${field}/weight: must be an integer 0..1000`, `${field}/weight`);
    if (svc.backends.some((b) => b.address === address.text && b.port === port)) {
      throw new HttpError(409, 'XDPLB_ERR_CONFLICT', `backend ${hostPort(address.text, port as number)} already exists in "${svc.name}"`);
    }
    svc.backends.push({ ...this.backend(address.text, port as number, weight as number), drain: body.drain === true });
  }

  /** POST /services: all or nothing (a bad backend leaves no service behind). */
  addService(body: Record<string, unknown>): ServiceState {
    const name = body.name;
    if (typeof name !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(name)) {
      throw new HttpError(400, 'XDPLB_ERR_VALIDATION', '/name: must be 1..63 letters, digits, "_", "." or "-"', '/name');
    }
    if (this.services.some((s) => s.name === name)) throw new HttpError(409, 'XDPLB_ERR_CONFLICT', `service "${name}" exists`, '/name');
    const vip = checkAddress(body.vip, '/vip');
    const port = body.port;
    if (!Number.isInteger(port) || (port as number) < 0 || (port as number) > 65535) throw new HttpError(400, 'XDPLB_ERR_VALIDATION', '/port: must be an integer 0..65535', '/port');
    if (body.protocol !== 'tcp' && body.protocol !== 'udp') throw new HttpError(400, 'XDPLB_ERR_VALIDATION', '/protocol: must be "tcp" or "udp"', '/protocol');
    if (body.mode !== 'nat' && body.mode !== 'dsr') throw new HttpError(400, 'XDPLB_ERR_VALIDATION', '/mode: must be "nat" or "dsr"', '/mode');
    const clash = this.services.find((s) => s.vip === vip.text && s.port === port && s.protocol === body.protocol);
    if (clash) throw new HttpError(409, 'XDPLB_ERR_CONFLICT', `${hostPort(vip.text, port as number)}/${body.protocol} is service "${clash.name}" already`, '/vip');
    const svc: ServiceState = { id: Math.max(0, ...this.services.map((s) => s.id)) + 1, name, vip: vip.text, port: port as number,
      protocol: body.protocol, mode: body.mode, tableSize: 251, baseFwdPps: 5_000, pktSize: 300, backends: [] };
    const backends = body.backends ?? [];
    if (!Array.isArray(backends)) throw new HttpError(400, 'XDPLB_ERR_VALIDATION', '/backends: must be an array', '/backends');
    backends.forEach((b, i) => this.addBackend(svc, (b ?? {}) as Record<string, unknown>, `/backends/${i}`));
    this.services.push(svc);
    return svc;
  }
}

/** The canonical address, or a 400 naming the field and what is wrong (the daemon's own rules: src/domain/address.ts). */
function checkAddress(text: unknown, field: string): ParsedAddress {
  const parsed = tryParseAddress(text);
  if ('error' in parsed) throw new HttpError(400, 'XDPLB_ERR_VALIDATION', `${field}: ${parsed.error}`, field);
  const forbidden = forbiddenAddressReason(parsed.text);
  if (forbidden) throw new HttpError(400, 'XDPLB_ERR_VALIDATION', `${field}: ${forbidden}`, field);
  return parsed;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.map': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon',
};

/** Starts the synthetic API + static server. Throws when web/dist is missing or the port is taken. */
export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  const dist = path.join(repoRoot(), 'web', 'dist');
  if (!fs.existsSync(path.join(dist, 'index.html'))) throw new Error(`${dist}/index.html missing: run (cd web && npx --no-install vite build)`);
  const users = opts.users ?? DEFAULT_DEV_USERS;
  const sessions = new Map<string, { name: string; role: 'viewer' | 'admin' }>();
  const lb = new SyntheticBalancer(opts.ipv6 ?? false);
  const sockets = new Set<WebSocket>();
  const drainRequests: DevServer['drainRequests'] = [];
  const broadcast = (msg: StreamMessage) => {
    const text = JSON.stringify(msg);
    for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.send(text);
  };
  const broadcastState = () => broadcast({ type: 'state', data: { services: lb.views() } });

  const statsTimer = setInterval(() => {
    const s = lb.sample();
    lb.history.push(s);
    if (lb.history.length > 300) lb.history.shift();
    broadcast({ type: 'stats', data: s });
    const flap = lb.maybeFlapHealth();
    if (flap) { broadcast({ type: 'health', data: flap }); broadcastState(); }
  }, 1000);
  const eventTimer = setInterval(() => {
    if (lb.settings.sampleRate === 0 || opts.randomEvents === false) return;
    const n = Math.max(1, Math.round(300 / lb.settings.sampleRate));
    for (let i = 0; i < Math.min(n, 20); i++) if (Math.random() < 0.6) broadcast({ type: 'event', data: lb.randomEvent() });
  }, 250);

  const auth = (req: http.IncomingMessage, url: URL) => {
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7) : url.pathname === '/api/v1/stream' ? url.searchParams.get('token') : null;
    const user = token ? sessions.get(token) : undefined;
    if (!user) throw new HttpError(401, 'XDPLB_ERR_UNAUTHENTICATED', 'missing or invalid credentials');
    return user;
  };

  const readBody = async (req: http.IncomingMessage): Promise<Record<string, unknown>> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text) return {};
    try { return JSON.parse(text) as Record<string, unknown>; } catch { throw new HttpError(400, 'XDPLB_ERR_VALIDATION', 'body is not JSON'); }
  };

  const api = async (req: http.IncomingMessage, url: URL): Promise<[number, unknown]> => {
    const route = url.pathname.slice('/api/v1'.length);
    const method = req.method ?? 'GET';
    if (method === 'POST' && route === '/login') {
      const body = await readBody(req);
      const user = typeof body.username === 'string' ? users[body.username] : undefined;
      if (!user || user.password !== body.password) throw new HttpError(401, 'XDPLB_ERR_UNAUTHENTICATED', 'wrong username or password');
      const token = [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, '0')).join('');
      sessions.set(token, { name: body.username as string, role: user.role });
      return [200, { token, user: { name: body.username, role: user.role } }];
    }
    const user = auth(req, url);
    if (method !== 'GET' && route !== '/logout' && user.role !== 'admin') throw new HttpError(403, 'XDPLB_ERR_FORBIDDEN', `${user.name} is a viewer: read-only`);
    const parts = route.split('/').filter(Boolean).map(decodeURIComponent);
    const is = (m: string, ...pattern: string[]) => method === m && parts.length === pattern.length && pattern.every((p, i) => p === '*' || p === parts[i]);
    if (is('POST', 'logout')) { sessions.delete(req.headers.authorization?.slice(7) ?? ''); return [204, null]; }
    if (is('GET', 'whoami')) return [200, user];
    if (is('GET', 'services')) return [200, { services: lb.views() }];
    if (is('GET', 'services', '*')) return [200, lb.view(lb.findService(parts[1]))];
    if (is('POST', 'services')) {
      const svc = lb.addService(await readBody(req));
      broadcastState();
      return [201, lb.view(svc)];
    }
    if (is('POST', 'services', '*', 'backends')) {
      const svc = lb.findService(parts[1]);
      lb.addBackend(svc, await readBody(req));
      broadcastState();
      return [201, lb.view(svc)];
    }
    if (is('PATCH', 'services', '*', 'backends', '*')) {
      const svc = lb.findService(parts[1]);
      const b = lb.findBackend(svc, parts[3]);
      const body = await readBody(req);
      if (body.weight !== undefined && (!Number.isInteger(body.weight) || (body.weight as number) < 0 || (body.weight as number) > 1000)) {
        throw new HttpError(400, 'XDPLB_ERR_VALIDATION', 'weight must be an integer 0..1000', '/weight');
      }
      if (body.drain !== undefined && typeof body.drain !== 'boolean') throw new HttpError(400, 'XDPLB_ERR_VALIDATION', 'drain must be a boolean', '/drain');
      if (body.weight !== undefined) b.weight = body.weight as number;
      if (body.drain !== undefined) b.drain = body.drain as boolean;
      broadcastState();
      return [200, lb.view(svc)];
    }
    if (is('DELETE', 'services', '*', 'backends', '*')) {
      const svc = lb.findService(parts[1]);
      const b = lb.findBackend(svc, parts[3]);
      svc.backends.splice(svc.backends.indexOf(b), 1);
      broadcastState();
      return [204, null];
    }
    if (is('GET', 'transitions')) {
      // Synthetic: every service at rest (the real view comes from the kernel's tables).
      const services = lb.views().map((v) => ({ service: v.name, tableSize: v.tableSize ?? 65537, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null }));
      return [200, { transitionSeconds: 60, nextSweepAt: null, flowCache: true, services }];
    }
    if (is('GET', 'settings')) return [200, lb.settings];
    if (is('PATCH', 'settings')) {
      const body = await readBody(req);
      if (body.sampleRate !== undefined && (!Number.isInteger(body.sampleRate) || (body.sampleRate as number) < 0)) {
        throw new HttpError(400, 'XDPLB_ERR_VALIDATION', 'sampleRate must be an integer >= 0', '/sampleRate');
      }
      lb.settings = { ...lb.settings, ...(body as Partial<SettingsView>) };
      return [200, lb.settings];
    }
    if (is('GET', 'hash-seed')) return [200, { hashSeed: 0x5eed }];
    if (is('GET', 'programs')) return [200, { programs: lb.programs(), statsEnabled: lb.statsEnabled }];
    if (is('POST', 'programs', 'stats')) {
      const body = await readBody(req);
      if (typeof body.enabled !== 'boolean') throw new HttpError(400, 'XDPLB_ERR_VALIDATION', 'enabled must be a boolean', '/enabled');
      lb.statsEnabled = body.enabled;
      return [200, { statsEnabled: lb.statsEnabled }];
    }
    if (is('GET', 'maps')) return [200, { maps: lb.maps() }];
    if (is('GET', 'maps', '*')) {
      const all = lb.mapEntries(parts[1]);
      const offset = Math.max(0, Number(url.searchParams.get('offset') ?? 0) || 0);
      const limit = Math.min(1000, Math.max(1, Number(url.searchParams.get('limit') ?? 100) || 100));
      return [200, { name: parts[1], total: all.length, offset, entries: all.slice(offset, offset + limit) }];
    }
    if (is('GET', 'interfaces')) return [200, { interfaces: [{ ifname: 'xlbdev-lb0', ifindex: 3, mode: 'native', progId: 142 }] }];
    if (is('GET', 'stats')) return [200, lb.history[lb.history.length - 1]];
    if (is('GET', 'stats', 'history')) {
      const seconds = Math.min(300, Math.max(1, Number(url.searchParams.get('seconds') ?? 300) || 300));
      return [200, { samples: lb.history.slice(-seconds) }];
    }
    if (is('GET', 'cluster')) return [200, lb.cluster()];
    if (is('PUT', 'nodes', '*', 'drain')) {
      if (!lb.drained.has(parts[1])) throw new HttpError(404, 'XDPLB_ERR_NOT_FOUND', `no node named "${parts[1]}"`);
      const body = await readBody(req);
      const extra = Object.keys(body).find((k) => k !== 'drain' && k !== 'graceSeconds' && k !== 'force');
      if (extra) throw new HttpError(400, 'XDPLB_ERR_VALIDATION', `/${extra}: is not a known field`, `/${extra}`);
      if (typeof body.drain !== 'boolean') throw new HttpError(400, 'XDPLB_ERR_VALIDATION', '/drain: must be a boolean', '/drain');
      const grace = body.graceSeconds;
      if (grace !== undefined && (!Number.isInteger(grace) || (grace as number) < 0 || (grace as number) > 86400)) {
        throw new HttpError(400, 'XDPLB_ERR_VALIDATION', '/graceSeconds: must be an integer 0..86400', '/graceSeconds');
      }
      if (body.force !== undefined && typeof body.force !== 'boolean') throw new HttpError(400, 'XDPLB_ERR_VALIDATION', '/force: must be a boolean', '/force');
      const moved = lb.movedSlots.get(parts[1]) ?? 0;
      if (body.drain && !body.force && !lb.drained.get(parts[1]) && moved > 0) {
        throw new HttpError(409, 'XDPLB_ERR_CONFLICT', `node "${parts[1]}" is in a Maglev transition (${moved} moved slots): drain when it is over, or with force`, '/force');
      }
      lb.drained.set(parts[1], body.drain);
      drainRequests.push({ node: parts[1], body });
      return [200, lb.cluster().nodes.find((n) => n.name === parts[1])];
    }
    if (is('GET', 'bench', 'latest')) return [200, { results: opts.bench ?? null }];
    throw new HttpError(404, 'XDPLB_ERR_NOT_FOUND', `no route ${method} ${url.pathname}`);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname.startsWith('/api/v1/')) {
      api(req, url).then(([status, body]) => {
        res.writeHead(status, status === 204 ? {} : { 'content-type': 'application/json' });
        res.end(status === 204 ? undefined : JSON.stringify(body));
      }, (err: unknown) => {
        const e = err instanceof HttpError ? err : new HttpError(500, 'XDPLB_ERR_INTERNAL', String(err));
        res.writeHead(e.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: e.code, message: e.message, ...(e.field ? { field: e.field } : {}) } }));
      });
      return;
    }
    const rel = url.pathname === '/' ? 'index.html' : decodeURIComponent(url.pathname).replace(/^\/+/, '');
    const file = path.resolve(dist, rel);
    if (!file.startsWith(dist + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (url.pathname !== '/api/v1/stream') throw new HttpError(404, 'XDPLB_ERR_NOT_FOUND', 'no such stream');
      auth(req, url);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    dropStreams: () => { for (const ws of sockets) ws.terminate(); },
    emitEvents: (events) => { for (const data of events) broadcast({ type: 'event', data }); },
    drainRequests,
    setStoreStale: (reason) => { lb.storeStale = reason; },
    setMovedSlots: (node, slots) => { lb.movedSlots.set(node, slots); },
    close: async () => {
      clearInterval(statsTimer);
      clearInterval(eventTimer);
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const serveArg = process.argv.indexOf('--serve');
if (require.main === module && serveArg !== -1) {
  const port = Number(process.argv[serveArg + 1] ?? 8721);
  const benchFile = process.env.XDPLB_DEV_BENCH;
  const bench = benchFile ? JSON.parse(fs.readFileSync(benchFile, 'utf8')) as unknown : undefined;
  startDevServer({ port, bench, ipv6: process.env.XDPLB_DEV_IPV6 === '1' }).then((s) => {
    console.log(`xdplb dev server (synthetic data, not a daemon): ${s.url}  users: admin/admin-pass, viewer/viewer-pass`);
  }, (err: unknown) => { console.error(err); process.exit(1); });
}
