// Trace: the kernel's sampled per-packet records from the events ring buffer, live, with
// filters, pause/resume and a bounded buffer. Admins set the sampling rate.
import { describeError, get, request } from '../api';
import type { InterfaceView, SettingsView } from '../api-types';
import { REASONS, XDP_ACTIONS } from '../../../src/dataplane/types';
import { confirmDialog } from '../dialog';
import { badge, h, replaceChildren, table } from '../dom';
import { formatClock, formatCount, formatProto } from '../format';
import { errorBanner, pageHeader, type MountPage } from '../page';
import { EVENT_BUFFER, store, type BufferedEvent } from '../store';

const MAX_ROWS = 250;
const RENDER_EVERY_MS = 300;
const VERDICT_KIND: Record<string, string> = { tx: 'ok', redirect: 'ok', pass: 'info', drop: 'bad', aborted: 'bad' };

function select(id: string, label: string, options: string[]): { wrap: HTMLElement; el: HTMLSelectElement } {
  const el = h('select', { id, 'data-filter': id },
    h('option', { value: '' }, 'all'), options.map((o) => h('option', { value: o }, o)));
  return { wrap: h('label', { for: id }, label, el), el };
}

export const mountTrace: MountPage = (container, ctx) => {
  const error = errorBanner();
  const sampling = h('span', { class: 'muted', 'data-testid': 'sample-rate' }, 'sampling: …');
  const setRate = ctx.isAdmin ? h('button', { type: 'button', class: 'btn', 'data-action': 'set-sample-rate' }, 'Set sampling rate…') : null;
  const serviceNames = () => [...new Set(store.services.map((s) => s.name))];
  const backendKeys = () => [...new Set(store.services.flatMap((s) => s.backends.map((b) => b.key)))];
  const fService = select('f-service', 'Service', serviceNames());
  const fBackend = select('f-backend', 'Backend', backendKeys());
  const fVerdict = select('f-verdict', 'Verdict', [...XDP_ACTIONS]);
  const fReason = select('f-reason', 'Reason', [...REASONS]);
  const pause = h('button', { type: 'button', class: 'btn', 'aria-pressed': 'false', 'data-testid': 'pause' }, 'Pause');
  const clear = h('button', { type: 'button', class: 'btn' }, 'Clear');
  const counts = h('span', { class: 'muted small', role: 'status', 'data-testid': 'trace-count' });
  const rowsBox = h('div', { class: 'trace-rows' });
  replaceChildren(container,
    pageHeader('Kernel trace', sampling, setRate),
    error,
    h('section', { class: 'panel' },
      h('div', { class: 'filters' }, fService.wrap, fBackend.wrap, fVerdict.wrap, fReason.wrap, pause, clear, counts),
      rowsBox));

  let interfaces = new Map<number, string>();
  let paused = false;
  let frozen: BufferedEvent[] = [];
  let pendingTimer = 0;
  let settings: SettingsView | null = null;

  const renderSampling = () => {
    if (!settings) return;
    sampling.textContent = settings.sampleRate === 0 ? 'sampling: off (no events)'
      : settings.sampleRate === 1 ? 'sampling: every packet' : `sampling: 1 in ${formatCount(settings.sampleRate)} packets`;
  };
  const loadSettings = async () => {
    try {
      settings = await get<SettingsView>('/settings');
      renderSampling();
    } catch (err) { error.hidden = false; error.textContent = describeError(err); }
  };
  void loadSettings();
  void get<{ interfaces: InterfaceView[] }>('/interfaces').then((res) => {
    interfaces = new Map(res.interfaces.map((i) => [i.ifindex, i.ifname]));
    render();
  }, () => undefined);

  setRate?.addEventListener('click', () => void confirmDialog({
    title: 'Set the trace sampling rate',
    body: ['The data plane writes 1 in N packets to the events ring buffer. Lower N shows more packets and costs more; 0 turns tracing off.'],
    fields: [{ name: 'sampleRate', label: 'N (1 in N packets)', type: 'number', min: 0, value: String(settings?.sampleRate ?? 0), required: true }],
    confirmLabel: 'Apply',
    action: async (v) => {
      const n = Number(v.sampleRate);
      if (!Number.isInteger(n) || n < 0) throw new Error('the rate must be a whole number >= 0');
      settings = await request<SettingsView>('PATCH', '/settings', { sampleRate: n });
      renderSampling();
    },
  }));

  const matches = (e: BufferedEvent) =>
    (!fService.el.value || e.service === fService.el.value) &&
    (!fBackend.el.value || e.backend === fBackend.el.value) &&
    (!fVerdict.el.value || e.action === fVerdict.el.value) &&
    (!fReason.el.value || e.reason === fReason.el.value);

  const render = () => {
    window.clearTimeout(pendingTimer);
    pendingTimer = 0;
    const source = paused ? frozen : store.recentEvents();
    const shown: BufferedEvent[] = [];
    let matching = 0;
    for (let i = source.length - 1; i >= 0; i--) {
      if (!matches(source[i])) continue;
      matching++;
      if (shown.length < MAX_ROWS) shown.push(source[i]);
    }
    const newer = paused ? store.eventsSeen - (frozen[frozen.length - 1]?.seq ?? 0) : 0;
    counts.textContent = `${formatCount(matching)} matching of ${formatCount(source.length)} buffered (last ${EVENT_BUFFER})` +
      (matching > MAX_ROWS ? `, newest ${MAX_ROWS} shown` : '') + (paused ? ` · paused, ${formatCount(newer)} newer` : '');
    if (shown.length === 0) {
      replaceChildren(rowsBox, h('p', { class: 'empty' }, source.length === 0
        ? (settings?.sampleRate === 0 ? 'Tracing is off (sampling rate 0).' : 'Waiting for sampled packets from the kernel…')
        : 'No buffered event matches the filters.'));
      return;
    }
    replaceChildren(rowsBox, table(['Time', 'Iface', 'Verdict', 'Reason', { text: 'Proto', cls: 'wide-only' }, 'Source', 'Destination', 'Service', 'Backend',
      { text: 'Len', num: true, cls: 'wide-only' }],
      shown.map((e) => h('tr', { 'data-seq': e.seq },
        h('td', { class: 'mono', title: `kernel time ${e.tsNs} ns, received ${formatClock(e.receivedAt, true)}` },
          formatClock(store.kernelClockOffsetMs === null ? e.receivedAt : e.tsNs / 1e6 + store.kernelClockOffsetMs, true)),
        h('td', null, interfaces.get(e.ifindex) ?? `#${e.ifindex}`),
        h('td', null, badge(e.action, VERDICT_KIND[e.action] ?? 'muted')),
        h('td', { class: 'mono' }, e.reason),
        h('td', { class: 'wide-only' }, formatProto(e.proto)),
        h('td', { class: 'mono' }, `${e.saddr}:${e.sport}`),
        h('td', { class: 'mono' }, `${e.daddr}:${e.dport}`),
        h('td', null, e.service ?? '—'),
        h('td', { class: 'mono' }, e.backend ?? '—'),
        h('td', { class: 'num wide-only' }, String(e.pktLen))))));
  };
  const scheduleRender = () => { if (!pendingTimer) pendingTimer = window.setTimeout(render, RENDER_EVERY_MS); };

  for (const f of [fService, fBackend, fVerdict, fReason]) f.el.addEventListener('change', render);
  pause.addEventListener('click', () => {
    paused = !paused;
    frozen = paused ? [...store.recentEvents()] : [];
    pause.setAttribute('aria-pressed', String(paused));
    pause.textContent = paused ? 'Resume' : 'Pause';
    render();
  });
  clear.addEventListener('click', () => {
    store.events.length = 0;
    frozen = [];
    render();
  });
  const refreshOptions = () => {
    for (const [f, options] of [[fService, serviceNames()], [fBackend, backendKeys()]] as const) {
      const current = f.el.value;
      replaceChildren(f.el, h('option', { value: '' }, 'all'), options.map((o) => h('option', { value: o }, o)));
      f.el.value = options.includes(current) ? current : '';
    }
  };
  // While paused the rows stay frozen; only the "newer" count moves.
  const offEvents = store.on('events', scheduleRender);
  const offServices = store.on('services', refreshOptions);
  render();
  return () => { offEvents(); offServices(); window.clearTimeout(pendingTimer); };
};
