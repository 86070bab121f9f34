import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LB, LbEventCodec } from './abi';
import { decodeTraceEvent } from './events';

const names = { serviceName: (id: number) => `svc${id}`, backendName: (id: number) => `b${id}` };
const base = { tsNs: 1, ifindex: 2, pktLen: 60, serviceId: 3, backendId: 4, sport: 1234, dport: 80, proto: 6, action: 3, reason: LB.REASON_FORWARDED };

test('trace events: family 4 (v4-mapped in the record) decodes to dotted IPv4, family 6 to canonical IPv6', () => {
  const v4 = decodeTraceEvent(LbEventCodec.encode({ ...base, saddr: '::ffff:198.18.0.10', daddr: '::ffff:c612:6401', family: 4 }), names);
  assert.equal(v4.saddr, '198.18.0.10');
  assert.equal(v4.daddr, '198.18.100.1');
  assert.equal(v4.family, 4);
  assert.equal(v4.service, 'svc3');
  assert.equal(v4.reason, 'forwarded');
  const v6 = decodeTraceEvent(LbEventCodec.encode({ ...base, saddr: '2001:0002:0000::0010', daddr: '2001:2:0:100:0:0:0:1', family: 6, reason: LB.REASON_EXT_HEADER }), names);
  assert.equal(v6.saddr, '2001:2::10');
  assert.equal(v6.daddr, '2001:2:0:100::1');
  assert.equal(v6.family, 6);
  assert.equal(v6.reason, 'ext_header');
  // A frame that was never IP: no family, zero addresses as IPv4.
  const none = decodeTraceEvent(LbEventCodec.encode({ ...base, saddr: '::', daddr: '::', family: 0, reason: LB.REASON_NOT_IP }), names);
  assert.equal(none.family, undefined);
  assert.equal(none.saddr, '0.0.0.0');
  assert.equal(none.reason, 'not_ip');
});
