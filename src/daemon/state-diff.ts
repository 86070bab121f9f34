/**
 * What a whole-state change does (PUT /api/v1/state, `xdplb apply/diff -f`): the diff between
 * two configs, service by service and backend by backend, and the Maglev disruption it causes:
 * the share of each service's table slots (so of its flows without a flow-cache entry) whose
 * backend changes. Tables are built with the builder the reconciler uses, from the data-plane
 * states (health applied), so the share is exactly what the kernel's tables will show.
 */
import type { Config } from '../config/schema';
import type { DataplaneState } from '../dataplane/types';
import type { StateDiff, ServiceDisruption } from '../domain/types';
import { buildMaglevTable, type MaglevBackend } from '../balancer/maglev';
import { buildMaglevTablesOffThread, OFF_THREAD_MIN_SLOTS } from '../balancer/maglev-offthread';
import { joinHostPort } from '../domain/address';

const key = (b: { address: string; port: number }) => joinHostPort(b.address, b.port);

/** Canonical JSON (object keys sorted), to compare specs (and the plain rule state-diff.test.ts checks the fast comparison against). */
export function canonical(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v === null || typeof v !== 'object') return v;
    const r = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(r).sort().filter((k) => r[k] !== undefined).map((k) => [k, sort(r[k])]));
  };
  return JSON.stringify(sort(value));
}

/**
 * What canonical(a) === canonical(b) says, for config data (JSON values), without building the
 * strings: the same object is equal at once (states share their untouched frozen parts, so a
 * bulk change compares 100 backends of 1000, not two JSON texts of 1000).
 */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const ka = Object.keys(ra).filter((k) => ra[k] !== undefined);
  const kb = Object.keys(rb).filter((k) => rb[k] !== undefined);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (!(k in rb) || !sameValue(ra[k], rb[k])) return false;
  return true;
}

/** The diff from `before` to `after` (services by name, backends by address:port, settings by field). */
export function diffConfigs(before: Readonly<Config>, after: Readonly<Config>): StateDiff {
  const was = new Map(before.services.map((s) => [s.name, s]));
  const now = new Map(after.services.map((s) => [s.name, s]));
  const diff: StateDiff = { added: [], removed: [], changed: [], settings: [] };
  for (const s of after.services) if (!was.has(s.name)) diff.added.push(s.name);
  for (const s of before.services) if (!now.has(s.name)) diff.removed.push(s.name);
  for (const s of after.services) {
    const old = was.get(s.name);
    if (!old || sameValue(old, s)) continue;
    const fields = [...new Set([...Object.keys(old), ...Object.keys(s)])]
      .filter((f) => f !== 'backends' && !sameValue((old as unknown as Record<string, unknown>)[f], (s as unknown as Record<string, unknown>)[f])).sort();
    const backends: StateDiff['changed'][number]['backends'] = { added: [], removed: [], changed: [] };
    const changedFrom = (o: typeof old.backends[number], b: typeof s.backends[number]): void => {
      const from = { weight: o.weight, drain: !!o.drain };
      const to = { weight: b.weight, drain: !!b.drain };
      if (from.weight !== to.weight || from.drain !== to.drain) backends.changed.push({ backend: key(b), from, to });
    };
    // The same addresses and ports at the same places (weights and drains changed): no key map.
    if (old.backends.length === s.backends.length && s.backends.every((b, i) => b === old.backends[i] || (b.address === old.backends[i].address && b.port === old.backends[i].port))) {
      s.backends.forEach((b, i) => { if (b !== old.backends[i]) changedFrom(old.backends[i], b); });
    } else {
      const oldBackends = new Map(old.backends.map((b) => [key(b), b]));
      const newBackends = new Map(s.backends.map((b) => [key(b), b]));
      for (const b of s.backends) if (!oldBackends.has(key(b))) backends.added.push(key(b));
      for (const b of old.backends) if (!newBackends.has(key(b))) backends.removed.push(key(b));
      for (const b of s.backends) {
        const o = oldBackends.get(key(b));
        if (o) changedFrom(o, b);
      }
    }
    diff.changed.push({ name: s.name, fields, backends });
  }
  const settings: Array<[string, unknown, unknown]> = [
    ['fragPolicy', before.fragments, after.fragments],
    ['sampleRate', before.sampling.rate, after.sampling.rate],
    ['flowCache', before.flowCache, after.flowCache],
  ];
  for (const [field, from, to] of settings) if (from !== to) diff.settings.push({ field, from, to });
  return diff;
}

/** True when the diff changes nothing. */
export function emptyDiff(d: StateDiff): boolean {
  return !d.added.length && !d.removed.length && !d.changed.length && !d.settings.length;
}

/** The pool a service's table is built from, as the reconciler takes it (usable backends, by key). */
function pool(s: DataplaneState['services'][number]): MaglevBackend[] {
  return s.backends.filter((b) => b.healthy && !b.draining && b.weight > 0).map((b) => ({ key: key(b), weight: b.weight }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

async function tables(jobs: Array<{ backends: MaglevBackend[]; size: number }>): Promise<Uint32Array[]> {
  const large = jobs.map((j, i) => ({ j, i })).filter(({ j }) => j.size >= OFF_THREAD_MIN_SLOTS && j.backends.length > 0);
  const built = await buildMaglevTablesOffThread(large.map(({ j }) => j));
  const out = jobs.map((j) => (j.size >= OFF_THREAD_MIN_SLOTS && j.backends.length > 0 ? null : buildMaglevTable(j.backends, j.size)));
  large.forEach(({ i }, k) => { out[i] = built[k]; });
  return out as Uint32Array[];
}

/**
 * Per service present in both states: the share of its table's slots whose backend changes
 * (0 when the pool and size are the same; 1 when it loses or gains its last usable backend).
 * Services only in `after` or only in `before` are listed with moved = null (new: no flows yet;
 * removed: every flow ends).
 */
export async function maglevDisruption(before: DataplaneState, after: DataplaneState): Promise<ServiceDisruption[]> {
  const was = new Map(before.services.map((s) => [s.name, s]));
  const out: ServiceDisruption[] = [];
  const pending: Array<{ service: string; tableSize: number; a: MaglevBackend[]; b: MaglevBackend[]; sizeA: number }> = [];
  for (const s of after.services) {
    const old = was.get(s.name);
    if (!old) { out.push({ service: s.name, moved: null, tableSize: s.tableSize, change: 'added' }); continue; }
    pending.push({ service: s.name, tableSize: s.tableSize, a: pool(old), b: pool(s), sizeA: old.tableSize });
  }
  for (const s of before.services) {
    if (!after.services.some((t) => t.name === s.name)) out.push({ service: s.name, moved: null, tableSize: s.tableSize, change: 'removed' });
  }
  const same = (p: typeof pending[number]) => p.sizeA === p.tableSize && canonical(p.a) === canonical(p.b);
  const toBuild = pending.filter((p) => !same(p) && p.a.length > 0 && p.b.length > 0);
  const built = await tables(toBuild.flatMap((p) => [{ backends: p.a, size: p.sizeA }, { backends: p.b, size: p.tableSize }]));
  for (const p of pending) {
    let moved: number;
    if (same(p)) moved = 0;
    else if (p.a.length === 0 || p.b.length === 0) moved = p.a.length === p.b.length ? 0 : 1;
    else {
      const k = toBuild.indexOf(p);
      const ta = built[2 * k];
      const tb = built[2 * k + 1];
      if (ta.length !== tb.length) {
        // A new size puts every flow in another slot: it keeps its backend with the chance that
        // both tables give it the same one, sum over backends of share before x share after.
        const share = (t: Uint32Array, keys: MaglevBackend[]) => {
          const m = new Map<string, number>();
          for (const i of t) m.set(keys[i].key, (m.get(keys[i].key) ?? 0) + 1 / t.length);
          return m;
        };
        const sa = share(ta, p.a);
        let kept = 0;
        for (const [k, v] of share(tb, p.b)) kept += v * (sa.get(k) ?? 0);
        moved = 1 - kept;
      } else {
        let changed = 0;
        for (let i = 0; i < tb.length; i++) if (p.a[ta[i]].key !== p.b[tb[i]].key) changed++;
        moved = changed / tb.length;
      }
    }
    out.push({ service: p.service, moved, tableSize: p.tableSize, change: moved === 0 && same(p) ? 'none' : 'changed' });
  }
  return out.sort((x, y) => (x.service < y.service ? -1 : x.service > y.service ? 1 : 0));
}
