/**
 * `xdplb lab up --nodes N` through the CLI, for real: the router's BGP sessions wait for the
 * nodes, three etcd members come up healthy on the backend LAN (and one can be killed and
 * started again, for the etcd-failure tests), and `lab down` removes every namespace and stops
 * every pid it started. Prefix `xlbgl`.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { kernelTestSkip } from './support/kernel-env';
import { listNetns, processGone, run } from '../src/lab/netns';
import { readClusterState, startEtcdMember, stopEtcdMember, clusterDown } from '../src/lab/cluster-lab';
import { repoPath } from '../src/daemon/paths';

const P = 'xlbgl';
const skip = kernelTestSkip('cluster lab tests') || (existsSync('/usr/sbin/bird') && existsSync('/usr/bin/etcd') ? false : 'needs BIRD 2 and etcd');

function cli(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [repoPath('dist/src/cli.js'), 'lab', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
const ours = () => listNetns().filter((n) => n.startsWith(`${P}-`)).sort();

describe('lab up --nodes', { skip }, () => {
  after(async () => { if (readClusterState(P)) await clusterDown(P); });

  test('bad input: one clear line, nothing created', () => {
    for (const [args, message] of [[['--nodes', '5'], /--nodes must be an integer in 1\.\.4/], [['--nodes', '2', '--etcd', '2'], /etcd member count 2 must be 0, 1 or 3/],
      [['--etcd', '1'], /--etcd needs --nodes/], [['--nodes', '2', '--forward-port', '25999'], /single-node lab only/]] as Array<[string[], RegExp]>) {
      const r = cli(['up', '--prefix', P, ...args]);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, message);
    }
    assert.deepEqual(ours(), []);
  });

  test('2 nodes and 3 etcd members: up, status, exec, an etcd member killed and restarted, down removes everything', { timeout: 120_000 }, async () => {
    const up = cli(['up', '--prefix', P, '--nodes', '2', '--backends', '1', '--etcd', '3', '--json']);
    assert.equal(up.status, 0, up.stderr);
    const status = JSON.parse(up.stdout) as { up: boolean; router: { alive: boolean; sessions: Array<{ state: string }> }; etcd: Array<{ alive: boolean; url: string; pid: number }> };
    assert.equal(status.up, true, up.stdout);
    assert.equal(status.router.sessions.length, 2);
    assert.equal(status.etcd.length, 3);
    assert.deepEqual(ours(), ['client', 'router', 'sw', 'lb1', 'lb2', 'be1', 'etcd1', 'etcd2', 'etcd3'].map((h) => `${P}-${h}`).sort());
    assert.equal(run('ip', ['netns', 'exec', `${P}-router`, 'sysctl', '-n', 'net.ipv4.fib_multipath_hash_policy']).stdout.trim(), '1');
    // The nodes reach the whole etcd cluster across the backend LAN.
    const endpoints = status.etcd.map((e) => e.url).join(',');
    const health = run('ip', ['netns', 'exec', `${P}-lb1`, 'etcdctl', '--endpoints', endpoints, 'endpoint', 'health'], { allowFail: true, timeoutMs: 15_000 });
    assert.equal(health.status, 0, health.stderr);
    assert.equal((health.stdout + health.stderr).match(/is healthy/g)?.length, 3);
    // The single-node verbs do not mix with it.
    const single = cli(['up', '--prefix', P]);
    assert.equal(single.status, 1);
    assert.match(single.stderr, /a multi-node lab xlbgl is up/);
    const exec = spawnSync(process.execPath, [repoPath('dist/src/cli.js'), 'lab', 'exec', '--prefix', P, 'router', '--', 'ip', 'rule', 'show', 'pref', '100'], { encoding: 'utf8' });
    assert.match(exec.stdout, /lookup 100/);

    // An etcd member dies (kill -9) and comes back with its data.
    const victim = status.etcd[1].pid;
    await stopEtcdMember(P, 2, { kill: true });
    assert.ok(processGone(victim));
    const restarted = await startEtcdMember(P, 2);
    assert.notEqual(restarted.pid, victim);

    const pids = [...status.etcd.filter((_, i) => i !== 1).map((e) => e.pid), restarted.pid, readClusterState(P)!.router!.pid];
    const down = cli(['down', '--prefix', P, '--json']);
    assert.equal(down.status, 0, down.stderr);
    const result = JSON.parse(down.stdout) as { removedNamespaces: string[]; stoppedPids: number[]; foreignPids: unknown[] };
    assert.equal(result.removedNamespaces.length, 9);
    for (const pid of pids) assert.ok(result.stoppedPids.includes(pid), `pid ${pid} not stopped`);
    assert.deepEqual(result.foreignPids, []);
    assert.deepEqual(ours(), []);
    for (const pid of pids) assert.ok(processGone(pid));
  });
});
