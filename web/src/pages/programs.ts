// Programs: every BPF program on the host, like `bpftool prog`, with xdplb's own program
// highlighted: attach point and mode, run count, runs per second and average ns per run.
import { get, request } from '../api';
import type { InterfaceView, ProgramView } from '../api-types';
import { confirmDialog } from '../dialog';
import { badge, h, replaceChildren, table } from '../dom';
import { formatBytes, formatCount, formatDateTime, formatNs, formatSi } from '../format';
import { errorBanner, markUpdated, pageHeader, poll, updatedLabel, type MountPage } from '../page';

const POLL_MS = 2000;

export const mountPrograms: MountPage = (container, ctx) => {
  const error = errorBanner();
  const summary = h('div');
  const listBox = h('div');
  const statsState = h('span', { class: 'muted', 'data-testid': 'stats-state' });
  // The flow hash seed in use: must be the same on every node behind ECMP (`xdplb hash-seed`).
  const seedState = h('span', { class: 'muted mono', 'data-testid': 'hash-seed', title: 'flow hash seed of the running program; the same on every node behind ECMP' });
  const updated = updatedLabel();
  const toggle = ctx.isAdmin
    ? h('button', { type: 'button', class: 'btn toggle', 'aria-pressed': 'false', 'data-action': 'toggle-prog-stats' }, 'Collect run-time statistics')
    : null;
  replaceChildren(container,
    pageHeader('BPF programs', updated, statsState, seedState, toggle),
    error,
    h('section', { class: 'panel' }, h('h2', null, 'xdplb data plane'), summary),
    h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', null, 'All programs on this host'),
        h('span', { class: 'muted small' }, 'run counts and time from BPF_ENABLE_STATS (kernel-wide, off by default: it costs a little per run)')),
      listBox));

  let statsEnabled = false;
  let previous = new Map<number, { runCount: number; at: number }>();
  toggle?.addEventListener('click', () => void confirmDialog({
    title: statsEnabled ? 'Stop collecting run-time statistics?' : 'Collect run-time statistics?',
    body: [statsEnabled
      ? 'The kernel stops counting runs and run time of every BPF program.'
      : 'The kernel counts runs and run time of every BPF program on this host. It adds a small cost to each run (two clock reads).'],
    confirmLabel: statsEnabled ? 'Stop collecting' : 'Start collecting',
    action: async () => {
      await request('POST', '/programs/stats', { enabled: !statsEnabled });
      await load();
    },
  }));

  const load = async () => {
    const [progs, ifaces, seed] = await Promise.all([
      get<{ programs: ProgramView[]; statsEnabled: boolean }>('/programs'),
      get<{ interfaces: InterfaceView[] }>('/interfaces'),
      get<{ hashSeed: number }>('/hash-seed').catch(() => null),
    ]);
    seedState.textContent = seed ? `hash seed: ${seed.hashSeed}` : '';
    statsEnabled = progs.statsEnabled;
    markUpdated(updated, Date.now());
    statsState.textContent = `run-time statistics: ${statsEnabled ? 'on' : 'off'}`;
    if (toggle) {
      toggle.setAttribute('aria-pressed', String(statsEnabled));
      toggle.textContent = statsEnabled ? 'Collecting run-time statistics ✓' : 'Collect run-time statistics';
    }
    const now = Date.now();
    const runRate = (p: ProgramView): number | null => {
      const prev = previous.get(p.id);
      return prev && now > prev.at && p.runCount >= prev.runCount ? ((p.runCount - prev.runCount) * 1000) / (now - prev.at) : null;
    };
    const rates = new Map(progs.programs.map((p) => [p.id, runRate(p)]));
    previous = new Map(progs.programs.map((p) => [p.id, { runCount: p.runCount, at: now }]));
    renderSummary(summary, progs.programs.filter((p) => p.xdplb), ifaces.interfaces, rates, statsEnabled);
    const sorted = [...progs.programs].sort((a, b) => Number(b.xdplb) - Number(a.xdplb) || a.id - b.id);
    replaceChildren(listBox, table(['ID', 'Type', 'Name', { text: 'Tag', cls: 'wide-only' }, { text: 'Loaded at', cls: 'wide-only' }, { text: 'JIT', num: true }, { text: 'Xlated', num: true },
      'Map IDs', { text: 'Runs', num: true }, { text: 'Runs/s', num: true }, { text: 'Avg/run', num: true }, 'Attached'],
    sorted.map((p) => h('tr', { class: p.xdplb ? 'xdplb' : '', 'data-prog-id': p.id },
      h('td', { class: 'num' }, String(p.id)),
      h('td', null, p.typeName),
      h('td', { class: 'mono' }, p.name || '—', p.xdplb ? [' ', badge('xdplb', 'info')] : null),
      h('td', { class: 'mono wide-only' }, p.tag),
      h('td', { class: 'wide-only' }, formatDateTime(p.loadTime)),
      h('td', { class: 'num' }, formatBytes(p.jitedSize)),
      h('td', { class: 'num' }, formatBytes(p.xlatedSize)),
      h('td', { class: 'mono wrap' }, p.mapIds.length ? p.mapIds.join(', ') : '—'),
      h('td', { class: 'num' }, statsEnabled || p.runCount ? formatCount(p.runCount) : '—'),
      h('td', { class: 'num' }, statsEnabled || p.runCount ? rateText(rates.get(p.id) ?? null) : '—'),
      h('td', { class: 'num' }, formatNs(p.avgNs)),
      h('td', { class: 'wrap' }, attachedText(p, ifaces.interfaces))))));
  };
  return poll(load, POLL_MS, error);
};

/** Every interface the program is attached to (the API's `attach` names only one). */
function attachedText(p: ProgramView, ifaces: InterfaceView[]): string {
  const mine = ifaces.filter((i) => i.progId === p.id).map((i) => `${i.ifname} (${i.mode})`);
  if (mine.length) return mine.join(', ');
  return p.attach ? `${p.attach.ifname} (${p.attach.mode})` : '';
}

function rateText(rate: number | null): string {
  return rate === null ? '—' : `${formatSi(rate)}/s`;
}

function renderSummary(box: HTMLElement, mine: ProgramView[], ifaces: InterfaceView[], rates: Map<number, number | null>, statsEnabled: boolean): void {
  if (mine.length === 0 && ifaces.length === 0) {
    replaceChildren(box, h('p', { class: 'muted' }, 'xdplb has no program loaded on this host.'));
    return;
  }
  replaceChildren(box, h('div', { class: 'cards' }, mine.map((p) => {
    const attachedTo = ifaces.filter((i) => i.progId === p.id);
    const where = attachedTo.length
      ? attachedTo.map((i) => `${i.ifname} (#${i.ifindex}, ${i.mode})`).join(', ')
      : p.attach ? `${p.attach.ifname} (${p.attach.mode})` : 'not attached';
    return [
      card('Program', `${p.name} #${p.id}`, `${p.typeName} · tag ${p.tag}`),
      card('Attached to', where, `loaded ${formatDateTime(p.loadTime)}`),
      card('Runs', statsEnabled ? formatCount(p.runCount) : '—', statsEnabled ? `${rateText(rates.get(p.id) ?? null)}` : 'statistics off'),
      card('Avg per run', formatNs(p.avgNs), statsEnabled ? 'run time / run count'
        : p.avgNs === null ? 'enable run-time statistics' : 'from when statistics were last on'),
      card('Size', `${formatBytes(p.jitedSize)} JIT`, `${formatBytes(p.xlatedSize)} xlated · ${p.mapIds.length} maps`),
    ];
  })));
}

function card(label: string, value: string, sub: string): HTMLElement {
  return h('div', { class: 'card' }, h('div', { class: 'card-label' }, label),
    h('div', { class: 'card-value small-value' }, value), h('div', { class: 'card-sub' }, sub));
}
