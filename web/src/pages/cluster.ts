// Cluster: every node with its BGP session, the VIPs it announces, the revision it applied and
// its lag, its data plane and health view; packets/s and CPU per node side by side; the
// backends whose health the nodes judge differently. Admins drain/undrain a node (withdraw its
// announcements) behind a confirmation; viewers see the same page without any control.
import { get, request } from '../api';
import type { ClusterView, HealthDisagreement, NodeStatus } from '../api-types';
import { confirmDialog } from '../dialog';
import { addr, addrCell, badge, bar, focusByKey, h, replaceChildren, table } from '../dom';
import { formatBps, formatClock, formatPps } from '../format';
import { errorBanner, markUpdated, pageHeader, poll, updatedLabel, type MountPage, type PageContext } from '../page';
import { healthBadge } from './overview';

const POLL_MS = 2000;
const DEFAULT_GRACE_SECONDS = 30;

export const mountCluster: MountPage = (container, ctx) => {
  const error = errorBanner();
  const modeState = h('span', { 'data-testid': 'cluster-mode' });
  const storeBanner = h('div', { class: 'banner banner-info', role: 'status', 'data-testid': 'store-stale', hidden: true });
  const nodesBox = h('div', { class: 'node-grid', 'data-testid': 'nodes' });
  const compareBox = h('div');
  const healthBox = h('div', { 'data-testid': 'health-views' });
  const updated = updatedLabel();
  replaceChildren(container,
    pageHeader('Cluster', updated, modeState, ctx.isAdmin ? null : h('span', { class: 'badge badge-muted' }, 'read-only: log in as admin to drain a node')),
    error, storeBanner,
    nodesBox,
    h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', null, 'Nodes side by side'),
        h('span', { class: 'muted small' }, 'packets/s of each node\'s data plane; CPU as each node reports it, in CPUs (1.00 = one CPU busy)')),
      compareBox),
    h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', null, 'Backend health as each node sees it'),
        h('span', { class: 'muted small' }, 'every node checks from where it stands')),
      healthBox));

  let view: ClusterView | null = null;
  const load = async () => {
    view = await get<ClusterView>('/cluster');
    markUpdated(updated, Date.now());
    render(view);
  };

  const render = (v: ClusterView) => {
    const focusKey = (document.activeElement as HTMLElement | null)?.dataset?.focusKey;
    replaceChildren(modeState, v.mode === 'file'
      ? badge('file mode: this node only', 'muted')
      : [badge(`etcd revision ${v.revision}`, 'info'), v.store.url ? h('span', { class: 'muted small mono' }, v.store.url) : null,
        v.store.connected ? badge('store connected', 'ok') : badge('store unreachable', 'bad')]);
    storeBanner.hidden = !v.store.stale;
    storeBanner.textContent = v.store.stale
      ? `The store is unreachable${v.store.reason ? ` (${v.store.reason})` : ''}: every node keeps forwarding with what it last applied, ` +
        'changes are refused, and this view may be stale.'
      : '';
    const nodes = [...v.nodes].sort((a, b) => Number(b.self) - Number(a.self) || a.name.localeCompare(b.name));
    replaceChildren(nodesBox, nodes.length
      ? nodes.map((n) => nodeCard(n, v, ctx, load))
      : h('p', { class: 'empty' }, 'No node has published its status.'));
    replaceChildren(compareBox, compareTable(nodes));
    // The re-render every 2 s keeps the matrix open if the user opened it.
    const matrixOpen = !!healthBox.querySelector('details[open]');
    replaceChildren(healthBox, healthViews(nodes, v.disagreements));
    if (matrixOpen) healthBox.querySelector('details')?.setAttribute('open', '');
    focusByKey(container, focusKey);
  };

  return poll(load, POLL_MS, error);
};

function nodeCard(n: NodeStatus, v: ClusterView, ctx: PageContext, reload: () => Promise<void>): HTMLElement {
  const drained = n.bgp?.drained ?? false;
  const kind = !n.alive ? 'bad' : !n.dataplane.attached || drained ? 'warn' : 'ok';
  const peers = n.bgp?.peers ?? [];
  return h('section', { class: `panel node-card node-${kind}`, 'data-node': n.name, 'aria-label': `Node ${n.name}` },
    h('div', { class: 'panel-head' },
      h('h2', { class: 'mono' }, n.name),
      h('div', { class: 'node-badges' },
        n.self ? badge('this node', 'info') : null,
        n.alive ? badge('alive', 'ok') : badge('gone', 'bad'),
        drained ? badge('drained', 'warn') : null,
        ctx.isAdmin && n.bgp ? drainButton(n, reload) : null)),
    h('dl', { class: 'kv' },
      h('dt', null, 'BGP'),
      h('dd', { 'data-field': 'bgp' }, n.bgp
        ? [bgpBadge(n.bgp.state), peers.length === 0 ? h('span', { class: 'muted small' }, 'no peer') : null]
        : h('span', { class: 'muted' }, 'not running')),
      peers.length ? [h('dt', null, 'Peers'), h('dd', { 'data-field': 'peers' }, h('ul', { class: 'peer-list' }, peers.map((p) =>
        h('li', null, addr(p.peer), ' ', bgpBadge(p.state),
          p.bfd !== null ? badge(`BFD ${p.bfd}`, /^up$/i.test(p.bfd) ? 'ok' : 'bad') : h('span', { class: 'muted small' }, 'no BFD')))))] : null,
      h('dt', null, 'Announces'),
      h('dd', { 'data-field': 'announced' }, n.bgp && n.bgp.announced.length
        ? h('span', { class: 'vip-list' }, n.bgp.announced.map((p) => addr(p)))
        : h('span', { class: 'muted' }, n.bgp ? 'nothing (withdrawn)' : '—')),
      h('dt', null, 'Revision'),
      h('dd', { 'data-field': 'revision' }, v.mode === 'file'
        ? h('span', { class: 'muted' }, 'file (no store)')
        : [h('span', { class: 'mono' }, String(n.appliedRevision)), ' ',
          n.lag === 0 ? badge('in sync', 'ok') : badge(`${n.lag} behind`, n.lag > 10 ? 'bad' : 'warn')]),
      h('dt', null, 'Data plane'),
      h('dd', { 'data-field': 'dataplane' }, n.dataplane.attached
        ? [badge('attached', 'ok'), h('span', { class: 'mono small' }, n.dataplane.interfaces.join(', '))]
        : badge('not attached', 'bad')),
      h('dt', null, 'Maglev'),
      h('dd', { 'data-field': 'transition' }, (n.movedSlots ?? 0) > 0
        ? [badge('in transition', 'warn'), h('span', { class: 'muted small' }, `${n.movedSlots} moved slots: a drain now needs force`)]
        : badge('steady', 'ok')),
      h('dt', null, 'Health view'),
      h('dd', { 'data-field': 'health' }, healthSummary(n)),
      h('dt', null, 'Reported'),
      h('dd', { class: 'muted small', 'data-field': 'updated' }, formatClock(Date.parse(n.updatedAt)))));
}

function drainButton(n: NodeStatus, reload: () => Promise<void>): HTMLElement {
  const path = `/nodes/${encodeURIComponent(n.name)}/drain`;
  const drained = n.bgp?.drained ?? false;
  const action = drained ? 'undrain-node' : 'drain-node';
  return h('button', {
    type: 'button', class: `btn btn-small ${drained ? '' : 'btn-danger-outline'}`, 'data-action': action,
    'data-focus-key': `${action}|${n.name}`, 'aria-label': `${drained ? 'Undrain' : 'Drain'} node ${n.name}`,
    onclick: () => void (drained
      ? confirmDialog({
        title: `Undrain node ${n.name}?`,
        body: [`It announces its VIPs to the routers again (those with a usable backend) and takes new flows from ECMP.`],
        confirmLabel: 'Undrain',
        action: async () => { await request('PUT', path, { drain: false }); await reload(); },
      })
      : confirmDialog({
        title: `Drain node ${n.name}?`,
        body: [`It withdraws every VIP it announces (${n.bgp?.announced.length ?? 0}) from the routers: new flows go to the other nodes. ` +
          'Flows already on it keep being forwarded for the grace period. The node keeps its data plane and stays drained until undrained.',
          ...(n.movedSlots > 0 ? [h('p', { class: 'dialog-warning', 'data-testid': 'drain-transition-warning' },
            `It is in a Maglev transition (${n.movedSlots} moved slots): connections opened since the last backend change may be known only to it, ` +
            'and the other nodes would send them to the previous backends, which reset them. The API refuses the drain until the transition is over, unless forced.')] : [])],
        fields: [{ name: 'graceSeconds', label: 'Grace period (seconds)', type: 'number', value: String(DEFAULT_GRACE_SECONDS), min: 0, max: 86400,
          required: true, hint: 'How long in-flight flows keep being forwarded after the withdrawal (0..86400).' },
        ...(n.movedSlots > 0 ? [{ name: 'force', label: 'During the transition', options: ['refuse', 'drain anyway'],
          hint: 'drain anyway: connections only this node remembers may be reset.' }] : [])],
        confirmLabel: 'Drain node', danger: true,
        action: async (values) => {
          await request('PUT', path, { drain: true, graceSeconds: Number(values.graceSeconds), ...(values.force === 'drain anyway' ? { force: true } : {}) });
          await reload();
        },
      })),
  }, drained ? 'Undrain' : 'Drain');
}

function bgpBadge(state: string): HTMLElement {
  const s = state.toLowerCase();
  return badge(state, s === 'established' || s === 'up' ? 'ok' : s === 'down' || s === 'idle' || s === 'error' ? 'bad' : 'warn');
}

function countHealth(n: NodeStatus): Record<'up' | 'down' | 'checking' | 'unchecked', number> {
  const c = { up: 0, down: 0, checking: 0, unchecked: 0 };
  for (const backends of Object.values(n.health)) for (const state of Object.values(backends)) c[state] = (c[state] ?? 0) + 1;
  return c;
}

function healthSummary(n: NodeStatus): HTMLElement[] | HTMLElement {
  const c = countHealth(n);
  const parts = (['up', 'down', 'checking', 'unchecked'] as const).filter((s) => c[s] > 0).map((s) => badge(`${c[s]} ${s}`, kindOf(s)));
  return parts.length ? parts : h('span', { class: 'muted' }, 'no backend');
}

function kindOf(state: string): string {
  return state === 'up' ? 'ok' : state === 'down' ? 'bad' : state === 'checking' ? 'warn' : 'muted';
}

function compareTable(nodes: NodeStatus[]): HTMLElement {
  const maxPps = Math.max(1, ...nodes.map((n) => n.rates.pps));
  const maxCpu = Math.max(1, ...nodes.map((n) => n.cpu));
  return table(['Node', { text: 'Packets/s', num: true }, '', { text: 'Bytes/s', num: true, cls: 'wide-only' }, { text: 'CPU', num: true }, '',
    { text: 'VIPs', num: true }, { text: 'Lag', num: true }],
  nodes.map((n) => h('tr', { 'data-node': n.name, class: n.alive ? '' : 'dim' },
    h('td', { class: 'mono' }, n.name),
    h('td', { class: 'num', 'data-field': 'pps' }, formatPps(n.rates.pps)),
    h('td', { class: 'bar-cell' }, bar(n.rates.pps / maxPps, `${n.name}: ${formatPps(n.rates.pps)}`)),
    h('td', { class: 'num wide-only' }, formatBps(n.rates.bps)),
    h('td', { class: 'num', 'data-field': 'cpu' }, `${n.cpu.toFixed(2)} CPU`),
    h('td', { class: 'bar-cell' }, bar(n.cpu / maxCpu, `${n.name}: ${n.cpu.toFixed(2)} CPU busy`, 'info')),
    h('td', { class: 'num' }, String(n.bgp?.announced.length ?? 0)),
    h('td', { class: 'num' }, String(n.lag)))));
}

function healthViews(nodes: NodeStatus[], disagreements: HealthDisagreement[]): Array<HTMLElement | null> {
  const names = nodes.map((n) => n.name);
  const disputed = new Set(disagreements.map((d) => `${d.service}|${d.backend}`));
  const verdicts = (views: Record<string, string>) => names.map((name) =>
    h('td', { 'data-node': name }, views[name] ? healthBadge(views[name]) : h('span', { class: 'muted' }, '—')));
  const headers = ['Service', 'Backend', ...names.map((name) => ({ text: name, cls: 'mono' }))];
  // Every backend any node checks, with each node's verdict (rows in service, backend order).
  const all = new Map<string, { service: string; backend: string; views: Record<string, string> }>();
  for (const n of nodes) {
    for (const [service, backends] of Object.entries(n.health)) {
      for (const [backend, state] of Object.entries(backends)) {
        const key = `${service}|${backend}`;
        const row = all.get(key) ?? { service, backend, views: {} };
        row.views[n.name] = state;
        all.set(key, row);
      }
    }
  }
  const rows = [...all.values()].sort((a, b) => a.service.localeCompare(b.service) || a.backend.localeCompare(b.backend));
  const matrix = rows.length
    ? h('details', { class: 'health-matrix', 'data-testid': 'health-matrix' },
      h('summary', null, `Every backend, as each node sees it (${rows.length})`),
      table(headers, rows.map((r) => h('tr', { 'data-health-row': `${r.service}|${r.backend}`, class: disputed.has(`${r.service}|${r.backend}`) ? 'disputed' : '' },
        h('td', null, r.service), addrCell(r.backend), verdicts(r.views)))))
    : null;
  if (disagreements.length === 0) {
    return [h('p', { class: 'muted', 'data-testid': 'no-disagreements' },
      nodes.length > 1 ? 'All nodes agree on the health of every backend.' : 'One node: nothing to compare.'), matrix];
  }
  return [
    h('p', { class: 'banner banner-warn', 'data-testid': 'disagreement-count' },
      `${disagreements.length} backend${disagreements.length === 1 ? '' : 's'} judged differently by the nodes: ` +
      'a node that sees a backend down takes it out of its own Maglev table, so the same flow may go to different backends on different nodes.'),
    table(headers, disagreements.map((d) => h('tr', { 'data-disagreement': `${d.service}|${d.backend}` },
      h('td', null, d.service), addrCell(d.backend), verdicts(d.views))),
    'Backends whose health the nodes disagree on'),
    matrix,
  ];
}
