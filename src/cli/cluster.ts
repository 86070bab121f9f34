/**
 * Cluster verbs (issue 13): `xdplb cluster status [--json]`, `xdplb node drain [NAME] [--grace S] [--wait S] [--force]`,
 * `xdplb node undrain [NAME]` (through any node's API), and `xdplb store init` (seeds an empty
 * etcd prefix with the desired state of a config file; talks to etcd, not to a daemon).
 */
import { Command } from 'commander';
import { ApiError } from './client';
import { withClientOptions, clientFrom, action, integerArg, type ClientFlags } from './common';
import { formatTable, humanBits, humanNumber, printJson } from './output';
import type { ClusterView, NodeStatus } from '../cluster/status';

/** The table `xdplb cluster status` prints. */
export function formatCluster(view: ClusterView): string {
  const head = view.mode === 'file'
    ? `mode file (one node, no cluster store); node ${view.self}`
    : `mode etcd ${view.store.url}; revision ${view.revision}; store ${view.store.connected ? 'connected' : 'UNREACHABLE'}` +
      `${view.store.stale ? `; STALE: ${view.store.reason ?? ''}` : ''}`;
  const rows = view.nodes.map((n) => {
    const health = Object.values(n.health ?? {}).flatMap((b) => Object.values(b));
    const up = health.filter((h) => h === 'up' || h === 'unchecked').length;
    return [
      `${n.name}${n.self ? '*' : ''}`, n.alive ? 'alive' : 'gone', String(n.appliedRevision), String(n.lag),
      n.dataplane.attached ? n.dataplane.interfaces.join(',') : 'detached',
      n.bgp ? `${n.bgp.state}${n.bgp.drained ? ' drained' : ''} ${n.bgp.peers.filter((p) => /established/i.test(p.state)).length}/${n.bgp.peers.length} peers` : '-',
      n.bgp ? String(n.bgp.announced.length) : '-',
      `${up}/${health.length}`, humanNumber(n.rates.pps), humanBits(n.rates.bps), `${Math.round(n.cpu * 100)}%`,
    ];
  });
  const out = [head, formatTable(['Node', 'State', 'Revision', 'Lag', 'Data plane', 'BGP', 'VIPs', 'Up', 'pps', 'bps', 'CPU'], rows)];
  if (view.disagreements.length) {
    out.push('Health disagreements:');
    for (const d of view.disagreements) out.push(`  ${d.service} ${d.backend}: ${Object.entries(d.views).map(([node, h]) => `${node}=${h}`).join(' ')}`);
  }
  return out.join('\n');
}

export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('the cluster as the node at --api sees it');
  withClientOptions(cluster.command('status', { isDefault: true }).description('every node: revision applied and lag, data plane, BGP, VIPs announced, health, packets/s and CPU; health disagreements'))
    .action(action(async (flags: ClientFlags) => {
      const view = await clientFrom(flags).request<ClusterView>('GET', '/api/v1/cluster');
      if (flags.json) printJson(view); else console.log(formatCluster(view));
    }));

  const node = program.command('node').description('drain or undrain a node (its VIPs are withdrawn; it keeps forwarding flows that still arrive)');
  const drainVerb = (drain: boolean) => async (name: string | undefined, flags: ClientFlags & { grace?: number; force?: boolean; wait?: number }) => {
    const client = clientFrom(flags);
    const target = name ?? (await client.request<ClusterView>('GET', '/api/v1/cluster')).self;
    const body = drain ? { drain: true, graceSeconds: flags.grace ?? 0, ...(flags.force ? { force: true } : {}) } : { drain: false };
    // --wait: a drain refused because the node is in a Maglev transition is asked again each
    // second until the transition is over or the time is up (then the last refusal stands).
    const until = Date.now() + (drain ? flags.wait ?? 0 : 0) * 1000;
    let status: NodeStatus;
    for (;;) {
      try {
        status = await client.request<NodeStatus>('PUT', `/api/v1/nodes/${encodeURIComponent(target)}/drain`, body);
        break;
      } catch (err) {
        const left = until - Date.now();
        if (!(err instanceof ApiError && err.code === 'XDPLB_ERR_CONFLICT' && /Maglev transition/.test(err.message)) || left <= 0) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, left)));
      }
    }
    if (flags.json) printJson(status);
    else console.log(`node ${status.name}: ${drain ? `drained${flags.grace ? ` (forwarding in-flight flows for ${flags.grace} s)` : ''}` : 'undrained'}`);
  };
  withClientOptions(node.command('drain [name]').description('drain a node (default: the node at --api); refused while the node, or another node that would take its flows, is in a Maglev transition (connections opened since the last backend change may be known only to the node that saw them) unless --force'))
    .option('--grace <seconds>', 'keep forwarding in-flight flows this long after the withdrawal', integerArg('--grace', 0, 86400))
    .option('--wait <seconds>', 'while a Maglev transition refuses the drain, ask again each second for up to this long', integerArg('--wait', 0, 86400))
    .option('--force', 'drain even during a Maglev transition (connections only this node remembers may be reset)')
    .action(action(drainVerb(true)));
  withClientOptions(node.command('undrain [name]').description('announce a drained node\'s VIPs again (default: the node at --api)'))
    .action(action(drainVerb(false)));

  const store = program.command('store').description('the cluster store (etcd)');
  store.command('init').description('put the desired state of a config file (services, settings, users, seed) into an empty etcd prefix')
    .requiredOption('-f, --file <config>', 'YAML config file (validated as `xdplb daemon` does; its node-local fields are not stored)')
    .requiredOption('--store <url>', 'etcd://HOST:PORT[,HOST:PORT...]/PREFIX')
    .option('--force', 'replace a desired state the prefix already holds (whole, without a revision guard)')
    .action(action(async (flags: { file: string; store: string; force?: boolean }) => {
      const { loadConfigFile } = await import('../config/config');
      const { clusterPart, parseStoreUrl } = await import('../store/layout');
      const { seedStore } = await import('../store/etcd');
      parseStoreUrl(flags.store);
      const cluster = clusterPart(loadConfigFile(flags.file));
      const revision = await seedStore(flags.store, cluster, { force: !!flags.force });
      console.log(`seeded ${flags.store} at revision ${revision}: ${cluster.services?.length ?? 0} services, ${cluster.users?.length ?? 0} users`);
    }));
}
