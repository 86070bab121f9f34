// Maps: the balancer's BPF maps (type, sizes, used vs max entries), the Maglev table as
// share-per-backend bars, and a paged browser of decoded entries for any map.
import { describeError, get } from '../api';
import type { MapPage, MapView } from '../api-types';
import { addrCell, bar, focusByKey, h, replaceChildren, table } from '../dom';
import { formatCount, formatPercent } from '../format';
import { store } from '../store';
import { errorBanner, markUpdated, pageHeader, poll, updatedLabel, type MountPage } from '../page';

const POLL_MS = 2000;
const PAGE_SIZE = 25;

interface MaglevEntry { serviceId: number; service: string; tableSize: number; shares: Array<{ backend: string; slots: number; share: number }> }

export const mountMaps: MountPage = (container) => {
  const error = errorBanner();
  const updated = updatedLabel();
  const mapsBox = h('div');
  const maglevBox = h('div');
  const maglevSource = h('span', { class: 'muted small', 'data-testid': 'maglev-source' });
  const browserTitle = h('h2', null, 'Entries');
  const browserInfo = h('span', { class: 'muted small', 'data-testid': 'entries-info' });
  const entriesBox = h('div');
  const prev = h('button', { type: 'button', class: 'btn btn-small', disabled: true }, '← Previous');
  const next = h('button', { type: 'button', class: 'btn btn-small', disabled: true }, 'Next →');
  const browser = h('section', { class: 'panel', id: 'map-entries', hidden: true },
    h('div', { class: 'panel-head' }, browserTitle, browserInfo), entriesBox, h('div', { class: 'pager' }, prev, next));
  replaceChildren(container,
    pageHeader('BPF maps', h('span', { class: 'muted small' }, 'click a map name to browse its entries'), updated),
    error,
    h('section', { class: 'panel' }, h('h2', null, "The balancer's maps"), mapsBox),
    h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', null, 'Maglev table: share of slots per backend'),
      maglevSource), maglevBox),
    browser);

  let selected: string | null = null;
  let offset = 0;
  let total = 0;
  let maps: MapView[] = [];
  const mapButtons = new Map<string, HTMLButtonElement>();

  const loadEntries = async () => {
    if (!selected) return;
    const page = await get<MapPage>(`/maps/${encodeURIComponent(selected)}?offset=${offset}&limit=${PAGE_SIZE}`);
    total = page.total;
    browser.hidden = false;
    browserTitle.textContent = `Entries of ${page.name}`;
    browserInfo.textContent = total === 0 ? 'no entries' : `${offset + 1}–${Math.min(offset + page.entries.length, total)} of ${formatCount(total)}`;
    prev.disabled = offset === 0;
    next.disabled = offset + PAGE_SIZE >= total;
    replaceChildren(entriesBox, entriesTable(page));
  };
  const select = (name: string) => {
    selected = name;
    offset = 0;
    for (const [n, b] of mapButtons) b.setAttribute('aria-pressed', String(n === name));
    void loadEntries().then(() => browser.scrollIntoView({ block: 'nearest' }), (err: unknown) => { error.hidden = false; error.textContent = describeError(err); });
  };
  prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE_SIZE); void loadEntries(); });
  next.addEventListener('click', () => { if (offset + PAGE_SIZE < total) { offset += PAGE_SIZE; void loadEntries(); } });

  const renderMaps = () => {
    const focusKey = (document.activeElement as HTMLElement | null)?.dataset?.focusKey;
    mapButtons.clear();
    replaceChildren(mapsBox, table(['Name', { text: 'ID', num: true }, 'Type', { text: 'Key', num: true }, { text: 'Value', num: true },
      { text: 'Max entries', num: true }, { text: 'Used', num: true }, 'Fill'],
    maps.map((m) => {
      const fill = m.maxEntries > 0 ? m.usedEntries / m.maxEntries : 0;
      const hashLike = m.typeName.includes('hash') || m.typeName.includes('lpm');
      const button = h('button', { type: 'button', class: 'link-button mono', 'data-focus-key': `map|${m.name}`, 'data-map': m.name,
        'aria-pressed': String(m.name === selected), title: `Browse the entries of ${m.name}`, onclick: () => select(m.name) }, m.name);
      mapButtons.set(m.name, button);
      return h('tr', { 'data-map-row': m.name },
        h('td', null, button), h('td', { class: 'num' }, String(m.id)), h('td', null, m.typeName),
        h('td', { class: 'num' }, `${m.keySize} B`), h('td', { class: 'num' }, `${m.valueSize} B`),
        h('td', { class: 'num' }, formatCount(m.maxEntries)), h('td', { class: 'num' }, formatCount(m.usedEntries)),
        h('td', { class: 'bar-cell' }, m.typeName === 'ringbuf' ? h('span', { class: 'muted small' }, 'ring buffer: no entries') :
          h('div', { class: 'share' }, bar(fill, `${formatPercent(fill)} full`, hashLike && fill > 0.9 ? 'bad' : hashLike ? '' : 'info'),
            h('span', { class: 'share-label' }, formatPercent(fill)))));
    })));
    focusByKey(mapsBox, focusKey);
  };

  const load = async () => {
    const res = await get<{ maps: MapView[] }>('/maps');
    maps = res.maps;
    markUpdated(updated, Date.now());
    renderMaps();
    let decoded: unknown[] = [];
    if (maps.some((m) => m.name === 'maglev')) {
      decoded = (await get<MapPage>('/maps/maglev?offset=0&limit=100')).entries.map((e) => e.value);
    }
    if (decoded.length > 0 && decoded.every(isMaglevEntry)) {
      maglevSource.textContent = "decoded from the kernel's maglev map";
      renderMaglev(maglevBox, decoded);
    } else {
      // This daemon's maglev entries carry no per-backend slot counts: use the shares it
      // reports per backend instead, and say so.
      maglevSource.textContent = 'shares as the daemon reports them (GET /services, tableShare)';
      renderMaglev(maglevBox, store.services.map((svc) => ({
        serviceId: svc.id, service: svc.name, tableSize: svc.tableSize ?? 0,
        shares: svc.backends.filter((b) => b.inTable && b.tableShare > 0).map((b) => ({
          backend: b.key, slots: Math.round(b.tableShare * (svc.tableSize ?? 0)), share: b.tableShare })),
      })));
    }
    await loadEntries();
  };
  return poll(load, POLL_MS, error);
};

function isMaglevEntry(v: unknown): v is MaglevEntry {
  const e = v as Partial<MaglevEntry> | null;
  return !!e && typeof e.service === 'string' && typeof e.tableSize === 'number' && Array.isArray(e.shares);
}

function renderMaglev(box: HTMLElement, entries: MaglevEntry[]): void {
  if (entries.length === 0) {
    replaceChildren(box, h('p', { class: 'muted' }, 'The Maglev table is empty (no services).'));
    return;
  }
  replaceChildren(box, entries.map((e) => h('div', { class: 'maglev-service', 'data-maglev-service': e.service },
    h('h3', null, e.service, h('span', { class: 'muted small' }, ` service id ${e.serviceId} · ${formatCount(e.tableSize)} slots`)),
    e.shares.length === 0
      ? h('p', { class: 'muted' }, 'No backend holds a slot: packets for this service are dropped (no_backend).')
      : table(['Backend', { text: 'Slots', num: true }, 'Share'], e.shares.map((s) => h('tr', null,
        addrCell(s.backend),
        h('td', { class: 'num' }, formatCount(s.slots)),
        h('td', { class: 'bar-cell wide' }, h('div', { class: 'share' }, bar(s.share, `${formatPercent(s.share)} of slots`),
          h('span', { class: 'share-label' }, formatPercent(s.share))))))))));
}

/** Flattens a decoded key or value into columns; nested values stay JSON. */
function flatten(value: unknown): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { '': JSON.stringify(value) };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v);
  }
  return out;
}

function entriesTable(page: MapPage): HTMLElement {
  if (page.entries.length === 0) return h('p', { class: 'muted' }, 'No entries to show (empty, or a map type without keys such as a ring buffer).');
  const keys = page.entries.map((e) => flatten(e.key));
  const values = page.entries.map((e) => flatten(e.value));
  const keyCols = [...new Set(keys.flatMap(Object.keys))];
  const valueCols = [...new Set(values.flatMap(Object.keys))];
  return table([...keyCols.map((c) => `key ${c}`.trim()), ...valueCols.map((c) => `value ${c}`.trim())],
    page.entries.map((_, i) => h('tr', null,
      keyCols.map((c) => addrCell(keys[i][c] ?? '', 'key-col')),
      // Long values (nested JSON) wrap in a column of their own; short ones and IPv6
      // addresses (which break at their groups) leave the table narrow enough for 800 px.
      valueCols.map((c) => addrCell(values[i][c] ?? '', (values[i][c] ?? '').length > 24 ? 'wrap' : '')))));
}
