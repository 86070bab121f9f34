/**
 * Path MTU discovery through an IPv4 NAT VIP with the narrow link on the backend side, end to end
 * over real kernel TCP (the IPv4 twin of test/e2e6.test.ts "narrow link on the backend side"):
 * the lab (prefix xlbp6: client, lb, switch, 2 backends in network namespaces), the xdplb daemon
 * in the lb namespace with XDP native on both lb legs, the backend side (lb backend leg, switch,
 * backends) at MTU 1280 while the client side stays at 1500 and the backends advertise an MSS of
 * 1440. The client's full-size segments (DF, as every Linux TCP segment) are too big for the lb's
 * next hop toward the backend: the program must answer ICMP fragmentation needed from the VIP,
 * quoting the client's own packet, or the client never learns the path MTU and the upload stalls.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { labUp, labDown } from '../src/lab/lab';
import { labTopology } from '../src/lab/topology';
import { ipIn, execIn } from '../src/lab/netns';
import { spawnDaemon, type SpawnedDaemon } from '../src/daemon/spawn';
import { ApiClient } from '../src/cli/client';
import { LB } from '../src/dataplane/abi';
import { pinnedVerdictRows } from './support/verdict-run';
import { REASONS, XDP_ACTIONS } from '../src/dataplane/types';
import type { HttpGetReport } from './e2e/http-get';
import { kernelTestSkip } from './support/kernel-env';
import { e2eScriptIn, waitFor } from './support/e2e-script';

const PREFIX = 'xlbp6';
const PIN_DIR = `/sys/fs/bpf/${PREFIX}`;
const VIP = '198.18.100.1';
const API_PORT_IN_LB = 8790;
/** Host port of the lab's API forward (this helper's range: 28900-28999). */
const FORWARD_PORT = 28901;
const ADMIN_TOKEN = 'xlbp6-e2e-admin-token-0123456789';
const NARROW_MTU = 1280;

const skipReason = kernelTestSkip('the IPv4 path MTU e2e test');
const topology = labTopology({ prefix: PREFIX, backends: 2, mode: 'nat' });

let tmpDir = '';
let daemon: SpawnedDaemon | null = null;

/** Runs an e2e helper script in the client namespace, bounded by 60 s; its last stdout line is JSON. */
const inClient = <T>(name: string, args: string[]) => e2eScriptIn<T>(topology.client.netns, name, args, 60_000);

/** IcmpInDestUnreachs of a namespace (/proc/net/snmp): ICMP destination unreachable messages it received. */
function destUnreachsIn(netns: string): number {
  const lines = execIn(netns, ['cat', '/proc/net/snmp']).stdout.split('\n').filter((l) => l.startsWith('Icmp: '));
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/);
  return Number(values[names.indexOf('InDestUnreachs')]);
}

/** The path MTU the kernel holds for an IPv4 address (`ip route get`), if lowered. */
function cachedMtu(netns: string, address: string): number | null {
  const m = /\bmtu (\d+)/.exec(ipIn(netns, ['route', 'get', address]).stdout);
  return m ? Number(m[1]) : null;
}

/** Packets counted under reason `reason` with any of `actions`, as reported from the pinned maps. */
function verdictPackets(reason: (typeof REASONS)[number], actions: Array<(typeof XDP_ACTIONS)[number]>): number {
  const rows = pinnedVerdictRows(PIN_DIR);
  return actions.reduce((sum, a) => sum + (rows.get(REASONS.indexOf(reason) * LB.ACTION_SLOTS + XDP_ACTIONS.indexOf(a))?.packets ?? 0), 0);
}

async function cleanup(): Promise<void> {
  if (daemon && daemon.child.exitCode === null && daemon.child.signalCode === null) await daemon.kill();
  daemon = null;
  await labDown(PREFIX).catch(() => undefined);
  fs.rmSync(PIN_DIR, { recursive: true, force: true });
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
}

describe('IPv4 path MTU through a NAT VIP, narrow backend side (lab xlbp6, daemon, real TCP)', { skip: skipReason, concurrency: false }, () => {
  before(async () => {
    await cleanup();
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-`));
    const configPath = path.join(tmpDir, 'xdplb.yaml');
    fs.writeFileSync(configPath, YAML.stringify({
      interfaces: [{ name: topology.lb.clientLeg, mode: 'native' }, { name: topology.lb.backendLeg, mode: 'native' }],
      sampling: { rate: 0 },
      api: { listen: `127.0.0.1:${API_PORT_IN_LB}` },
      tokens: [{ name: 'pmtu-admin', role: 'admin', token: ADMIN_TOKEN }],
      services: [{ name: 'web4', vip: VIP, port: 80, protocol: 'tcp', mode: 'nat',
        backends: topology.backends.map((b) => ({ address: b.address, port: 8080, weight: 1 })) }],
    }));
    await labUp({ prefix: PREFIX, backends: 2, mode: 'nat', forwardPort: FORWARD_PORT, apiPort: API_PORT_IN_LB });
    daemon = spawnDaemon({ configPath, pinDir: PIN_DIR, netns: topology.lb.netns });
    await daemon.ready(30_000);
    const api = new ApiClient({ baseUrl: `http://127.0.0.1:${FORWARD_PORT}`, token: ADMIN_TOKEN });
    await waitFor('the service through the API', 10_000, async () => (await api.getService('web4').then((s) => s.backends.length === 2, () => false)) || null);
  });
  after(cleanup);

  test('the client\'s DF segments too big for the backend side: fragmentation needed from the VIP reaches the client, a 1 MB upload completes', async () => {
    // (The bridge follows its ports' smallest MTU by itself.)
    const links: Array<[string, string]> = [[topology.lb.netns, topology.lb.backendLeg],
      ...topology.switch.interfaces.map((i): [string, string] => [topology.switch.netns, i.name]),
      ...topology.backends.map((b): [string, string] => [b.netns, b.interfaces[0].name])];
    for (const [netns, ifname] of links) ipIn(netns, ['link', 'set', ifname, 'mtu', String(NARROW_MTU)]);
    // The backends advertise a 1440-byte MSS (as hosts on a 1500-byte LAN behind a narrower hop).
    for (const b of topology.backends) ipIn(b.netns, ['route', 'replace', 'default', 'via', b.gateway!, 'advmss', '1440']);
    ipIn(topology.client.netns, ['route', 'flush', 'cache'], { allowFail: true });
    const gotBefore = destUnreachsIn(topology.client.netns);
    const answeredBefore = verdictPackets('too_big', ['tx', 'redirect']);
    const up = await inClient<HttpGetReport>('http-get', [JSON.stringify({ url: `http://${VIP}:80/sink`, timeoutMs: 15_000, postBytes: 1_000_000 })]);
    const answered = verdictPackets('too_big', ['tx', 'redirect']) - answeredBefore;
    assert.equal(up.error, undefined, `the upload failed: ${JSON.stringify(up)}; the program answered ${answered} too big, `
      + `the client received ${destUnreachsIn(topology.client.netns) - gotBefore} destination unreachable`);
    assert.equal(up.status, 200);
    assert.match(up.body, / 1000000\n$/);
    assert.ok(answered > 0, 'the program answered no too-big packet: the test did not exercise PMTU discovery');
    assert.ok(destUnreachsIn(topology.client.netns) > gotBefore, 'the client received no fragmentation needed');
    assert.equal(cachedMtu(topology.client.netns, VIP), NARROW_MTU, 'the client holds no lowered path MTU toward the VIP');
  });
});
