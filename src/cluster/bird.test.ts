import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { birdConfigText, parseBfdSessions, parseProtocols, parseRoutePrefixes, peerProtocol, prefixVip, vipPrefix } from './bird';
import { clusterTopology, routerBirdConfig } from '../lab/cluster-topology';

// Replies of BIRD 2.0.12's birdc, captured from the lab.
const PROTOCOLS = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     21:33:53.125  

xdplb_bfd  BFD        ---        up     21:33:53.125  

xdplb_vips Static     master4    up     21:33:53.125  
  Channel ipv4
    State:          UP
    Routes:         1 imported, 0 exported, 1 preferred

peer_198_18_10_1 BGP        ---        up     21:33:53.603  Established   
  BGP state:          Established
    Neighbor address: 198.18.10.1
    Neighbor AS:      65000
    Local AS:         65001

peer_198_18_11_1 BGP        ---        start  21:33:53.603  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 198.18.11.1
`;
const BFD = `BIRD 2.0.12 ready.
xdplb_bfd:
IP address                Interface  State      Since         Interval  Timeout
198.18.10.1               xlbg-lb0   Up         21:33:53.522    0.100    0.300
198.18.11.1               xlbg-lb0   Down       21:33:53.522    1.000    0.000
`;
const ROUTES = `BIRD 2.0.12 ready.
Table master4:
198.18.100.1/32      blackhole [xdplb_vips 21:33:53.204] * (200)
198.18.100.7/32      blackhole [xdplb_vips 21:33:53.204] * (200)
`;

describe('birdc parsers', () => {
  test('show protocols all: BGP state and neighbour per protocol', () => {
    const p = parseProtocols(PROTOCOLS);
    assert.deepEqual(p.map((x) => x.name), ['device1', 'xdplb_bfd', 'xdplb_vips', 'peer_198_18_10_1', 'peer_198_18_11_1']);
    const a = p.find((x) => x.name === peerProtocol('198.18.10.1'))!;
    assert.equal(a.bgpState, 'Established');
    assert.equal(a.neighbor, '198.18.10.1');
    assert.equal(p.find((x) => x.name === 'peer_198_18_11_1')!.bgpState, 'Active');
    assert.equal(p.find((x) => x.name === 'peer_198_18_11_1')!.state, 'start');
  });
  test('show bfd sessions and show route', () => {
    assert.deepEqual([...parseBfdSessions(BFD)], [['198.18.10.1', 'Up'], ['198.18.11.1', 'Down']]);
    assert.deepEqual(parseRoutePrefixes(ROUTES), ['198.18.100.1/32', '198.18.100.7/32']);
    assert.deepEqual(parseRoutePrefixes('BIRD 2.0.12 ready.\nTable master4:\n'), []);
  });
});

describe('birdc parsers: IPv6', () => {
  test('show bfd sessions and show route with IPv6 neighbours and /128s', () => {
    const bfd = `BIRD 2.0.12 ready.
xdplb_bfd:
IP address                Interface  State      Since         Interval  Timeout
198.18.10.1               xlbb6-lb0  Up         01:33:53.522    0.100    0.300
2001:2:0:c010::1          xlbb6-lb0  Up         01:33:53.530    0.100    0.300
2001:2:0:c011:0:0:0:1     xlbb6-lb0  Down       01:33:53.530    1.000    0.000
`;
    assert.deepEqual([...parseBfdSessions(bfd)], [['198.18.10.1', 'Up'], ['2001:2:0:c010::1', 'Up'], ['2001:2:0:c011::1', 'Down']]);
    const routes = `BIRD 2.0.12 ready.
Table master6:
2001:2:0:c100::1/128 blackhole [xdplb_vips6 01:33:53.204] * (200)
2001:2:0:c100::a/128 blackhole [xdplb_vips6 01:33:53.204] * (200)
`;
    assert.deepEqual(parseRoutePrefixes(routes), ['2001:2:0:c100::1/128', '2001:2:0:c100::a/128']);
    assert.deepEqual(parseRoutePrefixes(ROUTES + routes).map(prefixVip), ['198.18.100.1', '198.18.100.7', '2001:2:0:c100::1', '2001:2:0:c100::a']);
  });
  test('vipPrefix / prefixVip: /32 for IPv4, /128 (canonical) for IPv6, nothing else is a VIP', () => {
    assert.equal(vipPrefix('198.18.100.1'), '198.18.100.1/32');
    assert.equal(vipPrefix('2001:2:0:C100:0:0:0:1'), '2001:2:0:c100::1/128');
    assert.equal(prefixVip('2001:2:0:c100:0::1/128'), '2001:2:0:c100::1');
    assert.equal(prefixVip('198.18.100.0/24'), undefined);
    assert.equal(prefixVip('198.18.100.1/128'), undefined);
    assert.equal(prefixVip('2001:2::/64'), undefined);
    assert.equal(prefixVip('2001:2::1/32'), undefined);
  });
});

describe('BIRD configs', () => {
  const bgp = { localAs: 65001, peers: [{ address: '198.18.10.1', as: 65000 }, { address: '198.18.11.1', as: 65002 }], bfd: true, holdTime: 3, birdBinary: '/usr/sbin/bird', routerId: '198.18.10.11' };
  test('node config: one static /32 per VIP, exported to every peer with BFD and the hold time', () => {
    const text = birdConfigText(bgp, ['198.18.100.1', '198.18.100.2']);
    assert.match(text, /route 198\.18\.100\.1\/32 blackhole;\n {2}route 198\.18\.100\.2\/32 blackhole;/);
    assert.match(text, /protocol bgp peer_198_18_11_1 \{\n {2}local as 65001;\n {2}neighbor 198\.18\.11\.1 as 65002;\n {2}hold time 3; keepalive time 1;/);
    assert.equal(text.match(/bfd on;/g)?.length, 2);
    assert.match(text, /router id 198\.18\.10\.11;/);
    const none = birdConfigText({ ...bgp, bfd: false, routerId: undefined }, []);
    assert.doesNotMatch(none, /bfd|route |router id/);
  });
  test('dual stack: IPv4 peers carry the ipv4 channel with the /32s, IPv6 peers the ipv6 channel with the /128s', () => {
    const dual = { ...bgp, peers: [{ address: '198.18.10.1', as: 65000 }, { address: '2001:2:0:C010:0:0:0:1', as: 65000 }] };
    const text = birdConfigText(dual, ['2001:2:0:c100::2', '198.18.100.1', '2001:2:0:c100:0::1']);
    assert.match(text, /protocol static xdplb_vips \{\n {2}ipv4;\n {2}route 198\.18\.100\.1\/32 blackhole;\n\}/);
    assert.match(text, /protocol static xdplb_vips6 \{\n {2}ipv6;\n {2}route 2001:2:0:c100::1\/128 blackhole;\n {2}route 2001:2:0:c100::2\/128 blackhole;\n\}/);
    assert.equal(peerProtocol('2001:2:0:C010::1'), 'peer_2001_2_0_c010__1');
    const v4 = text.slice(text.indexOf('protocol bgp peer_198_18_10_1'), text.indexOf('protocol bgp peer_2001'));
    const v6 = text.slice(text.indexOf('protocol bgp peer_2001_2_0_c010__1'));
    assert.match(v4, /neighbor 198\.18\.10\.1 as 65000;[\s\S]*bfd on;\n {2}ipv4 \{ import none; export where proto = "xdplb_vips"; next hop self; \};\n\}/);
    assert.doesNotMatch(v4, /ipv6/);
    assert.match(v6, /neighbor 2001:2:0:c010::1 as 65000;[\s\S]*bfd on;\n {2}ipv6 \{ import none; export where proto = "xdplb_vips6"; next hop self; \};\n\}/);
    assert.doesNotMatch(v6, /ipv4/);
    // Nothing announced: both static protocols are still there, empty.
    assert.match(birdConfigText(dual, []), /protocol static xdplb_vips \{\n {2}ipv4;\n\}\nprotocol static xdplb_vips6 \{\n {2}ipv6;\n\}/);
  });
  test('BIRD itself accepts the node and router configs (bird -p)', { skip: existsSync('/usr/sbin/bird') ? false : 'BIRD not installed' }, () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'xlbg-conf-'));
    try {
      const dual = { ...bgp, peers: [...bgp.peers, { address: '2001:2:0:c010::1', as: 65000 }] };
      for (const [name, text] of [['node', birdConfigText(bgp, ['198.18.100.1'])], ['empty', birdConfigText(bgp, [])],
        ['dual', birdConfigText(dual, ['198.18.100.1', '2001:2:0:c100::1', '2001:2:0:c100::2'])], ['v6only', birdConfigText(bgp, ['2001:2:0:c100::1'])],
        ['router', routerBirdConfig(clusterTopology({ prefix: 'xlbg', nodes: 4 }))]]) {
        writeFileSync(path.join(dir, name), text);
        const r = spawnSync('/usr/sbin/bird', ['-p', '-c', path.join(dir, name)], { encoding: 'utf8' });
        assert.equal(r.status, 0, `${name}: ${r.stderr}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
