/**
 * diffConfigs (src/daemon/state-diff.ts) against the rule it implements, written the plain way
 * (canonical JSON of each service, backends by "address:port"), over random pairs of configs:
 * states that share their untouched parts (as DesiredState.patchBackends makes them) and
 * states that share nothing, with backends changed, added, removed and moved, and fields changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DesiredState } from '../config/state';
import type { Config } from '../config/schema';
import type { StateDiff } from '../domain/types';
import { canonical, diffConfigs } from './state-diff';

function reference(before: Readonly<Config>, after: Readonly<Config>): StateDiff['changed'] {
  const key = (b: { address: string; port: number }) => `${b.address}:${b.port}`;
  const was = new Map(before.services.map((s) => [s.name, s]));
  const out: StateDiff['changed'] = [];
  for (const s of after.services) {
    const old = was.get(s.name);
    if (!old || canonical(old) === canonical(s)) continue;
    const fields = [...new Set([...Object.keys(old), ...Object.keys(s)])]
      .filter((f) => f !== 'backends' && canonical((old as unknown as Record<string, unknown>)[f]) !== canonical((s as unknown as Record<string, unknown>)[f])).sort();
    const o = new Map(old.backends.map((b) => [key(b), b]));
    const n = new Map(s.backends.map((b) => [key(b), b]));
    const backends: StateDiff['changed'][number]['backends'] = {
      added: s.backends.filter((b) => !o.has(key(b))).map(key), removed: old.backends.filter((b) => !n.has(key(b))).map(key), changed: [],
    };
    for (const b of s.backends) {
      const p = o.get(key(b));
      if (p && (p.weight !== b.weight || !!p.drain !== !!b.drain)) backends.changed.push({ backend: key(b), from: { weight: p.weight, drain: !!p.drain }, to: { weight: b.weight, drain: !!b.drain } });
    }
    out.push({ name: s.name, fields, backends });
  }
  return out;
}

test('diffConfigs: the changed services and backends of the plain rule, shared parts or not', () => {
  let seed = 21;
  const rand = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
  const backend = (i: number) => ({ address: `198.18.${20 + Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8080, weight: 1 });
  let state = new DesiredState({ services: [
    { name: 'web', vip: '198.18.19.1', port: 80, protocol: 'tcp', mode: 'nat', backends: Array.from({ length: 60 }, (_, i) => backend(i)) },
    { name: 'dns', vip: '198.18.19.2', port: 53, protocol: 'udp', mode: 'dsr', backends: [{ address: '198.18.30.1', port: 0 }] },
  ] });
  let next = 100;
  let changedSeen = 0;
  for (let round = 0; round < 60; round++) {
    let after: DesiredState;
    const kind = rand(4);
    if (kind === 0) {
      // Shared parts: weights and drains of a few backends.
      const picked = [...new Set(Array.from({ length: 1 + rand(8) }, () => rand(state.config.services[0].backends.length)))];
      after = state.patchBackends(picked.map((b, k) => ({ service: 0, backend: b, patch: rand(2) ? { weight: rand(4) } : { drain: rand(2) === 0 }, at: `/changes/${k}` })));
    } else {
      const config = state.toConfig();
      const web = config.services[0];
      if (kind === 1) web.backends.splice(rand(web.backends.length), 1 + rand(3));
      if (kind === 2) web.backends.splice(rand(web.backends.length), 0, backend(next++));
      if (kind === 3) {
        const i = rand(web.backends.length);
        const j = rand(web.backends.length);
        [web.backends[i], web.backends[j]] = [web.backends[j], web.backends[i]];
        if (rand(2)) web.port = 80 + rand(2);
        if (rand(3) === 0) config.services[1].backends[0].weight = 1 + rand(3);
      }
      after = new DesiredState(config);
    }
    const got = diffConfigs(state.config, after.config);
    assert.deepEqual(got.changed, reference(state.config, after.config), `round ${round}`);
    changedSeen += got.changed.length;
    state = after;
  }
  assert.ok(changedSeen > 30, `most rounds change something (${changedSeen})`);
});
