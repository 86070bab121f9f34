/**
 * The lab for real: namespaces, veths, a bridge, backend servers, the host forwarder, all with
 * the test prefix `xlbt-lab` so a running demo (`xlb`) is never touched.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { labUp, labDown, labStatus, readLabState, labExecCommand } from '../src/lab/lab';
import { TEST_LAB_PREFIX as P, labTopology, DEFAULT_DSR_VIPS, DEFAULT_DSR_VIPS6 } from '../src/lab/topology';
import { execIn, ipIn, listNetns, netnsExists, pidAlive, pidCommandLine, processGone, readSysctlIn, run, setOffload, sysctlIn } from '../src/lab/netns';
import { runTraffic } from '../src/lab/traffic';
import { nodeScriptCommand, repoRoot } from '../src/lab/paths';
import { readmeCommands } from './support/readme';
import { freePort } from './support/kernel-env';

const isRoot = process.getuid?.() === 0;
const FORWARD_PORT = 18731;
const DUMMY_API_PORT = 18732;
// Decoys the lab must leave alone: inside its prefix space but no lab host, and a lab host
// name under a longer prefix.
const DECOYS = [`${P}-decoy`, `${P}2-lb`];

/**
 * The namespaces this test may judge: other engineers' labs come and go while it runs, so only
 * names in this test's own space (the prefix and the decoys) are compared.
 */
function ourNetns(): string[] {
  return listNetns().filter((n) => n.startsWith(P)).sort();
}

function curlIn(netns: string, url: string): { status: number; body: string; header: string } {
  const out = execIn(netns, ['curl', '-s', '-m', '3', '-D', '-', url], { allowFail: true });
  const [head, ...rest] = out.stdout.split('\r\n\r\n');
  return { status: out.status, body: rest.join('\r\n\r\n'), header: head ?? '' };
}

const LOCK = `/run/xdplb-lab/.${P}.lock`;

/**
 * Waits until no other run of this file holds the test prefix (two engineers running the suite at
 * once would take each other's lab down). A lock whose pid is gone is stale and taken over.
 */
async function lockTestPrefix(): Promise<void> {
  mkdirSync('/run/xdplb-lab', { recursive: true });
  for (let waited = 0; ; waited += 500) {
    try {
      mkdirSync(LOCK);
      writeFileSync(`${LOCK}/pid`, String(process.pid));
      return;
    } catch {
      let owner = 0;
      try { owner = Number(readFileSync(`${LOCK}/pid`, 'utf8')); } catch { /* being written */ }
      if (owner && owner !== process.pid && processGone(owner)) rmSync(LOCK, { recursive: true, force: true });
      if (waited > 180_000) throw new Error(`${LOCK} held by pid ${owner} for 3 minutes`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

function unlockTestPrefix(): void {
  try {
    if (Number(readFileSync(`${LOCK}/pid`, 'utf8')) === process.pid) rmSync(LOCK, { recursive: true, force: true });
  } catch { /* not ours */ }
}

/**
 * What the lab must never change in the host namespace: its sysctls that matter here, and no
 * link or route on a link of the lab's may appear there. (Routes are judged by device, not by
 * address: other engineers' tests may briefly own 198.18/15 routes on the host.)
 */
function hostNetworkView() {
  const links = JSON.parse(run('ip', ['-j', 'link', 'show']).stdout) as Array<{ ifname: string }>;
  const routes = JSON.parse(run('ip', ['-j', 'route', 'show', 'table', 'all']).stdout) as Array<{ dst: string; dev?: string }>;
  return {
    ipForward: readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(),
    ipv6Forward: readFileSync('/proc/sys/net/ipv6/conf/all/forwarding', 'utf8').trim(),
    rpFilter: readFileSync('/proc/sys/net/ipv4/conf/all/rp_filter', 'utf8').trim(),
    labLinks: links.map((l) => l.ifname).filter((n) => n.startsWith(P)),
    labRoutes: routes.filter((r) => (r.dev ?? '').startsWith(P)).map((r) => r.dst),
  };
}

function routes(netns: string): string {
  return ipIn(netns, ['route', 'show']).stdout;
}

function loVips(netns: string, family: 'inet' | 'inet6' = 'inet'): string[] {
  const out = JSON.parse(ipIn(netns, ['-j', 'addr', 'show', 'dev', 'lo']).stdout) as Array<{ addr_info: Array<{ family: string; local: string }> }>;
  return out[0].addr_info.filter((a) => a.family === family && (a.local.startsWith('198.18.100.') || a.local.startsWith('2001:2:0:100:')))
    .map((a) => a.local).sort();
}

function routes6(netns: string): string {
  return ipIn(netns, ['-6', 'route', 'show']).stdout;
}

/** IPv6 addresses of the lab range on an interface that are not (yet) usable: tentative or dadfailed. */
function unusable6(netns: string, ifname: string): string[] {
  const out = JSON.parse(ipIn(netns, ['-j', 'addr', 'show', 'dev', ifname]).stdout) as Array<{ addr_info: Array<{ family: string; local: string; tentative?: boolean; dadfailed?: boolean }> }>;
  return out[0].addr_info.filter((a) => a.family === 'inet6' && (a.tentative || a.dadfailed)).map((a) => a.local);
}

describe('lab (network namespaces)', { skip: isRoot ? false : 'needs root for network namespaces' }, () => {
  let netnsBefore: string[] = [];
  let hostBefore: ReturnType<typeof hostNetworkView>;
  let dummyPid: number | undefined;

  before(async () => {
    await lockTestPrefix();
    await labDown(P); // a leftover from an interrupted run
    for (const decoy of DECOYS) {
      if (netnsExists(decoy)) run('ip', ['netns', 'del', decoy]);
      run('ip', ['netns', 'add', decoy]);
    }
    netnsBefore = ourNetns();
    hostBefore = hostNetworkView();
  });

  after(async () => {
    if (dummyPid && pidAlive(dummyPid)) process.kill(dummyPid, 'SIGKILL');
    await labDown(P);
    for (const decoy of DECOYS) if (netnsExists(decoy)) run('ip', ['netns', 'del', decoy]);
    unlockTestPrefix();
  });

  test('up creates the hosts, and status reports them', async () => {
    const status = await labUp({ prefix: P, backends: 2, mode: 'nat' });
    assert.deepEqual(status.problems, []);
    assert.equal(status.up, true);
    const topology = labTopology({ prefix: P, backends: 2 });
    for (const host of [topology.client, topology.lb, topology.switch, ...topology.backends]) assert.ok(netnsExists(host.netns), host.netns);
    assert.deepEqual(status.hosts.map((h) => h.host), ['client', 'lb', 'sw', 'be1', 'be2']);
    const client = status.hosts.find((h) => h.host === 'client')!;
    assert.deepEqual(client.interfaces[0].addresses, ['198.18.0.2/24', '2001:2::2/64']);
    assert.deepEqual(client.interfaces[0].offloads, { gro: true, txChecksum: false });
    const lb = status.hosts.find((h) => h.host === 'lb')!;
    assert.deepEqual(lb.interfaces.map((i) => i.addresses), [['198.18.0.1/24', '2001:2::1/64'], ['198.18.1.1/24', '2001:2:0:1::1/64']]);
    assert.deepEqual(status.lbXdp, []);
    for (const be of status.hosts.filter((h) => h.host.startsWith('be'))) {
      assert.equal(be.server?.alive, true, `${be.host} server`);
    }
    assert.deepEqual(ourNetns(), [...netnsBefore, ...topology.backends.map((b) => b.netns), topology.client.netns,
      topology.lb.netns, topology.switch.netns].sort());
  });

  test('up twice is harmless: same servers, same namespaces, still up', async () => {
    const pids = Object.values(readLabState(P)!.servers).map((s) => s.pid);
    const netns = ourNetns();
    const status = await labUp({ prefix: P, backends: 2, mode: 'nat' });
    assert.equal(status.up, true, status.problems.join('; '));
    assert.deepEqual(Object.values(readLabState(P)!.servers).map((s) => s.pid), pids);
    assert.deepEqual(ourNetns(), netns);
  });

  test('up repairs a missing link, a dead server and a lost offload setting', async () => {
    ipIn(`${P}-sw`, ['link', 'del', `${P}-sb2`]); // takes the backend's end with it
    const be1 = readLabState(P)!.servers.be1.pid;
    process.kill(be1, 'SIGKILL');
    setOffload(`${P}-sw`, `${P}-slb`, 'gro', false);
    // be2's namespace deleted and re-created empty: its (live) server is left in the old one.
    run('ip', ['netns', 'del', `${P}-be2`]);
    run('ip', ['netns', 'add', `${P}-be2`]);
    const be2 = readLabState(P)!.servers.be2.pid;
    const broken = labStatus(P);
    assert.equal(broken.up, false);
    assert.ok(broken.problems.some((p) => p.includes(`gro is off on ${P}-slb`)), broken.problems.join('; '));
    assert.ok(broken.problems.some((p) => p.includes('backend server be1 is not running')), broken.problems.join('; '));
    assert.ok(broken.problems.some((p) => p.includes(`${P}-b2 is missing`)), broken.problems.join('; '));
    assert.ok(broken.problems.some((p) => p.includes(`backend server be2 runs outside ${P}-be2`)), broken.problems.join('; '));
    const status = await labUp({ prefix: P, backends: 2, mode: 'nat' });
    assert.equal(status.up, true, status.problems.join('; '));
    assert.notEqual(readLabState(P)!.servers.be1.pid, be1);
    assert.notEqual(readLabState(P)!.servers.be2.pid, be2);
    assert.ok(processGone(be2), 'the stranded be2 server was not stopped');
    assert.equal(curlIn(`${P}-client`, 'http://198.18.1.12:8080/').body, 'be2\n');
  });

  test('the client reaches every backend\'s HTTP server and UDP echo directly', async () => {
    for (const [name, address] of [['be1', '198.18.1.11'], ['be2', '198.18.1.12']]) {
      for (const port of [8080, 80]) {
        const res = curlIn(`${P}-client`, `http://${address}:${port}/`);
        assert.equal(res.status, 0, `curl ${address}:${port}`);
        assert.equal(res.body, `${name}\n`);
        assert.match(res.header, new RegExp(`^X-Backend: ${name}$`, 'im'));
      }
      const udp = await runTraffic({ prefix: P, kind: 'udp', target: `${address}:5300`, durationSec: 0.5, rps: 20 });
      assert.ok(udp.ok > 0 && udp.ok === udp.sent, JSON.stringify(udp));
      assert.deepEqual(Object.keys(udp.byBackend), [name]);
    }
    const httpRun = await runTraffic({ prefix: P, kind: 'http', target: 'http://198.18.1.11:8080/slow?ms=50', durationSec: 0.5, rps: 20 });
    assert.equal(httpRun.ok, httpRun.sent);
    assert.ok(httpRun.latencyMs.p50! >= 50);
  });

  test('IPv6: the client reaches every backend\'s HTTP server and UDP echo at once (no DAD wait), and back', async () => {
    // Taken down and up again right here: the addresses must be usable the moment `up` returns.
    await labDown(P);
    const status = await labUp({ prefix: P, backends: 2, mode: 'nat' });
    assert.equal(status.up, true, status.problems.join('; '));
    for (const [name, address] of [['be1', '2001:2:0:1::11'], ['be2', '2001:2:0:1::12']]) {
      for (const port of [8080, 80]) {
        const res = curlIn(`${P}-client`, `http://[${address}]:${port}/`);
        assert.equal(res.status, 0, `curl [${address}]:${port}`);
        assert.equal(res.body, `${name}\n`);
      }
      const udp = await runTraffic({ prefix: P, kind: 'udp', target: `[${address}]:5300`, durationSec: 0.5, rps: 20 });
      assert.ok(udp.ok > 0 && udp.ok === udp.sent, JSON.stringify(udp));
      assert.deepEqual(Object.keys(udp.byBackend), [name]);
    }
    for (const [netns, ifname] of [[`${P}-client`, `${P}-c0`], [`${P}-lb`, `${P}-lb0`], [`${P}-lb`, `${P}-lb1`], [`${P}-be1`, `${P}-b1`]]) {
      assert.deepEqual(unusable6(netns, ifname), [], `${ifname} has tentative addresses`);
    }
  });

  test('status reports a lab IPv6 address that is not usable yet (tentative: DAD running)', () => {
    // DAD back on for one extra address, added the way a stray tool would (without nodad).
    sysctlIn(`${P}-client`, `net.ipv6.conf.${P}-c0.accept_dad`, 1);
    ipIn(`${P}-client`, ['addr', 'add', '2001:2::99/64', 'dev', `${P}-c0`]);
    try {
      const status = labStatus(P);
      assert.ok(status.problems.some((p) => p.includes(`2001:2::99 on ${P}-c0 in ${P}-client is tentative`)), status.problems.join('; '));
    } finally {
      ipIn(`${P}-client`, ['addr', 'del', '2001:2::99/64', 'dev', `${P}-c0`]);
      sysctlIn(`${P}-client`, `net.ipv6.conf.${P}-c0.accept_dad`, 0);
    }
    assert.equal(labStatus(P).up, true, labStatus(P).problems.join('; '));
  });

  test('NAT mode: routes, forwarding and sysctls as documented, no loopback VIPs', () => {
    assert.match(routes(`${P}-client`), /^default via 198\.18\.0\.1 /m);
    assert.match(routes(`${P}-client`), /^198\.18\.100\.0\/24 via 198\.18\.0\.1 /m);
    for (const be of ['be1', 'be2']) {
      assert.match(routes(`${P}-${be}`), /^default via 198\.18\.1\.1 /m);
      assert.deepEqual(loVips(`${P}-${be}`), []);
      assert.equal(readSysctlIn(`${P}-${be}`, 'net.ipv4.conf.all.arp_ignore'), '0');
    }
    assert.equal(readSysctlIn(`${P}-lb`, 'net.ipv4.ip_forward'), '1');
    assert.equal(readSysctlIn(`${P}-client`, 'net.ipv4.ip_forward'), '0');
    assert.equal(readSysctlIn(`${P}-lb`, 'net.ipv4.conf.all.rp_filter'), '0');
    assert.match(ipIn(`${P}-lb`, ['neigh', 'show', '198.18.1.11']).stdout, /PERMANENT/);
    // IPv6: the same picture, forwarding only in the lb, static neighbours, DAD off.
    assert.match(routes6(`${P}-client`), /^default via 2001:2::1 /m);
    assert.match(routes6(`${P}-client`), /^2001:2:0:100::\/64 via 2001:2::1 /m);
    for (const be of ['be1', 'be2']) {
      assert.match(routes6(`${P}-${be}`), /^default via 2001:2:0:1::1 /m);
      assert.deepEqual(loVips(`${P}-${be}`, 'inet6'), []);
    }
    assert.equal(readSysctlIn(`${P}-lb`, 'net.ipv6.conf.all.forwarding'), '1');
    for (const host of ['client', 'sw', 'be1', 'be2']) assert.equal(readSysctlIn(`${P}-${host}`, 'net.ipv6.conf.all.forwarding'), '0', host);
    assert.equal(readSysctlIn(`${P}-client`, `net.ipv6.conf.${P}-c0.accept_dad`), '0');
    for (const [netns, address] of [['lb', '2001:2::2'], ['lb', '2001:2:0:1::11'], ['lb', '2001:2:0:1::12'], ['client', '2001:2::1'], ['be1', '2001:2:0:1::1']]) {
      assert.match(ipIn(`${P}-${netns}`, ['-6', 'neigh', 'show', address]).stdout, /PERMANENT/, `${address} in ${netns}`);
    }
  });

  test('DSR mode: VIPs on the backends\' lo, arp_ignore=1/arp_announce=2, UDP echo answers from the VIP', async () => {
    const before = readLabState(P)!.servers.be1.pid;
    const status = await labUp({ prefix: P, backends: 2, mode: 'dsr' });
    assert.equal(status.up, true, status.problems.join('; '));
    assert.notEqual(readLabState(P)!.servers.be1.pid, before, 'server restarted to bind the VIPs');
    for (const be of ['be1', 'be2']) {
      assert.deepEqual(loVips(`${P}-${be}`), [...DEFAULT_DSR_VIPS].sort());
      assert.deepEqual(loVips(`${P}-${be}`, 'inet6'), [...DEFAULT_DSR_VIPS6].sort());
      assert.equal(readSysctlIn(`${P}-${be}`, 'net.ipv4.conf.all.arp_ignore'), '1');
      assert.equal(readSysctlIn(`${P}-${be}`, 'net.ipv4.conf.all.arp_announce'), '2');
      assert.match(routes(`${P}-${be}`), /^default via 198\.18\.1\.1 /m);
    }
    // From inside be1 (no balancer yet): a datagram to the VIP is answered with the VIP as source.
    const probe = execIn(`${P}-be1`, [process.execPath, '-e', `
      const s = require('dgram').createSocket('udp4');
      s.on('message', (m, r) => { console.log(r.address + ' ' + m); s.close(); });
      s.send('x', 5300, '${DEFAULT_DSR_VIPS[1]}'); setTimeout(() => process.exit(3), 2000).unref();`]);
    assert.equal(probe.stdout.trim(), `${DEFAULT_DSR_VIPS[1]} be1:x`);
    const probe6 = execIn(`${P}-be1`, [process.execPath, '-e', `
      const s = require('dgram').createSocket('udp6');
      s.on('message', (m, r) => { console.log(r.address + ' ' + m); s.close(); });
      s.send('x', 5300, '${DEFAULT_DSR_VIPS6[1]}'); setTimeout(() => process.exit(3), 2000).unref();`]);
    assert.equal(probe6.stdout.trim(), `${DEFAULT_DSR_VIPS6[1]} be1:x`);
  });

  test('lab exec runs in the host and passes the exit code through', () => {
    const argv = labExecCommand('be2', ['sh', '-c', 'ip -br addr show dev lo >/dev/null; exit 7'], P);
    assert.deepEqual(argv.slice(0, 4), ['ip', 'netns', 'exec', `${P}-be2`]);
    const r = spawnSync(argv[0], argv.slice(1));
    assert.equal(r.status, 7);
    assert.throws(() => labExecCommand('be9', ['true'], P), /no lab host "be9"/);
  });

  test('the CLI: status --json, exec passes the exit code, bad input is refused', () => {
    const cli = (...args: string[]) => {
      const argv = [...nodeScriptCommand('cli'), 'lab', ...args];
      return spawnSync(argv[0], argv.slice(1), { cwd: repoRoot(), encoding: 'utf8' });
    };
    const status = cli('status', '--prefix', P, '--json');
    assert.equal(status.status, 0, status.stderr);
    const parsed = JSON.parse(status.stdout) as { up: boolean; mode: string; hosts: Array<{ host: string }> };
    assert.equal(parsed.up, true);
    assert.equal(parsed.mode, 'dsr');
    assert.deepEqual(parsed.hosts.map((h) => h.host), ['client', 'lb', 'sw', 'be1', 'be2']);
    const exec = cli('exec', '--prefix', P, 'client', '--', 'sh', '-c', 'ip -br addr show dev xlbt-lab-c0; exit 5');
    assert.equal(exec.status, 5);
    assert.match(exec.stdout, /198\.18\.0\.2\/24/);
    const bad = cli('up', '--prefix', P, '--backends', '0');
    assert.equal(bad.status, 1, 'standalone entry: commander exits 1 on a usage error');
    assert.match(bad.stderr, /--backends must be an integer in 1\.\.50/);
  });

  test('the host forwarder reaches a server listening on 127.0.0.1 inside the lb namespace', async () => {
    const dummy = spawn('ip', ['netns', 'exec', `${P}-lb`, process.execPath, '-e',
      `require('http').createServer((q, s) => s.end('inside lb\\n')).listen(${DUMMY_API_PORT}, '127.0.0.1', () => console.log('listening'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] });
    dummyPid = dummy.pid;
    await new Promise<void>((resolve) => dummy.stdout!.once('data', () => resolve()));
    const status = await labUp({ prefix: P, backends: 2, mode: 'dsr', forwardPort: FORWARD_PORT, apiPort: DUMMY_API_PORT });
    assert.equal(status.forward?.alive, true);
    const body = await new Promise<string>((resolve, reject) => {
      http.get(`http://127.0.0.1:${FORWARD_PORT}/`, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => { b += d.toString(); });
        res.on('end', () => resolve(b));
      }).on('error', reject);
    });
    assert.equal(body, 'inside lb\n');
    assert.deepEqual(hostNetworkView(), hostBefore, 'the lab (with its forwarder) changed the host namespace');
  });

  test('down removes exactly the lab\'s namespaces and stops exactly the recorded pids', async () => {
    const state = readLabState(P)!;
    const recorded = [...Object.values(state.servers).map((s) => s.pid), state.forward!.pid].sort();
    const result = await labDown(P);
    assert.deepEqual([...result.stoppedPids].sort(), recorded);
    for (const pid of recorded) assert.ok(processGone(pid), `pid ${pid} still alive`);
    // The process the lab did not start is reported and left alone.
    assert.ok(dummyPid && pidAlive(dummyPid), 'foreign process was killed');
    assert.deepEqual(result.foreignPids.map((f) => f.pid), [dummyPid]);
    assert.deepEqual(ourNetns(), netnsBefore);
    assert.deepEqual(hostNetworkView(), hostBefore, 'the host namespace changed');
    for (const decoy of DECOYS) assert.ok(netnsExists(decoy), `the decoy ${decoy} was touched`);
    assert.equal(readLabState(P), undefined);
    assert.equal(labStatus(P).up, false);
    const again = await labDown(P);
    assert.deepEqual(again, { removedNamespaces: [], stoppedPids: [], foreignPids: [] });
  });
});

/** Why the demo cannot run here (it needs the built daemon, data plane and addon), or false. */
function whyNoDemo(): string | false {
  if (!isRoot) return 'needs root for network namespaces and XDP';
  const missing = ['bpf/lb.o', 'dist/src/cli.js', 'dist/src/lab/cli.js'].filter((f) => !existsSync(path.join(repoRoot(), f)));
  if (missing.length === 0) return false;
  const why = `not built: ${missing.join(', ')} (run bash scripts/build.sh)`;
  if (process.env.CI === 'true') throw new Error(why); // CI builds first: a missing build is a failure
  return why;
}


function request(url: string, method = 'GET', body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: body ? { 'content-type': 'application/json' } : {}, timeout: 5000 }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`timeout ${url}`)));
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

describe('demo (the README command, with its own prefix and port)', { skip: whyNoDemo() }, () => {
  test('serves the dashboard, balances web and web6 (NAT, 1:1:2, IPv4 and IPv6) and dns (DSR), and Ctrl-C removes everything it made', async (t) => {
    await lockTestPrefix(); // released by the clean-up below (or found stale when this process ends)
    await labDown(P);
    const port = await freePort();
    // Own process group (detached), like a terminal's foreground job: SIGINT to the group is Ctrl-C.
    // The README's command, verbatim (through npm, as a user types it).
    const demo = spawn('bash', ['-c', readmeCommands().demo], {
      cwd: repoRoot(), detached: true, stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, XDPLB_DEMO_SKIP_BUILD: '1', npm_config_update_notifier: 'false', XDPLB_DEMO_PREFIX: P, XDPLB_DEMO_PORT: String(port), XDPLB_DEMO_MAX_SECONDS: '120' },
    });
    let output = '';
    demo.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    demo.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    // npm dies of the SIGINT itself (a shell reports that as 130, like bash's own exit code 130).
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code, signal) => resolve(signal === 'SIGINT' ? 130 : code)));
    t.after(async () => {
      if (demo.exitCode === null) {
        try { process.kill(-demo.pid!, 'SIGTERM'); } catch { /* gone */ }
        await exited;
      }
      await labDown(P);
      unlockTestPrefix();
    });

    const deadline = Date.now() + 90_000;
    while (!output.includes('demo is running')) {
      assert.ok(demo.exitCode === null, `demo exited early:\n${output}`);
      assert.ok(Date.now() < deadline, `demo not running after 90 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.match(output, new RegExp(`http://127\\.0\\.0\\.1:${port}/`));
    assert.match(output, /admin \/ xdplb-demo-admin/);

    assert.equal((await request(`http://127.0.0.1:${port}/healthz`)).status, 200);
    const login = await request(`http://127.0.0.1:${port}/api/v1/login`, 'POST', { username: 'admin', password: 'xdplb-demo-admin' });
    assert.equal(login.status, 200, login.body);
    const viewer = await request(`http://127.0.0.1:${port}/api/v1/login`, 'POST', { username: 'viewer', password: 'xdplb-demo-viewer' });
    assert.equal(viewer.status, 200, viewer.body);

    // Through the VIPs, i.e. through the XDP program: new connection (flow) per request.
    const web = await runTraffic({ prefix: P, kind: 'http', target: 'http://198.18.100.1/', durationSec: 2, rps: 150 });
    assert.equal(web.ok, web.sent, JSON.stringify(web));
    const { be1 = 0, be2 = 0, be3 = 0 } = web.byBackend;
    assert.ok(be1 > 0 && be2 > 0, JSON.stringify(web.byBackend));
    assert.ok(be3 > be1 && be3 > be2, `weight 2 backend should get the most: ${JSON.stringify(web.byBackend)}`);
    // web6: the same service over IPv6 (NAT), 1:1:2 as well.
    const web6 = await runTraffic({ prefix: P, kind: 'http', target: 'http://[2001:2:0:100::1]/', durationSec: 2, rps: 150 });
    assert.equal(web6.ok, web6.sent, JSON.stringify(web6));
    const six = { be1: 0, be2: 0, be3: 0, ...web6.byBackend };
    assert.ok(six.be1 > 0 && six.be2 > 0, JSON.stringify(web6.byBackend));
    assert.ok(six.be3 > six.be1 && six.be3 > six.be2, `weight 2 backend should get the most over IPv6: ${JSON.stringify(web6.byBackend)}`);
    const dns = await runTraffic({ prefix: P, kind: 'udp', target: '198.18.100.2:5300', durationSec: 1, rps: 100 });
    assert.equal(dns.ok, dns.sent, JSON.stringify(dns));
    assert.ok(Object.keys(dns.byBackend).length >= 2, JSON.stringify(dns.byBackend));

    const state = readLabState(P)!;
    const labPids = [...Object.values(state.servers).map((s) => s.pid), state.forward!.pid];
    const lbPids: number[] = spawnSync('ip', ['netns', 'pids', `${P}-lb`], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean).map(Number);
    assert.ok(lbPids.length >= 2, 'daemon and forwarder in the lb namespace');

    process.kill(-demo.pid!, 'SIGINT');
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 40_000).unref())]);
    assert.equal(code, 130, output);
    const commands = new Map(lbPids.map((pid) => [pid, pidCommandLine(pid)]));
    for (const pid of [...labPids, ...lbPids]) {
      // The daemon's parent (the demo's bash) is gone: give init a moment to reap it.
      for (let i = 0; i < 30 && !processGone(pid); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(processGone(pid), `pid ${pid} (${commands.get(pid) ?? 'lab'}) survived the demo`);
    }
    assert.deepEqual(listNetns().filter((n) => n.startsWith(`${P}-`) && !DECOYS.includes(n)), []);
    assert.equal(existsSync(`/sys/fs/bpf/${P}-demo`), false, 'pins left behind');
    await assert.rejects(request(`http://127.0.0.1:${port}/healthz`));
  });
});
