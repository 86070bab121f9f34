/**
 * formatConfig writes backend lists itself (the YAML library costs ~13 ms per 1000 backends):
 * the text must be exactly what the library writes (plainYaml), for every shape of config.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { formatConfig, parseConfigText } from './config';
import { DesiredState } from './state';
import { rng } from '../../test/support/rng';


describe('formatConfig: backend lists written directly', () => {
  test('the same text as the YAML library for random configs (weights, drain, port 0, empty lists, checks, DSR)', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const r = rng(seed);
      const services = Array.from({ length: Math.floor(r() * 5) }, (_, s) => {
        const dsr = r() < 0.25;
        const port = dsr ? 80 : Math.floor(r() * 65536);
        const n = r() < 0.15 ? 0 : 1 + Math.floor(r() * 40);
        const seen = new Set<string>();
        const backends = [];
        for (let i = 0; i < n; i++) {
          const address = `198.18.${(s * 40 + Math.floor(i / 250)) % 256}.${(i % 250) + 1}`;
          if (seen.has(address)) continue;
          seen.add(address);
          const b: Record<string, unknown> = { address, port: dsr ? (r() < 0.5 ? 0 : 80) : Math.floor(r() * 65536) };
          if (r() < 0.7) b.weight = Math.floor(r() * 1000);
          if (r() < 0.3) b.drain = r() < 0.5;
          backends.push(b);
        }
        return {
          name: `s${s}`, vip: `198.19.${s}.1`, port, protocol: r() < 0.5 ? 'tcp' : 'udp', mode: dsr ? 'dsr' : 'nat',
          ...(r() < 0.5 ? { tableSize: 65537 } : {}), backends,
          ...(r() < 0.3 ? { healthCheck: { type: 'tcp', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2 } } : {}),
        };
      });
      const config = new DesiredState({ services, hashSeed: seed }).toConfig();
      const fast = formatConfig(config);
      assert.equal(fast, formatConfig(config, { plainYaml: true }), `seed ${seed}`);
      assert.deepEqual(parseConfigText(fast, 'x.yaml').services, config.services, `seed ${seed}: loads back`);
    }
  });

  test("a DesiredState's frozen config (lines remembered per backend) through bulk changes: the text of its plain copy, loading back", () => {
    const backends = Array.from({ length: 300 }, (_, i) => ({ address: `198.18.${216 + Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8080, weight: 1 + (i % 3) }));
    let state = new DesiredState({ services: [{ name: 'bulk', vip: '198.18.215.1', port: 80, protocol: 'tcp', mode: 'nat', backends },
      { name: 'v6', vip: '2001:2::1', port: 443, protocol: 'tcp', mode: 'nat', backends: [{ address: '2001:2::10', port: 8443, weight: 2 }] }] });
    const r = rng(7);
    for (let round = 0; round < 12; round++) {
      const picked = [...new Set(Array.from({ length: 1 + Math.floor(r() * 30) }, () => Math.floor(r() * 300)))];
      state = state.patchBackends(picked.map((b, k) => ({ service: 0, backend: b, patch: r() < 0.5 ? { drain: r() < 0.5 } : { weight: Math.floor(r() * 5) }, at: `/changes/${k}` })));
      const before = JSON.stringify(state.config);
      const text = formatConfig(state.config as never);
      assert.equal(JSON.stringify(state.config), before, 'the config is not changed');
      assert.equal(text, formatConfig(state.toConfig()), `round ${round}: as its unfrozen copy`);
      assert.deepEqual(parseConfigText(text, 'x.yaml').services, state.toConfig().services, `round ${round}: loads back`);
    }
  });

  test('1000 backends: same text, and faster than the library alone', () => {
    const backends = Array.from({ length: 1000 }, (_, i) => ({ address: `198.18.${216 + Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8080, weight: 1 + (i % 3), ...(i % 7 === 0 ? { drain: true } : {}) }));
    const config = new DesiredState({ services: [{ name: 'bulk', vip: '198.18.215.1', port: 80, protocol: 'tcp', mode: 'nat', backends }] }).toConfig();
    const time = (f: () => string) => { for (let i = 0; i < 3; i++) f(); const t = performance.now(); for (let i = 0; i < 5; i++) f(); return (performance.now() - t) / 5; };
    assert.equal(formatConfig(config), formatConfig(config, { plainYaml: true }));
    const fast = time(() => formatConfig(config));
    const plain = time(() => formatConfig(config, { plainYaml: true }));
    assert.ok(fast < plain / 2, `fast ${fast.toFixed(2)} ms vs library ${plain.toFixed(2)} ms`);
  });
});
