/**
 * The cluster routes in FILE mode (no store): GET /api/v1/cluster answers with this node alone,
 * built from the controller's real state; PUT /api/v1/nodes/{name}/drain drains this node's
 * BGP announcements through the daemon's drain hook. The etcd-backed version (every node from
 * PREFIX/nodes/*) replaces this file when the store lands; the shapes are the cluster contract
 * (src/api/cluster-view.ts, docs/api.md).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { RoutePlugin } from '../route-kit';
import { Type } from '@sinclair/typebox';
import type { Controller } from '../../domain/types';
import { XdplbError } from '../../domain/errors';
import { findDisagreements, type ClusterView, type NodeBgp, type NodeStatus } from '../cluster-view';

/** What a daemon may add to its controller for the cluster routes (all optional). */
export interface ClusterHooks {
  /** This node's name (config node.name; default the host name). */
  nodeName?(): string;
  /** This node's BGP view; absent or null: the node runs no BGP. */
  bgpStatus?(): NodeBgp | null;
  /** Withdraw (drain) or announce again (undrain); in-flight flows keep being forwarded for graceSeconds. */
  onDrain?(drain: boolean, graceSeconds: number): Promise<void> | void;
}

export const DEFAULT_DRAIN_GRACE_SECONDS = 0;

/** Host CPU busy time (all CPUs, softirq included: XDP runs there) from /proc/stat; null when unreadable. */
function readHostCpu(): { busy: number; total: number } | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/** CPU busy in CPUs (0..N) since the previous call (the first call measures 200 ms). */
function cpuMeter(): () => Promise<number> {
  let last = readHostCpu();
  let value: number | null = null;
  return async () => {
    if (!last) return 0;
    if (value === null) await new Promise((resolve) => setTimeout(resolve, 200));
    const now = readHostCpu();
    if (!now) return value ?? 0;
    const ticks = now.total - last.total;
    if (ticks > 0) {
      value = Math.max(0, ((now.busy - last.busy) / ticks) * os.cpus().length);
      last = now;
    }
    return value ?? 0;
  };
}

export const clusterRoutes: RoutePlugin = async (app, ctx) => {
  const controller: Controller & ClusterHooks = ctx.controller;
  const selfName = () => controller.nodeName?.() ?? os.hostname();
  const cpu = cpuMeter();

  const selfStatus = async (): Promise<NodeStatus> => {
    const interfaces = controller.interfaces();
    const stats = controller.stats();
    const health: NodeStatus['health'] = {};
    for (const svc of controller.listServices()) {
      health[svc.name] = Object.fromEntries(svc.backends.map((b) => [b.key, b.health]));
    }
    return {
      name: selfName(), self: true, alive: true, appliedRevision: 0, lag: 0,
      dataplane: { attached: interfaces.length > 0, interfaces: interfaces.map((i) => i.ifname) },
      bgp: controller.bgpStatus?.() ?? null,
      health,
      rates: { pps: stats.totals.pps, bps: stats.totals.bps },
      cpu: await cpu(),
      updatedAt: new Date().toISOString(),
    };
  };

  app.get('/api/v1/cluster', {
    config: { access: 'read' },
    schema: { summary: 'Every node of the cluster (file mode: this node alone), with disagreements on backend health', response: { 200: Type.Object({}, { additionalProperties: true }) } },
  }, async (): Promise<ClusterView> => {
    const nodes = [await selfStatus()];
    return {
      mode: 'file', self: selfName(), revision: 0,
      store: { url: null, connected: true, stale: false },
      nodes, disagreements: findDisagreements(nodes),
    };
  });

  app.put<{ Params: { name: string }; Body: { drain: boolean; graceSeconds?: number } }>('/api/v1/nodes/:name/drain', {
    config: { access: 'write' },
    schema: {
      summary: 'Drain (withdraw this node\'s VIP announcements, keep forwarding in-flight flows for graceSeconds) or undrain a node',
      params: Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }) }, { additionalProperties: false }),
      body: Type.Object({
        drain: Type.Boolean(),
        graceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400, description: `default ${DEFAULT_DRAIN_GRACE_SECONDS}` })),
      }, { additionalProperties: false }),
      response: { 200: Type.Object({}, { additionalProperties: true }) },
    },
  }, async (request): Promise<NodeStatus> => {
    const { name } = request.params;
    const { drain, graceSeconds } = request.body;
    if (name !== selfName()) {
      throw new XdplbError('XDPLB_ERR_NOT_FOUND', `no node named "${name}" (file mode: this node, "${selfName()}", is the only one)`);
    }
    if (!controller.onDrain || !controller.bgpStatus?.()) {
      throw new XdplbError('XDPLB_ERR_CONFLICT', `node "${name}" announces nothing over BGP (no bgp section in its config): there is nothing to withdraw; drain its backends instead`);
    }
    await controller.onDrain(drain, graceSeconds ?? DEFAULT_DRAIN_GRACE_SECONDS);
    return selfStatus();
  });
};
