/**
 * TypedMap over the generated codecs: decoded reads and writes by map name, the same bytes as
 * the codecs, bad values refused with nothing written; and one real map of the loaded lb.o.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Dataplane } from './dataplane';
import { LB, LbBackendCodec, LbServiceCodec, LbServiceKeyCodec, LbSettingsCodec, encodeIpv4Key, encodeU32 } from './abi';
import { TypedMap, lbMap, typedLbMap, type RawMap } from './typed-map';
import { kernelTestSkip } from '../../test/support/kernel-env';

/** An in-memory map: key bytes (hex) -> value bytes, counting updates. */
function memoryMap(): RawMap & { data: Map<string, Buffer>; updates: number } {
  const data = new Map<string, Buffer>();
  const m = {
    data,
    updates: 0,
    lookup: (key: Buffer) => data.get(key.toString('hex')) ?? null,
    update: (key: Buffer, value: Buffer) => { m.updates++; data.set(key.toString('hex'), Buffer.from(value)); },
    delete: (key: Buffer) => data.delete(key.toString('hex')),
    keys: () => [...data.keys()].map((k) => Buffer.from(k, 'hex')),
  };
  return m;
}

describe('TypedMap over a map of lb.o by name', () => {
  test('services: struct key and value, stored as the codecs encode them', () => {
    const raw = memoryMap();
    const services = typedLbMap('services', raw);
    const key = { vip: '198.18.100.1', port: 80, proto: 6 };
    const value = { id: 3, tableSize: 65537, mode: LB.MODE_NAT, flags: 0 };
    services.set(key, value);
    assert.deepEqual(raw.lookup(LbServiceKeyCodec.encode(key)), LbServiceCodec.encode(value));
    assert.deepEqual(services.get(key), value);
    assert.equal(services.get({ ...key, port: 81 }), null);
    assert.deepEqual(services.entries(), [[key, value]]);
    assert.deepEqual(services.keys(), [key]);
    assert.equal(services.delete(key), true);
    assert.equal(services.delete(key), false);
    assert.equal(services.get(key), null);
  });

  test('vips: a __be32 key is a dotted quad; settings: a u32 index', () => {
    const vips = typedLbMap('vips', memoryMap());
    vips.set('198.18.100.7', { services: 2 });
    assert.deepEqual(vips.raw.lookup(encodeIpv4Key('198.18.100.7')), Buffer.from([2, 0, 0, 0]));
    const settings = typedLbMap('settings', memoryMap());
    const knobs = { fragPolicy: LB.FRAG_PASS, sampleRate: 0, flowCache: 1, txRedirect: 0, vipFilter: [0, 1, 2, 3, 4, 5, 6, 7], vipFilter6: [7, 6, 5, 4, 3, 2, 1, 0] };
    settings.set(0, knobs);
    assert.deepEqual(settings.raw.lookup(encodeU32(0)), LbSettingsCodec.encode(knobs));
  });

  test('setIfChanged writes only when the stored bytes differ', () => {
    const raw = memoryMap();
    const vips = typedLbMap('vips', raw);
    assert.equal(vips.setIfChanged('198.18.100.1', { services: 1 }), true);
    assert.equal(vips.setIfChanged('198.18.100.1', { services: 1 }), false);
    assert.equal(vips.setIfChanged('198.18.100.1', { services: 2 }), true);
    assert.equal(raw.updates, 2);
  });

  test('a bad key or value is refused by name and nothing is written', () => {
    const raw = memoryMap();
    const services = typedLbMap('services', raw);
    assert.throws(() => services.set({ vip: '198.18.300.1', port: 80, proto: 6 }, { id: 1, tableSize: 7, mode: 0, flags: 0 }), /"198\.18\.300\.1" is not an IPv4/);
    assert.throws(() => services.set({ vip: '198.18.0.1', port: 80, proto: 6 }, { id: -1, tableSize: 7, mode: 0, flags: 0 }), /lb_service\.id = -1/);
    assert.throws(() => typedLbMap('backends', raw).set(2 ** 32, { ip: '198.18.0.2', port: 0, flags: 0, mode: 0, serviceId: 1, vip: '198.18.0.1', vport: 0, proto: 6 }), /backends key 4294967296 is not an integer/);
    assert.equal(raw.updates, 0);
    assert.equal(raw.data.size, 0);
  });

  test('per-CPU maps, the ring buffer and unknown names are refused by name', () => {
    assert.throws(() => typedLbMap('service_stats', memoryMap()), /^Error: typed map: service_stats is per-CPU/);
    assert.throws(() => typedLbMap('events', memoryMap()), /^Error: typed map: events \(ringbuf\) has no key\/value$/);
    assert.throws(() => typedLbMap('nope' as 'vips', memoryMap()), /^Error: typed map: nope is not a map of bpf\/lb\.o$/);
  });

  test('a map the ABI does not describe (next-hop cache) would be bytes; TypedMap is generic over any codec', () => {
    const m = new TypedMap('x', memoryMap(), LbServiceKeyCodec, LbServiceCodec);
    m.set({ vip: '198.18.0.9', port: 0, proto: 17 }, { id: 1, tableSize: 251, mode: 1, flags: 0 });
    assert.equal(m.entries().length, 1);
  });
});

describe('TypedMap on the loaded bpf/lb.o', { skip: kernelTestSkip('typed-map kernel test') }, () => {
  test('lbMap(dataplane, name) reads what it wrote through the kernel map', () => {
    const dp = Dataplane.load({ hashSeed: 5, maxServices: 4, maxBackends: 8, maxFlows: 64 });
    try {
      const backends = lbMap(dp, 'backends');
      const b = { ip: '198.18.1.2', port: 8080, flags: LB.BACKEND_F_ACTIVE, mode: LB.MODE_NAT, serviceId: 1, vip: '198.18.100.1', vport: 80, proto: 6 };
      backends.set(3, b);
      assert.deepEqual(backends.get(3), b);
      assert.deepEqual(dp.map('backends').lookup(encodeU32(3)), LbBackendCodec.encode(b));
      const vips = lbMap(dp, 'vips');
      vips.set('198.18.100.1', { services: 1 });
      assert.deepEqual(vips.entries(), [['198.18.100.1', { services: 1 }]]);
      assert.equal(vips.setIfChanged('198.18.100.1', { services: 1 }), false);
    } finally {
      dp.close();
    }
  });
});
