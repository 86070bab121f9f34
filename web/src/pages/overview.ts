// Overview: totals, per-service and per-backend rates, XDP actions, pass/drop reasons,
// backend health, and 5-minute charts seeded from the history and fed by the stream.
import type { StatsView } from '../api-types';
import { PALETTE, TimeChart, type SeriesData } from '../charts';
import { badge, bar, h, replaceChildren, table } from '../dom';
import { bitsToBytes, formatBps, formatBytes, formatBytesRate, formatClock, formatCount, formatPps } from '../format';
import { markUpdated, pageHeader, updatedLabel, type MountPage } from '../page';
import { store } from '../store';

const FORWARD_ACTIONS = new Set(['tx', 'redirect']);
const DROP_ACTIONS = new Set(['drop', 'aborted']);
const ACTION_KIND: Record<string, string> = { tx: 'ok', redirect: 'ok', pass: 'info', drop: 'bad', aborted: 'bad' };

export const mountOverview: MountPage = (container) => {
  const cards = h('div', { class: 'cards' });
  const ppsChart = new TimeChart('Packets per second', formatPps);
  const bpsChart = new TimeChart('Bytes per second', formatBytesRate);
  const actionChart = new TimeChart('XDP actions per second', formatPps, 180);
  const backendChart = new TimeChart('Packets per second to each backend', formatPps, 200);
  const servicesBox = h('div');
  const actionsBox = h('div');
  const reasonsBox = h('div');
  const healthBox = h('div', { 'data-testid': 'health-log' });
  const asOf = updatedLabel('stats-at');
  replaceChildren(container,
    pageHeader('Overview', asOf),
    cards,
    h('div', { class: 'grid-2' },
      h('section', { class: 'panel' }, h('h2', null, 'Packets per second (last 5 min)'), ppsChart.el),
      h('section', { class: 'panel' }, h('h2', null, 'Throughput (last 5 min)'), bpsChart.el)),
    h('section', { class: 'panel' }, h('h2', null, 'Packets per second to each backend (client → backend)'), backendChart.el),
    h('section', { class: 'panel' }, h('h2', null, 'Services and backends'), servicesBox, healthBox),
    h('div', { class: 'grid-2' },
      h('section', { class: 'panel' }, h('h2', null, 'XDP actions'), actionsBox, actionChart.el),
      h('section', { class: 'panel' }, h('h2', null, 'Pass and drop reasons'), reasonsBox)));

  const render = () => {
    const latest = store.latest;
    if (!latest) {
      replaceChildren(cards, h('p', { class: 'muted' }, 'Waiting for the first stats sample…'));
      return;
    }
    markUpdated(asOf, latest.at, 'sample at');
    renderCards(cards, latest);
    renderCharts(ppsChart, bpsChart, actionChart, store.history);
    renderBackendChart(backendChart, store.history);
    renderServices(servicesBox, latest);
    renderHealthLog(healthBox);
    replaceChildren(actionsBox, counterTable(latest.actions, (n) => ACTION_KIND[n] ?? ''));
    replaceChildren(reasonsBox, counterTable(latest.reasons, (n) =>
      n === 'forwarded' || n === 'reversed' ? 'ok' : n === 'not_vip' || n === 'not_ip' ? 'info' : 'bad'));
  };
  const offStats = store.on('stats', render);
  const offServices = store.on('services', render);
  render();
  return () => { offStats(); offServices(); for (const c of [ppsChart, bpsChart, actionChart, backendChart]) c.destroy(); };
};

function sumPps(stats: StatsView, names: Set<string>): number {
  return stats.actions.filter((a) => names.has(a.name)).reduce((acc, a) => acc + a.pps, 0);
}

function renderCards(cards: HTMLElement, latest: StatsView): void {
  const backends = store.services.flatMap((s) => s.backends);
  const up = backends.filter((b) => b.health === 'up').length;
  const down = backends.filter((b) => b.health === 'down').length;
  const card = (label: string, value: string, sub: string, testid: string, kind = '') =>
    h('div', { class: `card ${kind}` }, h('div', { class: 'card-label' }, label),
      h('div', { class: 'card-value', 'data-testid': testid }, value), h('div', { class: 'card-sub' }, sub));
  replaceChildren(cards,
    card('Packets', formatPps(latest.totals.pps), `${formatCount(latest.totals.packets)} total`, 'total-pps'),
    card('Throughput', formatBps(latest.totals.bps), `${formatBytes(latest.totals.bytes)} total`, 'total-bps'),
    card('Forwarded', formatPps(sumPps(latest, FORWARD_ACTIONS)), 'XDP_TX + XDP_REDIRECT', 'forwarded-pps', 'card-ok'),
    card('Passed to host', formatPps(sumPps(latest, new Set(['pass']))), 'XDP_PASS', 'passed-pps', 'card-info'),
    card('Dropped', formatPps(sumPps(latest, DROP_ACTIONS)), 'XDP_DROP + XDP_ABORTED', 'dropped-pps', sumPps(latest, DROP_ACTIONS) > 0 ? 'card-bad' : 'card-info'),
    card('Backends up', `${up} / ${backends.length}`, down ? `${down} down` : `${store.services.length} services`, 'backends-up', down ? 'card-bad' : 'card-ok'));
}

function renderCharts(pps: TimeChart, bps: TimeChart, actions: TimeChart, history: StatsView[]): void {
  const times = history.map((s) => s.at);
  const names = [...new Set(history.flatMap((s) => s.services.map((x) => x.name)))].sort();
  // `scale` turns the API's bits per second into the bytes per second the chart shows.
  const perService = (field: 'fwdPps' | 'revPps' | 'fwdBps' | 'revBps', scale: (v: number) => number) => (name: string) =>
    history.map((s) => { const v = s.services.find((x) => x.name === name)?.[field]; return v === undefined ? null : scale(v); });
  const build = (total: 'pps' | 'bps', fwd: 'fwdPps' | 'fwdBps', rev: 'revPps' | 'revBps', scale: (v: number) => number): SeriesData[] => [
    { label: 'all frames', values: history.map((s) => scale(s.totals[total])), color: '#94a3b8', dash: true },
    ...names.flatMap((name, i) => [
      { label: `${name} in`, values: perService(fwd, scale)(name), color: PALETTE[i % PALETTE.length] },
      { label: `${name} out`, values: perService(rev, scale)(name), color: PALETTE[i % PALETTE.length], dash: true },
    ]),
  ];
  pps.update(times, build('pps', 'fwdPps', 'revPps', (v) => v));
  bps.update(times, build('bps', 'fwdBps', 'revBps', bitsToBytes));
  const actionNames = [...new Set(history.flatMap((s) => s.actions.map((a) => a.name)))];
  const actionColors: Record<string, string> = { tx: '#16a34a', redirect: '#0891b2', pass: '#2563eb', drop: '#dc2626', aborted: '#9333ea' };
  actions.update(times, actionNames.map((name) => ({
    label: name, color: actionColors[name],
    values: history.map((s) => s.actions.find((a) => a.name === name)?.pps ?? null),
  })));
}

/** One line per backend (named "service/address:port" when there are several services). */
function renderBackendChart(chart: TimeChart, history: StatsView[]): void {
  const pairs = new Map<string, { service: string; key: string }>();
  for (const s of history) for (const svc of s.services) for (const be of svc.backends) pairs.set(`${svc.name}|${be.key}`, { service: svc.name, key: be.key });
  const several = new Set([...pairs.values()].map((p) => p.service)).size > 1;
  const sorted = [...pairs.values()].sort((a, b) => a.service.localeCompare(b.service) || a.key.localeCompare(b.key));
  chart.update(history.map((s) => s.at), sorted.map((p) => ({
    label: several ? `${p.service}/${p.key}` : p.key,
    values: history.map((s) => s.services.find((x) => x.name === p.service)?.backends.find((b) => b.key === p.key)?.fwdPps ?? null),
  })));
}

function renderServices(box: HTMLElement, latest: StatsView): void {
  if (store.services.length === 0 && latest.services.length === 0) {
    replaceChildren(box, h('p', { class: 'muted' }, 'No services configured.'));
    return;
  }
  const rows: Node[] = [];
  for (const svc of latest.services) {
    const view = store.services.find((s) => s.name === svc.name);
    rows.push(h('tr', { class: 'row-service', 'data-service': svc.name },
      h('th', { scope: 'row' }, svc.name,
        view ? h('span', { class: 'muted small' }, ` ${view.vip}:${view.port || '*'}/${view.protocol} · ${view.mode}`) : null),
      h('td', null, view ? `${view.backends.filter((b) => b.health === 'up' || b.health === 'unchecked').length}/${view.backends.length} healthy` : ''),
      h('td', { class: 'num' }, formatPps(svc.fwdPps)), h('td', { class: 'num' }, formatBps(svc.fwdBps)),
      h('td', { class: 'num' }, formatPps(svc.revPps)), h('td', { class: 'num' }, formatBps(svc.revBps)),
      h('td', { class: 'num' }, formatCount(svc.packets)), h('td', null)));
    for (const be of svc.backends) {
      const bv = view?.backends.find((b) => b.key === be.key);
      const share = svc.fwdPps > 0 ? be.fwdPps / svc.fwdPps : 0;
      rows.push(h('tr', { class: 'row-backend' },
        h('td', { class: 'indent mono' }, be.key),
        h('td', null, healthBadge(be.health), bv?.draining ? badge('draining', 'warn') : null),
        h('td', { class: 'num' }, formatPps(be.fwdPps)), h('td', { class: 'num' }, formatBps(be.fwdBps)),
        h('td', { class: 'num' }, formatPps(be.revPps)), h('td', { class: 'num' }, formatBps(be.revBps)),
        h('td', { class: 'num' }, formatCount(be.packets)),
        h('td', { class: 'bar-cell' }, bar(share, `${(share * 100).toFixed(1)} % of ${svc.name}'s packets`))));
    }
  }
  replaceChildren(box, table(['Service / backend', 'Health', { text: 'In pkt/s', num: true }, { text: 'In bytes/s', num: true },
    { text: 'Out pkt/s', num: true }, { text: 'Out bytes/s', num: true }, { text: 'Packets', num: true }, 'Share of traffic'], rows));
}

function renderHealthLog(box: HTMLElement): void {
  const log = [...store.healthLog].reverse();
  replaceChildren(box, h('h3', null, 'Health changes'), log.length === 0
    ? h('p', { class: 'muted small' }, 'No health change since this page was opened.')
    : h('ul', { class: 'health-log' }, log.map((c) => h('li', null,
      h('span', { class: 'mono muted' }, formatClock(c.at)), ' ', h('span', { class: 'mono' }, `${c.service} / ${c.backend}`), ' → ',
      healthBadge(c.health)))));
}

export function healthBadge(health: string): HTMLElement {
  // 'checking': checked, no verdict yet (not in the table); 'unchecked': the service has no check.
  return badge(health, health === 'up' ? 'ok' : health === 'down' ? 'bad' : health === 'checking' ? 'warn' : 'muted');
}

function counterTable(rows: Array<{ name: string; pps: number; packets: number }>, kindOf: (name: string) => string): HTMLElement {
  const maxPps = Math.max(0, ...rows.map((r) => r.pps));
  const sorted = [...rows].sort((a, b) => b.packets - a.packets || a.name.localeCompare(b.name));
  return table(['Name', { text: 'pkt/s', num: true }, { text: 'Packets', num: true }, ''], sorted.map((r) =>
    h('tr', { class: r.packets === 0 ? 'dim' : '' },
      h('td', { class: 'mono' }, r.name),
      h('td', { class: 'num' }, formatPps(r.pps)),
      h('td', { class: 'num' }, formatCount(r.packets)),
      h('td', { class: 'bar-cell' }, bar(maxPps > 0 ? r.pps / maxPps : 0, `${formatPps(r.pps)}`, kindOf(r.name))))));
}
