// Benchmarks: the newest saved `xdplb bench` result, rendered generically (the format belongs
// to the bench tool): name/value tables grouped by section, tables for lists of records, and
// bars for every numeric series so that comparisons read at a glance.
import { describeError, get } from '../api';
import { bar, h, replaceChildren, table } from '../dom';
import { formatCount, formatSi } from '../format';
import { errorBanner, pageHeader, type MountPage } from '../page';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export const mountBench: MountPage = (container) => {
  const error = errorBanner();
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  const reload = h('button', { type: 'button', class: 'btn', onclick: () => void load() }, 'Reload');
  replaceChildren(container, pageHeader('Benchmarks', reload), error, body);
  const load = async () => {
    try {
      const res = await get<{ results: Json }>('/bench/latest');
      error.hidden = true;
      if (res.results === null || res.results === undefined) {
        replaceChildren(body, h('section', { class: 'panel empty', 'data-testid': 'bench-empty' },
          h('p', null, 'No benchmark results yet — run ', h('code', null, 'xdplb bench all'), '.'),
          h('p', { class: 'small' }, 'Results appear here once the daemon finds a saved run.')));
      } else {
        replaceChildren(body, renderTop(res.results));
      }
    } catch (err) {
      error.hidden = false;
      error.textContent = describeError(err);
    }
  };
  void load();
  return () => undefined;
};

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1e6) return formatSi(n);
  if (Number.isInteger(n)) return formatCount(n);
  return String(Number(n.toPrecision(4)));
}

function formatScalar(v: Json): string {
  if (typeof v === 'number') return formatNumber(v);
  if (v === null) return '—';
  return String(v);
}

const isRecord = (v: Json): v is { [key: string]: Json } => v !== null && typeof v === 'object' && !Array.isArray(v);
const isScalar = (v: Json) => v === null || typeof v !== 'object';
const humanize = (key: string) => key.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/[_]+/g, ' ');

/** {a: 1, lat: {p50: 2}} -> {a: 1, 'lat p50': 2}: one level of nested scalars becomes columns. */
function flattenRecord(r: { [key: string]: Json }): { [key: string]: Json } {
  const out: { [key: string]: Json } = {};
  for (const [k, v] of Object.entries(r)) {
    if (isRecord(v) && Object.values(v).every(isScalar)) for (const [k2, v2] of Object.entries(v)) out[`${k} ${k2}`] = v2;
    else out[k] = v;
  }
  return out;
}

function renderTop(results: Json): HTMLElement {
  if (!isRecord(results)) return h('section', { class: 'panel' }, renderValue('results', results, 2));
  const scalars = Object.entries(results).filter(([, v]) => isScalar(v));
  const sections = Object.entries(results).filter(([, v]) => !isScalar(v));
  return h('div', null,
    scalars.length ? h('section', { class: 'panel bench-section' }, h('h2', null, 'Run'), scalarTable(scalars)) : null,
    sections.map(([key, value]) => h('section', { class: 'panel bench-section', 'data-bench-section': key },
      h('h2', { class: 'capitalize' }, humanize(key)), renderValue(key, value, 3))));
}

/** Renders any JSON value under a section heading level `depth` (h3, h4...). */
function renderValue(key: string, value: Json, depth: number): Node {
  if (isScalar(value)) return scalarTable([[key, value]]);
  if (Array.isArray(value)) {
    if (value.length === 0) return h('p', { class: 'muted' }, 'none');
    if (value.every((v) => typeof v === 'number')) return numberBars(value.map((v, i) => [String(i + 1), v as number]));
    if (value.every(isRecord)) return recordTable(value as Array<{ [key: string]: Json }>);
    return h('div', null, value.map((v, i) => renderValue(`${key}[${i}]`, v, depth)));
  }
  const entries = Object.entries(value);
  const scalars = entries.filter(([, v]) => isScalar(v));
  const nested = entries.filter(([, v]) => !isScalar(v));
  const heading = (text: string) => h(depth <= 3 ? 'h3' : 'h4', null, humanize(text));
  // A map of name -> number is a series: bars compare them directly.
  const numeric = scalars.filter(([, v]) => typeof v === 'number') as Array<[string, number]>;
  return h('div', null,
    scalars.length ? (numeric.length === scalars.length && numeric.length >= 2 ? numberBars(numeric) : scalarTable(scalars)) : null,
    nested.map(([k, v]) => h('div', { class: 'bench-sub' }, heading(k), depth > 6 ? h('pre', { class: 'entry-json' }, JSON.stringify(v, null, 2)) : renderValue(k, v, depth + 1))));
}

function scalarTable(rows: Array<[string, Json]>): HTMLElement {
  return table(['Name', 'Value'], rows.map(([k, v]) => h('tr', null, h('td', null, humanize(k)), h('td', { class: 'mono' }, formatScalar(v)))));
}

function numberBars(rows: Array<[string, number]>): HTMLElement {
  const max = Math.max(0, ...rows.map(([, v]) => Math.abs(v)));
  return table(['Name', { text: 'Value', num: true }, ''], rows.map(([k, v]) => h('tr', null,
    h('td', null, humanize(k)), h('td', { class: 'num' }, formatNumber(v)),
    h('td', { class: 'bar-cell wide' }, bar(max > 0 ? Math.abs(v) / max : 0, `${k}: ${formatNumber(v)}`)))));
}

function recordTable(rawRecords: Array<{ [key: string]: Json }>): HTMLElement {
  const records = rawRecords.map(flattenRecord);
  const columns = [...new Set(records.flatMap((r) => Object.keys(r)))];
  const numericColumns = columns.filter((c) => records.every((r) => r[c] === undefined || r[c] === null || typeof r[c] === 'number') && records.some((r) => typeof r[c] === 'number'));
  // Bars only where the rows differ: a column of equal values has nothing to compare.
  const barColumns = new Set(numericColumns.filter((c) => new Set(records.map((r) => r[c])).size > 1));
  const max = new Map(numericColumns.map((c) => [c, Math.max(0, ...records.map((r) => Math.abs((r[c] as number) ?? 0)))]));
  return table(columns.map((c) => ({ text: humanize(c), num: numericColumns.includes(c) })), records.map((r) => h('tr', null,
    columns.map((c) => {
      const v = r[c];
      if (v === undefined) return h('td', null, '');
      if (typeof v === 'number' && barColumns.has(c)) {
        const m = max.get(c) ?? 0;
        return h('td', { class: 'num' }, h('div', { class: 'num-bar' }, formatNumber(v), bar(m > 0 ? Math.abs(v) / m : 0, `${c}: ${formatNumber(v)}`)));
      }
      if (typeof v === 'number' || (v === null && numericColumns.includes(c))) return h('td', { class: 'num' }, formatScalar(v));
      return h('td', { class: isScalar(v) ? '' : 'mono wrap' }, isScalar(v) ? formatScalar(v) : JSON.stringify(v));
    }))));
}
