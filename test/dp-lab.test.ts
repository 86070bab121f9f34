/**
 * Data-plane behaviour over the lab, end to end (prefix xlbt-dl: namespaces xlbt-dl-client/-lb/
 * -sw/-be1/-be2, pins /sys/fs/bpf/xlbt-dl-lab, the daemon's API on 127.0.0.1:8741 in the lb
 * namespace, forwarded from the host's 127.0.0.1:18741):
 * - the switch namespace runs no bridge netfilter (bridge-nf-call-* = 0 after lab up);
 * - ICMP echo to a VIP is answered at once with no other traffic flowing: with the lab up
 *   --no-peer-xdp (the peers of the lb's veth legs have GRO but no XDP program) the daemon
 *   sends echo replies back by redirect (docs/datapath.md); with the lab's default peer XDP
 *   even XDP_TX (tx_redirect forced to 0) arrives at once;
 * - a NAT backend removed mid-connection still closes it cleanly: its late answer and FIN reach
 *   the client from the VIP during reverseGraceSeconds, and the reverse entry goes after it.
 * Everything is removed by name in after(), also on failure.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { spawnDaemon, type SpawnedDaemon } from '../src/daemon/spawn';
import { BpfMap } from '../src/bpf';
import { encodeU32, LbSettingsCodec } from '../src/dataplane/abi';
import { ApiClient } from '../src/cli/client';
import { labUp, labDown, labStatus, BRIDGE_NF_SYSCTLS } from '../src/lab/lab';
import { readSysctlIn } from '../src/lab/netns';
import { labTopology } from '../src/lab/topology';
import { kernelTestSkip } from './support/kernel-env';

const PREFIX = 'xlbt-dl';
const PIN_DIR = '/sys/fs/bpf/xlbt-dl-lab';
const FORWARD_PORT = 18741;
const API_PORT = 8741;
const TOKEN = 'xlbt-dl-lab-token-0123456789';
const WEB_VIP = '198.18.100.1';
const LATE_VIP = '198.18.100.3';
const GRACE_SECONDS = 8;

const skipReason = kernelTestSkip('the data-plane lab test');

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Sends `count` echo requests to argv[1], one at a time, `gap` s apart, and prints the
// round-trip time of each reply in ms (null: no reply within 2 s) as JSON.
const PING_PY = `
import json, os, select, socket, struct, sys, time
dst, count, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xffff
out = []
for seq in range(count):
    payload = b'xlbt-dl-echo-%04d' % seq
    pkt = struct.pack('!BBHHH', 8, 0, 0, ident, seq) + payload
    pkt = pkt[:2] + struct.pack('!H', csum(pkt)) + pkt[4:]
    t0 = time.monotonic()
    s.sendto(pkt, (dst, 0))
    rtt = None
    while rtt is None:
        left = t0 + 2.0 - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]: break
        data, addr = s.recvfrom(2048)
        ihl = (data[0] & 0xf) * 4
        t, code, _, rid, rseq = struct.unpack('!BBHHH', data[ihl:ihl + 8])
        if t == 0 and rid == ident and rseq == seq and addr[0] == dst and data[ihl + 8:] == payload:
            rtt = (time.monotonic() - t0) * 1000
    out.append(rtt)
    time.sleep(gap)
print(json.dumps(out))
`;

// One HTTP/1.1 request with Connection: close over a plain socket; prints "connected", then at
// the end one JSON line: the whole answer and how the connection ended.
const CLIENT_JS = `
const net = require('net');
const [host, port, reqPath] = process.argv.slice(1);
let data = '';
const sock = net.connect({ host, port: Number(port) }, () => {
  console.log('connected');
  sock.write('GET ' + reqPath + ' HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n');
});
sock.setEncoding('utf8');
sock.on('data', (d) => { data += d; });
sock.on('end', () => { console.log(JSON.stringify({ end: true, data })); process.exit(0); });
sock.on('error', (e) => { console.log(JSON.stringify({ error: e.message, data })); process.exit(0); });
setTimeout(() => { console.log(JSON.stringify({ timeout: true, data })); process.exit(0); }, 15000);
`;

describe('the data plane over the lab (bridge netfilter, ICMP echo delay, removed NAT backends)', { skip: skipReason }, () => {
  let tmpDir = '';
  let daemon: SpawnedDaemon | null = null;
  let configPath = '';
  const api = new ApiClient({ baseUrl: `http://127.0.0.1:${FORWARD_PORT}`, token: TOKEN });
  const topology = labTopology({ prefix: PREFIX, backends: 2 });

  before(async () => {
    await labDown(PREFIX).catch(() => undefined);
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-dl-'));
    // Peers without XDP first: the daemon alone must make echo replies prompt.
    await labUp({ prefix: PREFIX, backends: 2, mode: 'nat', forwardPort: FORWARD_PORT, apiPort: API_PORT, peerXdp: false });
    configPath = path.join(tmpDir, 'xdplb.yaml');
    fs.writeFileSync(configPath, YAML.stringify({
      interfaces: [{ name: topology.lb.clientLeg, mode: 'native' }, { name: topology.lb.backendLeg, mode: 'native' }],
      api: { listen: `127.0.0.1:${API_PORT}` },
      tokens: [{ name: 'test', role: 'admin', token: TOKEN }],
      reverseGraceSeconds: GRACE_SECONDS,
      services: [
        {
          name: 'web', vip: WEB_VIP, port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
          backends: [{ address: topology.backends[0].address, port: 8080, weight: 1 }, { address: topology.backends[1].address, port: 8080, weight: 1 }],
        },
        {
          name: 'late', vip: LATE_VIP, port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
          backends: [{ address: topology.backends[1].address, port: 80, weight: 1 }],
        },
      ],
    }));
    fs.writeFileSync(path.join(tmpDir, 'ping.py'), PING_PY);
    daemon = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: topology.lb.netns, detachOnExit: true });
    await daemon.ready(30_000);
  });

  after(async () => {
    if (daemon) await daemon.stop().catch(() => daemon?.kill());
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    await labDown(PREFIX).catch(() => undefined);
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  test('lab up turns bridge netfilter off in the switch namespace', () => {
    for (const key of BRIDGE_NF_SYSCTLS) {
      const value = readSysctlIn(topology.switch.netns, key);
      // Absent when br_netfilter is not loaded at all: then nothing crosses iptables either.
      if (value !== undefined) assert.equal(value, '0', `${key} in ${topology.switch.netns}`);
    }
    assert.deepEqual(labStatus(PREFIX).problems.filter((p) => p.includes('bridge-nf')), []);
  });

  /** Pings the web VIP from the client 8 times, 250 ms apart, and checks every reply came within 50 ms. */
  const pingPromptly = (): void => {
    const out = spawnSync('ip', ['netns', 'exec', topology.client.netns, 'python3', path.join(tmpDir, 'ping.py'), WEB_VIP, '8', '0.25'],
      { encoding: 'utf8', timeout: 30_000 });
    assert.equal(out.status, 0, out.stderr);
    const rtts = JSON.parse(out.stdout) as Array<number | null>;
    assert.equal(rtts.length, 8);
    for (const [i, rtt] of rtts.entries()) {
      assert.ok(rtt !== null && rtt < 50, `echo ${i}: ${rtt === null ? 'no reply within 2 s' : `${rtt.toFixed(1)} ms`} (all: ${JSON.stringify(rtts)})`);
    }
  };

  test('ICMP echo to a VIP is answered at once, with no other traffic flowing (peers without XDP)', async () => {
    assert.deepEqual(labStatus(PREFIX).peerXdp, [], 'the peers of the lb legs run no XDP program');
    const settings = await api.mapEntries('settings', 0, 1);
    assert.equal((settings.entries[0].value as { txRedirect: number }).txRedirect, 1, 'the lb legs are veths: tx_redirect on');
    pingPromptly();
  });

  test('a NAT backend removed mid-connection still closes it from the VIP; its reverse entry goes after the grace period, also across a restart', async () => {
    const be2 = topology.backends[1].address;
    const reverseHolds = async (ip: string, port: number): Promise<boolean> =>
      (await api.mapEntries('reverse', 0, 1000)).entries.some((e) => {
        const key = e.key as { ip: string; port: number };
        return key.ip === ip && key.port === port;
      });
    assert.ok(await reverseHolds(be2, 80));

    const child = spawn('ip', ['netns', 'exec', topology.client.netns, process.execPath, '-e', CLIENT_JS, LATE_VIP, '80', '/slow?ms=3000'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => { stdout += d; });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await until('the client connected', async () => stdout.includes('connected'), 10_000);
      await new Promise((r) => setTimeout(r, 300));   // the request reaches the backend
      // The backend leaves the pool while it is still working on the answer.
      await api.deleteBackend('late', `${be2}:80`);
      assert.equal((await api.getService('late')).backends.length, 0);
      const removedAt = Date.now();
      await exited;
      const result = JSON.parse(stdout.trim().split('\n').pop()!) as { end?: boolean; error?: string; timeout?: boolean; data: string };
      assert.equal(result.end, true, `the connection did not end cleanly: ${JSON.stringify(result)}`);
      assert.match(result.data, /^HTTP\/1\.1 200/);
      assert.match(result.data, /be2/);
      // During the grace period the removed backend's reverse entry is still there...
      assert.ok(Date.now() - removedAt < GRACE_SECONDS * 1000 - 1000);
      assert.ok(await reverseHolds(be2, 80), 'reverse entry kept during the grace period');
      // ...also through a daemon killed and started again (it adopts the pins; the grace
      // period starts again at its first apply)...
      assert.equal((await daemon!.kill()).signal, 'SIGKILL');
      daemon = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: topology.lb.netns, detachOnExit: true });
      await daemon.ready(30_000);
      const restartedAt = Date.now();
      assert.ok(await reverseHolds(be2, 80), 'reverse entry kept by the adopting daemon');
      // ...and after it, it is gone (the daemon's timer).
      await until('the reverse entry to expire', async () => !(await reverseHolds(be2, 80)), GRACE_SECONDS * 1000 + 5000);
      assert.ok(Date.now() - restartedAt >= GRACE_SECONDS * 1000 - 1500, 'not before the grace period ended');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  test('the lab (default peer XDP) delivers even XDP_TX echo replies at once', async () => {
    const status = await labUp({ prefix: PREFIX, backends: 2, mode: 'nat', forwardPort: FORWARD_PORT, apiPort: API_PORT });
    assert.deepEqual(status.problems, []);
    assert.deepEqual(status.peerXdp?.map((x) => x.ifname), [topology.client.interfaces[0].name, topology.switch.lbPort]);
    // Force XDP_TX behind the daemon's back (no reconcile runs meanwhile: no health checks).
    const settings = BpfMap.fromPin(path.join(PIN_DIR, 'maps', 'settings'));
    try {
      const set = (txRedirect: number) => settings.update(encodeU32(0), LbSettingsCodec.encode({ ...LbSettingsCodec.decode(settings.lookup(encodeU32(0))!), txRedirect }));
      set(0);
      try {
        pingPromptly();
      } finally {
        set(1);
      }
    } finally {
      settings.close();
    }
  });
});
