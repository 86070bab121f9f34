/**
 * The daemon over the lab (prefix xlbt-dm: namespaces xlbt-dm-client/-lb/-sw/-be1/-be2), with
 * real HTTP traffic from the client namespace: both backends serve; a backend whose server
 * dies is health-checked out and the traffic goes on without failures; repaired, it is back.
 * Everything is removed by name in after(), also on failure.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { spawnDaemon, type SpawnedDaemon } from '../src/daemon/spawn';
import { ApiClient } from '../src/cli/client';
import { labUp, labDown, readLabState } from '../src/lab/lab';
import { runTraffic, startTraffic } from '../src/lab/traffic';
import { kernelTestSkip } from './support/kernel-env';
import { BpfMap } from '../src/bpf';
import { LbIfMacCodec } from '../src/dataplane/abi';
import { ipIn } from '../src/lab/netns';

const PREFIX = 'xlbt-dm';
const PIN_DIR = '/sys/fs/bpf/xlbt-dm-lab';
const FORWARD_PORT = 18724;
const TOKEN = 'xlbt-dm-lab-token-0123456789';

const skipReason = kernelTestSkip('the daemon lab test');

async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('xdplb daemon over the lab (NAT, health checks)', { skip: skipReason }, () => {
  let tmpDir = '';
  let daemon: SpawnedDaemon | null = null;
  let configPath = '';
  const api = new ApiClient({ baseUrl: `http://127.0.0.1:${FORWARD_PORT}`, token: TOKEN });

  before(async () => {
    await labDown(PREFIX).catch(() => undefined);
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-dm-'));
    await labUp({ prefix: PREFIX, backends: 2, mode: 'nat', forwardPort: FORWARD_PORT, apiPort: 8720 });
    configPath = path.join(tmpDir, 'xdplb.yaml');
    fs.writeFileSync(configPath, YAML.stringify({
      interfaces: [{ name: `${PREFIX}-lb0`, mode: 'native' }, { name: `${PREFIX}-lb1`, mode: 'native' }],
      api: { listen: '127.0.0.1:8720' },
      tokens: [{ name: 'test', role: 'admin', token: TOKEN }],
      services: [{
        name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
        // Probed on the backends' second port: see docs/operations.md (reverse NAT and checks).
        healthCheck: { type: 'http', port: 80, path: '/', intervalMs: 200, timeoutMs: 150, rise: 2, fall: 2 },
        backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }, { address: '198.18.1.12', port: 8080, weight: 1 }],
      }],
    }));
    daemon = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: `${PREFIX}-lb`, detachOnExit: true });
    await daemon.ready(30_000);
  });

  after(async () => {
    if (daemon) await daemon.stop().catch(() => daemon?.kill());
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    await labDown(PREFIX).catch(() => undefined);
    if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  });

  test('both backends serve, a dead one is checked out without failed requests, and comes back', async () => {
    await until('both backends up', async () => (await api.getService('web')).backends.every((b) => b.health === 'up'));
    const both = await runTraffic({ prefix: PREFIX, kind: 'http', target: 'http://198.18.100.1/', durationSec: 2, rps: 50 });
    assert.equal(both.failed, 0, `errors: ${both.errors.join('; ')}`);
    assert.ok(both.ok >= 50, `answered: ${both.ok}`);
    assert.deepEqual(Object.keys(both.byBackend).sort(), ['be1', 'be2'], JSON.stringify(both.byBackend));

    // be1's server dies (the lab started it for this test): checked down, out of the table.
    const be1 = readLabState(PREFIX)!.servers.be1.pid;
    process.kill(be1, 'SIGKILL');
    await until('be1 down', async () => (await api.getService('web')).backends[0].health === 'down');
    const view = await api.getService('web');
    assert.equal(view.backends[0].inTable, false);
    assert.equal(view.backends[1].tableShare, 1);
    const one = await runTraffic({ prefix: PREFIX, kind: 'http', target: 'http://198.18.100.1/', durationSec: 2, rps: 50 });
    assert.equal(one.failed, 0, `errors: ${one.errors.join('; ')}`);
    assert.deepEqual(Object.keys(one.byBackend), ['be2']);

    // repaired: checked up again after `rise` probes, back in the table
    await labUp({ prefix: PREFIX, backends: 2, mode: 'nat', forwardPort: FORWARD_PORT, apiPort: 8720 });
    await until('be1 up again', async () => (await api.getService('web')).backends[0].health === 'up');
    const again = await runTraffic({ prefix: PREFIX, kind: 'http', target: 'http://198.18.100.1/', durationSec: 2, rps: 50 });
    assert.equal(again.failed, 0);
    assert.deepEqual(Object.keys(again.byBackend).sort(), ['be1', 'be2']);
  });

  test('drain moves new connections off a backend; undo brings it back', async () => {
    await api.patchBackend('web', '198.18.1.11:8080', { drain: true });
    const view = await api.getService('web');
    assert.equal(view.backends[0].draining, true);
    assert.equal(view.backends[0].inTable, false);
    const drained = await runTraffic({ prefix: PREFIX, kind: 'http', target: 'http://198.18.100.1/', durationSec: 1, rps: 50 });
    assert.equal(drained.failed, 0);
    assert.deepEqual(Object.keys(drained.byBackend), ['be2']);
    await api.patchBackend('web', '198.18.1.11:8080', { drain: false });
    const back = await runTraffic({ prefix: PREFIX, kind: 'http', target: 'http://198.18.100.1/', durationSec: 1, rps: 50 });
    assert.deepEqual(Object.keys(back.byBackend).sort(), ['be1', 'be2']);
  });

  test('kill -9 under traffic: forwarding goes on, the restarted daemon adopts with no failed request', async () => {
    const progId = (await api.interfaces())[0].progId;
    const run = startTraffic({ prefix: PREFIX, kind: 'http', target: 'http://198.18.100.1/', durationSec: 5, rps: 100 });
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await daemon!.kill()).signal, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));   // no daemon at all for a second
    daemon = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: `${PREFIX}-lb`, detachOnExit: true });
    await daemon.ready(30_000);
    assert.equal(daemon.logs.find((l) => l.msg === 'adopted the pinned data plane')?.progId, progId);
    assert.equal(daemon.logs.find((l) => l.msg === 'initial state applied')?.writes, 0);
    const summary = await run.done;
    assert.equal(summary.failed, 0, `errors: ${summary.errors.join('; ')}`);
    // 500 planned; the generator shares 2 CPUs with a daemon starting up, so not all are sent.
    assert.ok(summary.ok >= 250, `answered: ${JSON.stringify(summary)}`);
    assert.deepEqual(Object.keys(summary.byBackend).sort(), ['be1', 'be2']);
  });

  test("an interface's new MAC reaches the program on SIGHUP, with the config file unchanged", async () => {
    const ifname = `${PREFIX}-lb0`;
    const link = () => (JSON.parse(ipIn(`${PREFIX}-lb`, ['-j', 'link', 'show', 'dev', ifname]).stdout) as Array<{ ifindex: number; address: string }>)[0];
    const { ifindex, address: original } = link();
    const ifMacs = BpfMap.fromPin(path.join(PIN_DIR, 'maps', 'if_macs'));
    const held = (): string => {
      const value = ifMacs.lookup(Buffer.from(new Uint32Array([ifindex & 1023]).buffer));
      const entry = value ? LbIfMacCodec.decode(value) : null;
      return entry && entry.ifindex === ifindex ? entry.mac.map((b) => b.toString(16).padStart(2, '0')).join(':') : 'none';
    };
    const reloadUntil = async (mac: string) => {
      daemon!.child.kill('SIGHUP');
      await until(`if_macs holds ${mac} for ${ifname} (holds ${held()})`, async () => held() === mac, 5000);
    };
    try {
      assert.equal(held(), original);
      ipIn(`${PREFIX}-lb`, ['link', 'set', 'dev', ifname, 'address', '02:00:5e:10:00:99']);
      assert.equal(link().address, '02:00:5e:10:00:99');
      await reloadUntil('02:00:5e:10:00:99');
    } finally {
      ipIn(`${PREFIX}-lb`, ['link', 'set', 'dev', ifname, 'address', original]);
      try { await reloadUntil(original); } finally { ifMacs.close(); }
    }
    // The balancer forwards again once the program knows the interface's MAC.
    const summary = await runTraffic({ prefix: PREFIX, kind: 'http', target: 'http://198.18.100.1/', durationSec: 1, rps: 20 });
    assert.equal(summary.failed, 0, `errors: ${summary.errors.join('; ')}`);
  });
});
