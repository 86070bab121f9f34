/**
 * formatConfig remembers the YAML library's text around the backend lists of the last config it
 * formatted and reuses it when only backends changed (issue 16: the config write of a drain).
 * The text must be byte for byte what the library path writes (memo: false, plainYaml) for
 * every shape of config, through sequences of changes that hit and miss the memo, and what it
 * writes must load back with its secrets verifying.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { formatConfig, formatMemoStats, hashSecret, isEmptyConfig, parseConfigText, verifySecret } from './config';
import { DesiredState } from './state';
import { rng } from '../../test/support/rng';
import type { Config } from './schema';

const HASH = hashSecret('a-long-enough-secret-1');

/** A random valid config: 0-4 services (IPv4 or IPv6, NAT or DSR, empty or not, checks of every
 * kind), and each optional section of the config present or not. */
function randomConfig(seed: number): Record<string, unknown> {
  const r = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const maybe = (p: number, v: () => Record<string, unknown>): Record<string, unknown> => (r() < p ? v() : {});
  const services = Array.from({ length: Math.floor(r() * 5) }, (_, s) => {
    const v6 = r() < 0.35;
    const dsr = r() < 0.25;
    const port = dsr ? 80 : 1 + Math.floor(r() * 65535);
    const n = r() < 0.2 ? 0 : 1 + Math.floor(r() * 12);
    const backends = Array.from({ length: n }, (_, i) => ({
      address: v6 ? `2001:2:0:${s + 1}::${(i + 1).toString(16)}` : `198.18.${s + 1}.${i + 1}`,
      port: dsr ? pick([0, 80]) : 1 + Math.floor(r() * 65535),
      ...maybe(0.7, () => ({ weight: Math.floor(r() * 1000) })),
      ...maybe(0.3, () => ({ drain: r() < 0.5 })),
    }));
    const http = r() < 0.5;
    return {
      name: `svc-${seed}-${s}`, vip: v6 ? `2001:2:ff::${s + 1}` : `198.19.${s}.1`, port, protocol: pick(['tcp', 'udp']), mode: dsr ? 'dsr' : 'nat',
      ...maybe(0.5, () => ({ tableSize: pick([251, 8209, 65537]) })),
      backends,
      ...maybe(0.5, () => ({
        healthCheck: {
          type: http ? 'http' : 'tcp', intervalMs: 1000 + Math.floor(r() * 1000), timeoutMs: 500, rise: 1 + Math.floor(r() * 3), fall: 2,
          ...(http ? { path: pick(['/', '/health', '/a/b?c=d&e=f', '/x#y:z']), ...maybe(0.5, () => ({ expectStatus: [200, 299] })), ...maybe(0.3, () => ({ reuseConnection: r() < 0.5 })) } : {}),
          ...maybe(0.3, () => ({ port: 1 + Math.floor(r() * 65535) })),
          ...maybe(0.3, () => ({ initialState: pick(['up', 'down']) })),
          ...maybe(0.3, () => ({ flap: { maxFlips: 4, windowMs: 60000, holdMs: 0 } })),
          ...maybe(0.3, () => ({ slowStart: { durationMs: 10000, steps: 4 } })),
          ...(dsr ? maybe(0.5, () => ({ dsrProbe: pick(['vip', 'address']) })) : {}),
        },
      })),
    };
  });
  return {
    ...maybe(0.5, () => ({ interfaces: [{ name: 'eth0', mode: 'native' }, { name: 'veth-x.1', mode: 'generic' }] })),
    ...maybe(0.4, () => ({ maglev: { tableSize: pick([251, 65537]) } })),
    ...maybe(0.6, () => ({ hashSeed: Math.floor(r() * 0xffffffff) })),
    ...maybe(0.3, () => ({ fragments: pick(['drop', 'pass']) })),
    ...maybe(0.3, () => ({ sampling: { rate: Math.floor(r() * 1000) } })),
    ...maybe(0.3, () => ({ flowCache: r() < 0.5 })),
    ...maybe(0.3, () => ({ transitionSeconds: 1 + Math.floor(r() * 100) })),
    ...maybe(0.3, () => ({ reverseGraceSeconds: Math.floor(r() * 1000) })),
    ...maybe(0.5, () => ({ api: { listen: pick(['127.0.0.1:8720', '[::1]:9000', 'localhost:28900']), ...maybe(0.5, () => ({ allowedHosts: ['lb.example', 'x.invalid.'] })), ...maybe(0.5, () => ({ metrics: pick(['auth', 'public', 'loopback']) })) } })),
    ...maybe(0.5, () => ({ users: [{ name: 'admin', role: 'admin', passwordHash: HASH }, { name: 'view', role: 'viewer', passwordHash: HASH }] })),
    ...maybe(0.5, () => ({ tokens: [{ name: 'ci', role: 'admin', tokenHash: HASH }] })),
    ...maybe(0.3, () => ({
      bgp: {
        localAs: 65001, peers: [{ address: '198.18.0.1', as: 65000 }, { address: '2001:2::1', as: 65000 }],
        // A free-form string (multi-line, quotes, what looks like a backends line): the library quotes it.
        ...maybe(0.5, () => ({ birdBinary: pick(['/usr/sbin/bird', 'a: b', '/opt/bird "x"\n  backends: y', '- z #']) })),
        ...maybe(0.5, () => ({ holdTime: 9, bfd: false, routerId: '198.18.0.2' })),
      },
    })),
    ...maybe(0.2, () => ({ node: { name: 'lb-1.example' } })),
    ...maybe(0.2, () => ({ allowEmpty: true })),
    services,
  };
}

/** formatConfig's text, checked against the library path for the same config (frozen and copied). */
function formatChecked(state: DesiredState, what: string): string {
  const text = formatConfig(state.config as Config);
  assert.equal(text, formatConfig(state.config as Config, { memo: false }), `${what}: as without the memo`);
  // The library alone writes IPv6 backend addresses unquoted; the backend lines quote them
  // (docs: address.test): the same otherwise.
  if (!state.services.some((s) => s.backends.some((b) => b.address.includes(':')))) {
    assert.equal(text, formatConfig(state.toConfig(), { plainYaml: true }), `${what}: as the YAML library alone`);
  }
  const expected = state.toConfig();
  if (isEmptyConfig(expected)) expected.allowEmpty = true;   // what xdplb writes, xdplb loads
  assert.deepEqual(parseConfigText(text, 'x.yaml'), expected, `${what}: loads back as the same config`);
  return text;
}

describe('formatConfig: the text around the backend lists is remembered', () => {
  test('random configs through backend-only changes (memo hit) and other changes (miss): byte-identical to the library path', () => {
    let hitsExpected = 0;
    let hitsSeen = 0;
    for (let seed = 1; seed <= 80; seed++) {
      const r = rng(1000 + seed);
      let state: DesiredState;
      try {
        state = new DesiredState(randomConfig(seed));
      } catch {
        continue;   // a random combination the rules refuse (e.g. a table smaller than its backends)
      }
      formatChecked(state, `seed ${seed}`);
      for (let step = 0; step < 8; step++) {
        const services = state.services;
        const withBackends = services.map((s, i) => [s, i] as const).filter(([s]) => s.backends.length > 0);
        const kind = r();
        let backendsOnly = false;
        if (kind < 0.5 && withBackends.length > 0) {
          // A drain or a weight (the PATCH the issue times): only backend lists change.
          const [s, i] = withBackends[Math.floor(r() * withBackends.length)];
          const b = Math.floor(r() * s.backends.length);
          state = state.patchBackend(s.name, `${s.backends[b].address.includes(':') ? `[${s.backends[b].address}]` : s.backends[b].address}:${s.backends[b].port}`,
            r() < 0.5 ? { drain: r() < 0.5 } : { weight: Math.floor(r() * 1000) });
          void i;
          backendsOnly = true;
        } else if (kind < 0.6 && withBackends.length > 0) {
          const [s] = withBackends[Math.floor(r() * withBackends.length)];
          const b = s.backends[Math.floor(r() * s.backends.length)];
          state = state.deleteBackend(s.name, `${b.address.includes(':') ? `[${b.address}]` : b.address}:${b.port}`);
          // A list emptied is no longer a placeholder (the library writes `backends: []`): a miss.
          backendsOnly = s.backends.length > 1;
        } else if (kind < 0.75) {
          state = state.patchSettings({ sampleRate: Math.floor(r() * 100) });
          backendsOnly = false;
        } else if (kind < 0.85 && services.length > 0) {
          const s = services[Math.floor(r() * services.length)];
          const tableSize = s.tableSize === 251 ? 8209 : 251;
          try { state = state.replaceService(s.name, { ...structuredClone(s), tableSize }); } catch { continue; }
          backendsOnly = false;
        } else {
          const n = services.length;
          try {
            state = state.createService({ name: `new-${seed}-${step}`, vip: `198.19.200.${n + step}`, port: 80, protocol: 'tcp', mode: 'nat', backends: [] });
          } catch { continue; }
          backendsOnly = false;
        }
        const before = formatMemoStats().hits;
        formatChecked(state, `seed ${seed} step ${step}`);
        const hit = formatMemoStats().hits > before;
        // formatChecked formats once with the memo: a backend-only change must reuse the text.
        if (backendsOnly && !hit) assert.fail(`seed ${seed} step ${step}: a backend-only change missed the memo`);
        if (backendsOnly) hitsExpected++;
        if (hit) hitsSeen++;
      }
    }
    assert.ok(hitsExpected > 50, `only ${hitsExpected} backend-only changes were tried`);
    assert.ok(hitsSeen >= hitsExpected);
  });

  test('a changed setting, service field, user or key order is never answered from the memo', () => {
    const base = { hashSeed: 5, users: [{ name: 'admin', role: 'admin', passwordHash: HASH }],
      services: [{ name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', backends: [{ address: '198.18.1.1', port: 8080 }] }] };
    const config = new DesiredState(base).toConfig();
    const first = formatConfig(config);
    // A mutable config changed in place after it was formatted: the memo holds its own copy.
    config.hashSeed = 6;
    const second = formatConfig(config);
    assert.match(second, /^hashSeed: 6$/m);
    assert.notEqual(second, first);
    config.services[0].port = 81;
    assert.match(formatConfig(config), /^ {4}port: 81$/m);
    config.users[0].role = 'viewer';
    assert.match(formatConfig(config), /role: viewer/);
    config.services[0].backends[0].weight = 7;
    assert.match(formatConfig(config), /weight: 7/);
    assert.equal(formatConfig(config), formatConfig(config, { memo: false }));
    // The same data in another key order: as the library writes it (schema order), same text.
    const { services, users, ...rest } = config;
    const reordered = { services, users, ...rest } as Config;
    assert.equal(formatConfig(reordered), formatConfig(reordered, { memo: false }));
  });

  test('plain secrets are hashed on every write (the text is not remembered) and verify after loading', () => {
    const plain = 'a-plain-token-of-20-chars';
    const config = new DesiredState({
      tokens: [{ name: 'ci', role: 'admin', token: plain }], users: [{ name: 'op', role: 'admin', password: 'a-plain-password' }],
      services: [{ name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', backends: [{ address: '198.18.1.1', port: 8080 }] }],
    }).toConfig();
    for (let i = 0; i < 3; i++) {
      const before = formatMemoStats().hits;
      config.services[0].backends[0].weight = i + 1;
      const text = formatConfig(config);
      assert.equal(formatMemoStats().hits, before, 'not answered from the memo');
      assert.ok(!text.includes(plain) && !text.includes('a-plain-password'), 'no plain secret is written');
      assert.equal(text, formatConfig(config, { memo: false }));
      const loaded = parseConfigText(text, 'x.yaml');
      assert.ok(verifySecret(plain, loaded.tokens[0].tokenHash!), 'the token verifies');
      assert.ok(verifySecret('a-plain-password', loaded.users[0].passwordHash!), 'the password verifies');
      assert.equal(loaded.services[0].backends[0].weight, i + 1);
    }
  });

  test('1000 drains of a 10-backend service: every text as the library writes it, all but the first from the memo', () => {
    const backends = Array.from({ length: 10 }, (_, i) => ({ address: `198.18.213.${i + 1}`, port: 8080, weight: 1 }));
    let state = new DesiredState({ tokens: [{ name: 'bench', role: 'admin', tokenHash: HASH }],
      services: [{ name: 'bench', vip: '198.18.212.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 65537, backends }] });
    formatConfig(state.config as Config);
    const before = formatMemoStats().hits;
    for (let i = 0; i < 1000; i++) {
      state = state.patchBackend('bench', `198.18.213.${(i % 10) + 1}:8080`, { drain: Math.floor(i / 10) % 2 === 0 });
      const text = formatConfig(state.config as Config);
      if (i % 97 === 0) assert.equal(text, formatConfig(state.toConfig(), { plainYaml: true }), `change ${i}`);
    }
    assert.equal(formatMemoStats().hits - before, 1000);
  });
});

describe('formatConfig memo: unusual data', () => {
  test('a "__proto__" key is compared as data, a Date is not remembered: the text is the library path\'s', () => {
    const base = new DesiredState({ services: [{ name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', backends: [{ address: '198.18.1.1', port: 8080 }] }] }).toConfig();
    const odd = JSON.parse(JSON.stringify(base).replace('{"name":"web"', '{"__proto__":{"x":1},"name":"web"')) as Config;
    assert.ok(Object.keys(odd.services[0]).includes('__proto__'));
    const first = formatConfig(odd);
    assert.equal(first, formatConfig(odd, { memo: false }));
    const changed = JSON.parse(JSON.stringify(odd).replace('"x":1', '"x":2')) as Config;
    assert.equal(formatConfig(changed), formatConfig(changed, { memo: false }), 'a change under "__proto__" is a change');
    const dated = { ...base, when: new Date(0) } as unknown as Config;
    assert.equal(formatConfig(dated), formatConfig(dated, { memo: false }));
    const later = { ...base, when: new Date(1000) } as unknown as Config;
    assert.equal(formatConfig(later), formatConfig(later, { memo: false }), 'a Date is never remembered');
  });
});
