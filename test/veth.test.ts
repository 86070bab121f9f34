/**
 * Kernel test in network namespaces: a real UDP datagram (then a TCP connection) from a client goes through the
 * balancer's XDP program (native, on veth) to a backend and the echo comes back from the VIP.
 *
 *   xlbt-dv-c (client)            xlbt-dv-lb (balancer)                xlbt-dv-b (backend)
 *   xlbt-dv-c0 198.18.0.2/24 <-> xlbt-dv-l0 198.18.0.1 | xlbt-dv-l1 198.18.1.1 <-> xlbt-dv-b0 198.18.1.2/24
 *   VIP 198.18.100.1:5300/udp -> NAT -> 198.18.1.2:5301
 *
 * Found out on kernel 6.18 (each checked by removing it: the datagram is counted "forwarded"
 * but never answered):
 * - a veth drops XDP_REDIRECTed frames unless its peer runs XDP: the client and backend legs
 *   run bpf/xdp_pass.o (`ethtool -K <peer> gro on` works as well);
 * - the end hosts need tx checksum offload off: a local socket's datagram leaves a veth with
 *   CHECKSUM_PARTIAL (checksum not filled in) and the redirected frame loses that mark, so
 *   the backend would drop it as corrupt.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { Program, XdpLink, enterNetns, repoRoot } from '../src/bpf';
import { Dataplane } from '../src/dataplane/dataplane';
import { Balancer } from '../src/balancer/balancer';
import { DataplaneInspector } from '../src/dataplane/inspect';
import type { DataplaneState } from '../src/dataplane/types';
import { attachPeerPass, buildVethLab, removeVethLab, sh, vethLab } from './support/veth-lab';

const LAB = vethLab('xlbt-dv', '198.18.0', '198.18.1');
const NS = LAB.ns;
const VIP = '198.18.100.1';
const CLIENT = LAB.client;
const BACKEND = LAB.backend;

const PIN_DIR = '/sys/fs/bpf/xlbt-dv-veth';

function cleanup(): void {
  removeVethLab(LAB);
  fs.rmSync(PIN_DIR, { recursive: true, force: true });
}

function buildLab(): void {
  cleanup();
  buildVethLab(LAB);
}

// UDP echo on 5301, TCP echo on 8081 (replies "echo:<data>"); exits by itself after 60 s.
const ECHO_SERVER = `
let bound = 0;
const ready = () => { if (++bound === 2) process.stdout.write('ready\\n'); };
const s = require('dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
s.bind(5301, '${BACKEND}', ready);
require('net').createServer((c) => c.on('data', (d) => c.write(Buffer.concat([Buffer.from('echo:'), d])))).listen(8081, '${BACKEND}', ready);
setTimeout(() => process.exit(0), 60000).unref();
`;

// One TCP connection to VIP:8080: prints the peer address the client saw and the echo, bounded to 5 s.
const TCP_CLIENT_SCRIPT = `
const done = (out) => { process.stdout.write(JSON.stringify(out)); process.exit(0); };
const c = require('net').connect({ host: '${VIP}', port: 8080, localAddress: '${CLIENT}' }, () => c.write('hello'));
c.on('data', (d) => done({ from: c.remoteAddress, port: c.remotePort, payload: d.toString() }));
c.on('error', (e) => done({ error: e.message }));
setTimeout(() => done({ timeout: true }), 5000);
`;

// Up to 10 datagrams, 200 ms apart; prints the first reply's source and payload, bounded to 5 s.
const CLIENT_SCRIPT = `
const s = require('dgram').createSocket('udp4');
let sent = 0;
const done = (out) => { process.stdout.write(JSON.stringify(out)); process.exit(0); };
s.on('message', (m, r) => done({ from: r.address, port: r.port, payload: m.toString(), sent }));
s.bind(0, '${CLIENT}', () => {
  const t = setInterval(() => { if (sent++ >= 10) { clearInterval(t); return; } s.send('ping-' + sent, 5300, '${VIP}'); }, 200);
  t.unref();
  s.send('ping-0', 5300, '${VIP}'); sent = 1;
});
setTimeout(() => done({ timeout: true, sent }), 5000);
`;

// 400 datagrams, one every 2 ms, each answered by the echo; prints how many came back (5 s bound).
const STREAM_CLIENT_SCRIPT = `
const s = require('dgram').createSocket('udp4');
const seen = new Set();
let sent = 0;
const done = () => { process.stdout.write(JSON.stringify({ sent, received: seen.size })); process.exit(0); };
s.on('message', (m) => { seen.add(m.toString()); if (seen.size === 400) done(); });
s.bind(0, '${CLIENT}', () => {
  process.stdout.write('go\\n');
  const t = setInterval(() => { if (sent === 400) { clearInterval(t); setTimeout(done, 1000); return; } s.send('n' + sent++, 5300, '${VIP}'); }, 2);
});
setTimeout(done, 5000);
`;

describe('XDP balancer on veth, real UDP and TCP through namespaces', () => {
  let dp: Dataplane | null = null;
  let lb: Balancer | null = null;
  let view: DataplaneInspector | null = null;
  let echo: ChildProcess | null = null;
  const peerLinks: XdpLink[] = [];
  const peerProgs: Program[] = [];

  before(() => {
    buildLab();
  });

  after(() => {
    try {
      for (const l of peerLinks) l.close();
      for (const p of peerProgs) p.close();
      dp?.close();
      if (echo?.pid && echo.exitCode === null) process.kill(echo.pid, 'SIGTERM');
    } finally {
      cleanup();
    }
  });

  test('a datagram to VIP:5300 reaches the backend and the reply comes from VIP:5300', async () => {
    // XDP_PASS on the client and backend legs so that veth accepts redirected frames there.
    const peers = attachPeerPass(LAB);
    peerProgs.push(...peers.progs);
    peerLinks.push(...peers.links);

    dp = Dataplane.load({ hashSeed: 0x5eed, maxServices: 8, maxBackends: 16, maxFlows: 1024 });
    lb = new Balancer(dp);
    view = new DataplaneInspector(dp, lb.reconciler);
    const restore = enterNetns(NS.lb);
    try {
      dp.attach('xlbt-dv-l0', 'native');
      dp.attach('xlbt-dv-l1', 'native');
    } finally {
      restore();
    }
    assert.deepEqual(dp.attachments().map((a) => [a.ifname, a.mode]), [['xlbt-dv-l0', 'native'], ['xlbt-dv-l1', 'native']]);
    const state: DataplaneState = {
      services: [{
        name: 'udp-echo', vip: VIP, port: 5300, protocol: 'udp', mode: 'nat', tableSize: 13,
        backends: [{ address: BACKEND, port: 5301, weight: 1, healthy: true, draining: false }],
      }],
      settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true },
    };
    lb!.applyState(state);

    echo = spawn('ip', ['netns', 'exec', NS.backend, process.execPath, '-e', ECHO_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('echo server did not start in 15 s')), 15_000);
      echo!.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); resolve(); } });
      echo!.on('exit', (code) => { clearTimeout(timer); reject(new Error(`echo server exited (${code})`)); });
    });
    echo.removeAllListeners('exit');

    const out = JSON.parse(sh([process.execPath, '-e', CLIENT_SCRIPT], { ns: NS.client })) as
      { from?: string; port?: number; payload?: string; timeout?: boolean; sent: number };
    assert.ok(!out.timeout, `no reply after ${out.sent} datagrams; stats: ${JSON.stringify(view!.readStats().reasons)}`);
    assert.equal(out.from, VIP, 'reply source is the VIP');
    assert.equal(out.port, 5300, 'reply source port is the service port');
    assert.match(out.payload!, /^echo:ping-\d+$/);

    const stats = view!.readStats();
    const svc = stats.services['udp-echo'];
    const be = stats.backends['udp-echo'][`${BACKEND}:5301`];
    assert.ok(svc.fwdPackets >= 1 && svc.fwdBytes > 0, `service fwd counted: ${JSON.stringify(svc)}`);
    assert.ok(svc.revPackets >= 1 && svc.revBytes > 0, `service rev counted: ${JSON.stringify(svc)}`);
    assert.ok(be.fwdPackets >= 1 && be.revPackets >= 1, `backend counted: ${JSON.stringify(be)}`);
    assert.ok(stats.reasons.forwarded.packets >= 1 && stats.reasons.reversed.packets >= 1);
    assert.ok(stats.actions.redirect.packets >= 2, `both directions redirected: ${JSON.stringify(stats.actions)}`);
  });

  test('a TCP connection to VIP:8080 is NATed both ways (handshake, data, checksums)', () => {
    assert.ok(dp, 'the balancer from the UDP test is running');
    lb!.applyState({
      services: [
        {
          name: 'udp-echo', vip: VIP, port: 5300, protocol: 'udp', mode: 'nat', tableSize: 13,
          backends: [{ address: BACKEND, port: 5301, weight: 1, healthy: true, draining: false }],
        },
        {
          name: 'tcp-echo', vip: VIP, port: 8080, protocol: 'tcp', mode: 'nat', tableSize: 13,
          backends: [{ address: BACKEND, port: 8081, weight: 1, healthy: true, draining: false }],
        },
      ],
      settings: { fragPolicy: 'drop', sampleRate: 0, flowCache: true },
    });
    const out = JSON.parse(sh([process.execPath, '-e', TCP_CLIENT_SCRIPT], { ns: NS.client })) as
      { from?: string; port?: number; payload?: string; timeout?: boolean; error?: string };
    assert.ok(!out.timeout && !out.error, `no echo: ${JSON.stringify(out)}; reasons ${JSON.stringify(view!.readStats().reasons)}`);
    assert.equal(out.from, VIP);
    assert.equal(out.port, 8080);
    assert.equal(out.payload, 'echo:hello');
    const svc = view!.readStats().services['tcp-echo'];
    // SYN, ACK, data at least one way; SYN-ACK, data back the other.
    assert.ok(svc.fwdPackets >= 3 && svc.revPackets >= 2, `tcp counted: ${JSON.stringify(svc)}`);
    // The steady state (no slot moved: a first install) remembers no flow (docs/decisions.md,
    // "Stateless steady state").
    const flows = view!.mapEntries('flows').entries.flatMap((e) => e.value as Array<{ dport: number; proto: number }>);
    assert.ok(!flows.some((k) => k.dport === 8080 && k.proto === 6), 'the TCP flow is not remembered');
  });

  test('replaceProgram under a UDP stream: the links switch program, no datagram is lost', async () => {
    assert.ok(dp, 'the balancer from the UDP test is running');
    dp.pin(PIN_DIR);
    const oldProgId = dp.program.info().id;
    const client = spawn('ip', ['netns', 'exec', NS.client, process.execPath, '-e', STREAM_CLIENT_SCRIPT],
      { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    const finished = new Promise<void>((resolve) => client.on('exit', () => resolve()));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('stream client did not start in 15 s')), 15_000);
        client.stdout!.on('data', (d: Buffer) => {
          output += d.toString();
          if (output.includes('go\n')) { clearTimeout(timer); resolve(); }
        });
      });
      await new Promise((r) => setTimeout(r, 300)); // mid-stream
      dp.replaceProgram(path.join(repoRoot(), 'bpf', 'lb.o'));
      await finished;
    } finally {
      if (client.exitCode === null && client.pid) process.kill(client.pid, 'SIGTERM');
    }
    const result = JSON.parse(output.slice(output.indexOf('go\n') + 3)) as { sent: number; received: number };
    const newProgId = dp.program.info().id;
    assert.notEqual(newProgId, oldProgId);
    assert.deepEqual(dp.attachments().map((a) => a.progId), [newProgId, newProgId], 'both links run the new program');
    assert.equal(result.sent, 400);
    assert.equal(result.received, 400, `${400 - result.received} datagrams lost across the program swap`);
    dp.unpin();
  });
});
