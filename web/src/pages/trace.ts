// Trace: the kernel's sampled per-packet records from the events ring buffer, live, with
// filters, pause/resume and a bounded buffer. Admins set the sampling rate.
import { describeError, get, request } from '../api';
import type { InterfaceView, SettingsView } from '../api-types';
import { REASONS, XDP_ACTIONS } from '../../../src/dataplane/types';
import { confirmDialog } from '../dialog';
import { addrCell, badge, h, replaceChildren, table } from '../dom';
import { formatClock, formatCount, formatProto } from '../format';
import { formatHostPort } from '../address';
import { eventFamily, parseTraceFilter, traceEventMatches, type TraceFilter } from '../trace-filter';
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
  const fFamily = select('f-family', 'Family', ['IPv4', 'IPv6']);
  const fProto = select('f-proto', 'Protocol', ['tcp', 'udp', 'icmp', 'icmpv6']);
  // Free-text filters: an address (any IPv4/IPv6 form, a prefix, or address:port / [v6]:port)
  // and a port; checked as typed, refused with a message (and not applied) when invalid.
  const textFilter = (id: string, label: string, placeholder: string, size: number) => {
    const el = h('input', { id, 'data-filter': id, type: 'text', placeholder, size, autocomplete: 'off', spellcheck: 'false',
      'aria-describedby': 'trace-filter-error' });
    return { wrap: h('label', { for: id }, label, el), el };
  };
  const fAddress = textFilter('f-address', 'Address', 'any, e.g. 2001:2::/48', 22);
  const fPort = textFilter('f-port', 'Port', 'any', 6);
  const filterError = h('p', { class: 'filter-error', id: 'trace-filter-error', role: 'alert', 'data-testid': 'filter-error', hidden: true });
  const pause = h('button', { type: 'button', class: 'btn', 'aria-pressed': 'false', 'data-testid': 'pause' }, 'Pause');
  const clear = h('button', { type: 'button', class: 'btn' }, 'Clear');
  const counts = h('span', { class: 'muted small', role: 'status', 'data-testid': 'trace-count' });
  const rowsBox = h('div', { class: 'trace-rows' });
  replaceChildren(container,
    pageHeader('Kernel trace', sampling, setRate),
    error,
    h('section', { class: 'panel' },
      h('div', { class: 'filters' }, fAddress.wrap, fPort.wrap, fFamily.wrap, fProto.wrap, fService.wrap, fBackend.wrap, fVerdict.wrap, fReason.wrap,
        pause, clear, counts),
      filterError,
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

  // The filter as last read from the controls; an invalid text field is left out of it.
  let filter: TraceFilter = {};
  const readFilters = () => {
    const parsed = parseTraceFilter({
      address: fAddress.el.value, port: fPort.el.value, family: fFamily.el.value, proto: fProto.el.value,
      service: fService.el.value, backend: fBackend.el.value, action: fVerdict.el.value, reason: fReason.el.value,
    });
    filter = parsed.filter;
    for (const [field, input] of [['address', fAddress.el], ['port', fPort.el]] as const) {
      if (parsed.errors[field]) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
    const messages = Object.values(parsed.errors);
    filterError.hidden = messages.length === 0;
    filterError.textContent = messages.length ? `${messages.join('; ')} (not applied)` : '';
  };
  const matches = (e: BufferedEvent) => traceEventMatches(e, filter);

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
      shown.map((e) => h('tr', { 'data-seq': e.seq, 'data-family': eventFamily(e) ?? undefined },
        h('td', { class: 'mono', title: `kernel time ${e.tsNs} ns, received ${formatClock(e.receivedAt, true)}` },
          formatClock(store.kernelClockOffsetMs === null ? e.receivedAt : e.tsNs / 1e6 + store.kernelClockOffsetMs, true)),
        h('td', null, interfaces.get(e.ifindex) ?? `#${e.ifindex}`),
        h('td', null, badge(e.action, VERDICT_KIND[e.action] ?? 'muted')),
        h('td', { class: 'mono' }, e.reason),
        h('td', { class: 'wide-only' }, formatProto(e.proto)),
        addrCell(formatHostPort(e.saddr, e.sport), 'src'),
        addrCell(formatHostPort(e.daddr, e.dport), 'dst'),
        h('td', null, e.service ?? '—'),
        e.backend ? addrCell(e.backend, 'backend') : h('td', { class: 'mono' }, '—'),
        h('td', { class: 'num wide-only' }, String(e.pktLen))))));
  };
  const scheduleRender = () => { if (!pendingTimer) pendingTimer = window.setTimeout(render, RENDER_EVERY_MS); };

  const refilter = () => { readFilters(); render(); };
  for (const f of [fService, fBackend, fVerdict, fReason, fFamily, fProto]) f.el.addEventListener('change', refilter);
  for (const f of [fAddress, fPort]) f.el.addEventListener('input', refilter);
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
    readFilters();
  };
  // While paused the rows stay frozen; only the "newer" count moves.
  const offEvents = store.on('events', scheduleRender);
  const offServices = store.on('services', refreshOptions);
  readFilters();
  render();
  return () => { offEvents(); offServices(); window.clearTimeout(pendingTimer); };
};
