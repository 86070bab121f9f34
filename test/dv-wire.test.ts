/**
 * Kernel test in network namespaces for the data-plane verdicts of issue 11, on the wire:
 *
 *   xlbt-dvw-c (client)            xlbt-dvw-lb (balancer)                  xlbt-dvw-b (backend)
 *   xlbt-dvw-c0 198.18.20.2/24 <-> xlbt-dvw-l0 198.18.20.1 | xlbt-dvw-l1 198.18.21.1 <-> xlbt-dvw-b0 198.18.21.2/24
 *   VIP 198.18.120.1:5300/udp -> NAT -> 198.18.21.2:5301 (MTU 1500 everywhere)
 *
 * - a 4000-byte UDP answer, fragmented by the backend's own stack, reaches the client whole,
 *   from VIP:5300 (every fragment reverse-translated, the UDP checksum right after reassembly);
 * - a datagram to the VIP with TTL 1 is answered with ICMP time exceeded from the VIP, quoting
 *   the datagram as sent (the client reads it on a raw ICMP socket, through python3);
 * - a datagram to the VIP sent to another MAC (the client's neighbour entry for its gateway
 *   pointed elsewhere) is not NAT-forwarded (other_mac).
 * As in test/veth.test.ts: the client and backend legs run bpf/xdp_pass.o (a veth drops
 * redirected frames unless its peer runs XDP), and the end hosts have tx checksum offload off.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Program, XdpLink, enterNetns } from '../src/bpf';
import { Dataplane } from '../src/dataplane/dataplane';
import { Balancer } from '../src/balancer/balancer';
import { DataplaneInspector } from '../src/dataplane/inspect';
import type { DataplaneState } from '../src/dataplane/types';
import { attachPeerPass, buildVethLab, macOf, removeVethLab, sh, vethLab } from './support/veth-lab';

const LAB = vethLab('xlbt-dvw', '198.18.20', '198.18.21');
const NS = LAB.ns;
const VIP = '198.18.120.1';
const CLIENT = LAB.client;
const BACKEND = LAB.backend;
const ANSWER_BYTES = 4000;

function cleanup(): void {
  removeVethLab(LAB);
}

function buildLab(): void {
  cleanup();
  buildVethLab(LAB);
}

// Answers every datagram on 5301 with ANSWER_BYTES bytes ("big:" + the query, padded); 60 s bound.
const SERVER = `
const s = require('dgram').createSocket('udp4');
s.on('message', (m, r) => {
  const out = Buffer.alloc(${ANSWER_BYTES}, 0x2e);
  for (let i = 0; i < out.length; i++) out[i] = (i * 31 + 7) & 0xff;
  Buffer.concat([Buffer.from('big:'), m]).copy(out);
  s.send(out, r.port, r.address);
});
s.bind(5301, '${BACKEND}', () => process.stdout.write('ready\\n'));
setTimeout(() => process.exit(0), 60000).unref();
`;

// Up to 10 queries, 300 ms apart; prints the first answer's source, length and whether its bytes are the expected ones (5 s bound).
const CLIENT_SCRIPT = `
const s = require('dgram').createSocket('udp4');
let sent = 0;
const done = (out) => { process.stdout.write(JSON.stringify(out)); process.exit(0); };
s.on('message', (m, r) => {
  let intact = m.subarray(0, 4).toString() === 'big:';
  const tail = m.subarray(20);
  for (let i = 0; i < tail.length && intact; i++) intact = tail[i] === (((i + 20) * 31 + 7) & 0xff);
  done({ from: r.address, port: r.port, length: m.length, intact, sent });
});
s.bind(0, '${CLIENT}', () => {
  const go = () => { if (sent >= 10) return; s.send('q' + sent++, 5300, '${VIP}'); };
  go();
  setInterval(go, 300).unref();
});
setTimeout(() => done({ timeout: true, sent }), 5000);
`;

// Sends a UDP datagram to VIP:5300 with TTL 1 (three tries) and waits for an ICMP message on a
// raw socket; prints the first one from the VIP: type, code, the quoted destination and ports.
const TTL_PROBE_PY = `
import json, socket, struct, time
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
raw.settimeout(0.5)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(('${CLIENT}', 0))
udp.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
sport = udp.getsockname()[1]
out = {'timeout': True}
deadline = time.time() + 4
tries = 0
while time.time() < deadline and out.get('timeout'):
    if tries < 3:
        udp.sendto(b'ttl-probe', ('${VIP}', 5300)); tries += 1
    try:
        pkt, addr = raw.recvfrom(2048)
    except socket.timeout:
        continue
    ihl = (pkt[0] & 15) * 4
    icmp = pkt[ihl:]
    q = icmp[8:]
    qihl = (q[0] & 15) * 4
    out = {'from': addr[0], 'type': icmp[0], 'code': icmp[1], 'quoted_dst': socket.inet_ntoa(q[16:20]),
           'quoted_ttl': q[8], 'quoted_sport': struct.unpack('!H', q[qihl:qihl+2])[0],
           'quoted_dport': struct.unpack('!H', q[qihl+2:qihl+4])[0], 'sport': sport}
print(json.dumps(out))
`;

describe('issue 11 data-plane verdicts on the wire (namespaces xlbt-dvw-*)', () => {
  let dp: Dataplane | null = null;
  let lb: Balancer | null = null;
  let view: DataplaneInspector | null = null;
  let server: ChildProcess | null = null;
  const peerLinks: XdpLink[] = [];
  const peerProgs: Program[] = [];

  before(async () => {
    buildLab();
    const peers = attachPeerPass(LAB);
    peerProgs.push(...peers.progs);
    peerLinks.push(...peers.links);
    dp = Dataplane.load({ hashSeed: 0x5eed, maxServices: 8, maxBackends: 16, maxFlows: 1024 });
    lb = new Balancer(dp);
    view = new DataplaneInspector(dp, lb.reconciler);
    const restore = enterNetns(NS.lb);
    try {
      dp.attach('xlbt-dvw-l0', 'native');
      dp.attach('xlbt-dvw-l1', 'native');
    } finally {
      restore();
    }
    const state: DataplaneState = {
      services: [{
        name: 'udp-big', vip: VIP, port: 5300, protocol: 'udp', mode: 'nat', tableSize: 13,
        backends: [{ address: BACKEND, port: 5301, weight: 1, healthy: true, draining: false }],
      }],
      settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true },
    };
    lb!.applyState(state);
    server = spawn('ip', ['netns', 'exec', NS.backend, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('server did not start in 15 s')), 15_000);
      server!.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); resolve(); } });
      server!.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code})`)); });
    });
    server.removeAllListeners('exit');
  });

  after(() => {
    try {
      for (const l of peerLinks) l.close();
      for (const p of peerProgs) p.close();
      dp?.close();
      if (server?.pid && server.exitCode === null) process.kill(server.pid, 'SIGTERM');
    } finally {
      cleanup();
    }
  });

  test('a 4000-byte UDP answer fragmented by the backend arrives whole from VIP:5300', () => {
    const before = view!.readStats();
    const out = JSON.parse(sh([process.execPath, '-e', CLIENT_SCRIPT], { ns: NS.client })) as
      { from?: string; port?: number; length?: number; intact?: boolean; timeout?: boolean; sent: number };
    const after = view!.readStats();
    assert.ok(!out.timeout, `no answer after ${out.sent} queries; reasons ${JSON.stringify(after.reasons)}`);
    assert.equal(out.from, VIP, 'the answer comes from the VIP');
    assert.equal(out.port, 5300, 'from the service port');
    assert.equal(out.length, ANSWER_BYTES, 'all of it (reassembled)');
    assert.equal(out.intact, true, 'byte for byte');
    // Three fragments per answer (1480 + 1480 + 1048 bytes of UDP datagram), all reversed.
    const reversed = after.reasons.reversed.packets - before.reasons.reversed.packets;
    assert.ok(reversed >= 3, `${reversed} reply frames reversed`);
    // The service's and its backends' counters saw the same packets as the verdicts (each packet
    // counted once, in its backend's fast slot: src/dataplane/counters.ts).
    const delta = (a: { fwdPackets: number; revPackets: number }, b: { fwdPackets: number; revPackets: number }) => ({ fwd: a.fwdPackets - b.fwdPackets, rev: a.revPackets - b.revPackets });
    const service = delta(after.services['udp-big'], before.services['udp-big']);
    const backends = Object.keys(after.backends['udp-big']).map((k) => delta(after.backends['udp-big'][k], before.backends['udp-big'][k] ?? { fwdPackets: 0, revPackets: 0 }));
    assert.deepEqual(service, { fwd: after.reasons.forwarded.packets - before.reasons.forwarded.packets, rev: reversed }, 'the service counted what was forwarded and reversed');
    assert.deepEqual(backends.reduce((s, b) => ({ fwd: s.fwd + b.fwd, rev: s.rev + b.rev }), { fwd: 0, rev: 0 }), service, 'its backends add up to it');
    assert.ok(service.fwd >= 1, 'queries forwarded');
    assert.equal(after.reasons.not_vip.packets - before.reasons.not_vip.packets, 0, 'no fragment left untranslated');
  });

  test('a datagram to the VIP with TTL 1 is answered with ICMP time exceeded from the VIP', (t) => {
    if (spawnSync('python3', ['-c', 'import socket'], { stdio: 'ignore' }).status !== 0) {
      t.skip('python3 (the raw ICMP socket of the probe) is not available');
      return;
    }
    const before = view!.readStats();
    const out = JSON.parse(sh(['python3', '-c', TTL_PROBE_PY], { ns: NS.client })) as
      { from?: string; type?: number; code?: number; quoted_dst?: string; quoted_ttl?: number; quoted_sport?: number; quoted_dport?: number; sport?: number; timeout?: boolean };
    const after = view!.readStats();
    assert.ok(!out.timeout, `no ICMP answer; reasons ${JSON.stringify(after.reasons)}`);
    assert.deepEqual({ from: out.from, type: out.type, code: out.code }, { from: VIP, type: 11, code: 0 }, 'time exceeded in transit, from the VIP');
    assert.deepEqual({ dst: out.quoted_dst, ttl: out.quoted_ttl, sport: out.quoted_sport, dport: out.quoted_dport },
      { dst: VIP, ttl: 1, sport: out.sport, dport: 5300 }, 'quotes the datagram as the client sent it');
    assert.ok(after.reasons.ttl.packets > before.reasons.ttl.packets, 'counted as ttl');
  });

  test('a datagram to the VIP addressed to another MAC is passed, not NAT-forwarded (other_mac)', () => {
    // The client's gateway entry points at a MAC that is not the balancer's: the balancer's
    // veth still receives the frame (veth delivers whatever its peer sends).
    sh(['ip', 'neigh', 'replace', '198.18.20.1', 'lladdr', '02:00:00:dd:ee:ff', 'dev', 'xlbt-dvw-c0', 'nud', 'permanent'], { ns: NS.client });
    try {
      const before = view!.readStats();
      const out = JSON.parse(sh([process.execPath, '-e', CLIENT_SCRIPT], { ns: NS.client })) as { timeout?: boolean; sent: number };
      const after = view!.readStats();
      assert.equal(out.timeout, true, 'no answer: the backend never saw a query');
      assert.ok(after.reasons.other_mac.packets - before.reasons.other_mac.packets >= out.sent, 'every query counted as other_mac');
      assert.equal(after.reasons.forwarded.packets, before.reasons.forwarded.packets, 'nothing forwarded');
    } finally {
      sh(['ip', 'neigh', 'replace', '198.18.20.1', 'lladdr', macOf(NS.lb, 'xlbt-dvw-l0'), 'dev', 'xlbt-dvw-c0', 'nud', 'permanent'], { ns: NS.client });
    }
  });
});
