/**
 * An IPv6 service put through the daemon's API is served by the program (issue 15): a daemon in
 * this process, inside its own namespace xlbc6-p (veth xlbc6-a/xlbc6-ap, 2001:2:0:61::/64 toward
 * clients and 2001:2:0:62::/64 toward backends with permanent neighbours, so bpf_fib_lookup
 * AF_INET6 answers; pins /sys/fs/bpf/xlbc6-path, API 127.0.0.1:28602 inside the namespace).
 * Frames run through the pinned program with BPF_PROG_TEST_RUN: a v6 flow to the VIP is NAT66'd
 * to the backend the TS Maglev and flow hash predict from what the API reports, a backend's reply
 * leaves from the VIP, a backend drained through its "[v6]:port" URL gets no new flows, and a
 * deleted service's VIP is no longer ours (not_vip). The reconciler's v6 writes (services6,
 * vips6, backends6, reverse6, vip_filter6, the shared Maglev tables) are what the program reads.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import pino from 'pino';
import { Program } from '../src/bpf';
import { startDaemon, type RunningDaemon } from '../src/cli/daemon-process';
import { ApiClient } from '../src/cli/client';
import { LB, bytesToIpv6 } from '../src/dataplane/abi';
import { pinnedVerdictRows } from './support/verdict-run';
import { REASONS } from '../src/dataplane/types';
import { buildFrame6, checksumProblems6 } from '../src/dataplane/packet';
import { flowHash6 } from '../src/dataplane/jhash';
import { buildMaglevTable } from '../src/balancer/maglev';
import { kernelTestSkip } from './support/kernel-env';
import { enterV6TestRunNetns, removeV6TestRunNetns, type V6TestRunNetns } from './support/v6-testrun-netns';

const PIN = '/sys/fs/bpf/xlbc6-path';
const PORT = 28602;
const TOKEN = 'xlbc6-path-admin-token-0123456789';
const SEED = 0x6c6;
const LB_MAC = '02:00:00:c6:00:01';
const CLIENT = '2001:2:0:61::10';
const CLIENT_MAC = '02:00:00:c6:00:0a';
const BACKEND_MAC: Record<string, string> = { '2001:2:0:62::11': '02:00:00:c6:01:11', '2001:2:0:62::12': '02:00:00:c6:01:12' };
const XDP = { drop: 1, pass: 2, tx: 3 } as const;
const skipReason = kernelTestSkip('the IPv6 daemon data-path test');

/** namespace xlbc6-p, veth xlbc6-a / xlbc6-ap */
const NET: V6TestRunNetns = {
  ns: 'xlbc6-p', dev: 'xlbc6-a', mac: LB_MAC, peerMac: '02:00:00:c6:00:02',
  addresses: ['2001:2:0:61::1/64', '2001:2:0:62::1/64'],
  neighbours: { [CLIENT]: CLIENT_MAC, ...BACKEND_MAC },
};
function cleanup(): void {
  removeV6TestRunNetns(NET);
  fs.rmSync(PIN, { recursive: true, force: true });
}
const mac = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');

describe('an IPv6 service through the daemon, served by the program', { skip: skipReason, concurrency: false }, () => {
  let dir = '';
  let daemon: RunningDaemon | null = null;
  let api: ApiClient;
  let prog: Program | null = null;
  let restore = (): void => {};
  let ifindex = 0;

  before(async () => {
    cleanup();
    ({ ifindex, restore } = enterV6TestRunNetns(NET));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbc6-path-'));
    fs.writeFileSync(path.join(dir, 'xdplb.yaml'), YAML.stringify({
      hashSeed: SEED, reverseGraceSeconds: 0, interfaces: [], allowEmpty: true,
      api: { listen: `127.0.0.1:${PORT}` }, tokens: [{ name: 'ci', role: 'admin', token: TOKEN }], services: [],
    }));
    daemon = await startDaemon({ configPath: path.join(dir, 'xdplb.yaml'), pinDir: PIN, detachOnExit: true, logger: pino({ level: 'silent' }) });
    api = new ApiClient({ baseUrl: daemon.url, token: TOKEN });
    prog = Program.fromPin(path.join(PIN, 'prog'));
  });
  after(async () => {
    prog?.close();
    await daemon?.stop({ detach: true }).catch(() => {});
    restore();
    cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The program's verdict reasons counted so far, by name. */
  const reasons = (): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [i, c] of pinnedVerdictRows(PIN)) {
      const name = REASONS[Math.floor(i / LB.ACTION_SLOTS)];
      if (c.packets && name) out[name] = (out[name] ?? 0) + c.packets;
    }
    return out;
  };
  /** Runs a frame; the result and the one reason it was counted under. */
  const run = (frame: Buffer) => {
    const before = reasons();
    // Arriving on the namespace's interface: the next hop is out of the same one (XDP_TX).
    const res = prog!.testRun(frame, { ingressIfindex: ifindex });
    const after = reasons();
    const reason = Object.keys(after).filter((r) => after[r] !== (before[r] ?? 0));
    return { ...res, reason: reason.join(',') };
  };
  const syn = (dst: string, sport: number) => buildFrame6({ eth: { dst: LB_MAC, src: CLIENT_MAC }, ip: { src: CLIENT, dst }, tcp: { sport, dport: 80, flags: 0x02 } });

  test('NAT66 to the backend the API\'s view predicts; the reply leaves from the VIP', async () => {
    const view = await api.createService({
      name: 'web6', vip: '2001:0002:0000:0063:0000:0000:0000:0001', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
      backends: [{ address: '2001:2:0:62:0:0:0:11', port: 8080, weight: 1 }, { address: '2001:2:0:62::12', port: 8080, weight: 1 }],
    });
    assert.equal(view.vip, '2001:2:0:63::1');
    // The reconciler's Maglev keys: the canonical "[v6]:port" keys in code-point order.
    const keys = view.backends.map((b) => b.key).sort();
    const table = buildMaglevTable(keys.map((key) => ({ key, weight: 1 })), 251);
    const seen = new Set<string>();
    for (let sport = 40000; sport < 40040; sport++) {
      const res = run(syn(view.vip, sport));
      assert.equal(res.reason, 'forwarded', `sport ${sport}`);
      assert.equal(res.retval, XDP.tx, `sport ${sport}: forwarded`);
      const want: string = keys[table[flowHash6(CLIENT, view.vip, sport, 80, 6, SEED) % 251]];
      const dst = bytesToIpv6(res.data.subarray(14 + 24, 14 + 40));
      assert.equal(`[${dst}]:${res.data.readUInt16BE(14 + 40 + 2)}`, want, `sport ${sport}`);
      assert.equal(mac(res.data.subarray(0, 6)), BACKEND_MAC[dst]);
      assert.deepEqual(checksumProblems6(res.data), []);
      seen.add(dst);
    }
    assert.equal(seen.size, 2, 'both backends take flows');
    const reply = run(buildFrame6({ eth: { dst: LB_MAC, src: BACKEND_MAC['2001:2:0:62::11'] }, ip: { src: '2001:2:0:62::11', dst: CLIENT }, tcp: { sport: 8080, dport: 40000, flags: 0x12 } }));
    assert.equal(reply.reason, 'reversed');
    assert.equal(reply.retval, XDP.tx);
    assert.equal(bytesToIpv6(reply.data.subarray(14 + 8, 14 + 24)), '2001:2:0:63::1', 'from the VIP');
    assert.equal(reply.data.readUInt16BE(14 + 40), 80);
  });

  test('a backend drained through its [v6]:port URL takes no new flows', async () => {
    await api.patchBackend('web6', '[2001:2:0:62:0:0:0:11]:8080', { drain: true });
    for (let sport = 41000; sport < 41030; sport++) {
      const res = run(syn('2001:2:0:63::1', sport));
      assert.equal(res.retval, XDP.tx);
      assert.equal(bytesToIpv6(res.data.subarray(14 + 24, 14 + 40)), '2001:2:0:62::12', `sport ${sport}: the undrained backend`);
    }
  });

  test('a deleted v6 service\'s VIP is not ours any more (passed untouched)', async () => {
    await api.deleteService('web6');
    const frame = syn('2001:2:0:63::1', 42000);
    const res = run(frame);
    assert.equal(res.reason, 'not_vip');
    assert.equal(res.retval, XDP.pass);
    assert.ok(res.data.equals(frame), 'untouched');
  });
});
