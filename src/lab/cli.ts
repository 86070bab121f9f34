/**
 * `xdplb lab ...`: up, down, status, exec, traffic, daemon-command. Registered into the main
 * program by src/cli/program.ts; also runnable alone (`node dist/src/lab/cli.js lab up`), which
 * the demo uses so it does not depend on the rest of the CLI.
 */
import { spawnSync } from 'node:child_process';
import { Command, InvalidArgumentError, Option } from 'commander';
import { labUp, labDown, labStatus, labExec, formatLabStatus, daemonCommand } from './lab';
import { DEFAULT_LAB_PREFIX, DEFAULT_API_PORT, MAX_BACKENDS } from './topology';
import { startTraffic } from './traffic';
import { clusterUp, clusterDown, clusterStatus, formatClusterStatus, readClusterState, clusterDaemonCommand } from './cluster-lab';
import { isClusterNetns, MAX_NODES } from './cluster-topology';

function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}, got ${JSON.stringify(value)}`);
    return n;
  };
}

function positive(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got ${JSON.stringify(value)}`);
    return n;
  };
}

const prefixOption = () => new Option('--prefix <prefix>', 'lab name prefix (namespaces <prefix>-client, -lb, -sw, -beN)').default(DEFAULT_LAB_PREFIX);

/** Adds the `lab` verb group to a commander program. */
export function registerLabCommands(program: Command): void {
  const lab = program.command('lab').description('the network-namespace lab: client, lb, switch and backends on this machine');

  lab.command('up')
    .description('create or repair the lab (idempotent)')
    .addOption(prefixOption())
    .option('--backends <n>', `number of backends (1..${MAX_BACKENDS})`, intOption('--backends', 1, MAX_BACKENDS), 3)
    .addOption(new Option('--mode <mode>', 'nat, or dsr (nat + VIPs on the backends\' lo)').choices(['nat', 'dsr']).default('nat'))
    .option('--vips <list>', 'DSR loopback VIPs, comma separated (from 198.18.100.0/24 and 2001:2:0:100::/64)')
    .option('--forward-port <port>', 'forward host 127.0.0.1:<port> to the daemon API inside the lb namespace', intOption('--forward-port', 1, 65535))
    .option('--api-port <port>', 'the daemon API port inside the lb namespace', intOption('--api-port', 1, 65535), DEFAULT_API_PORT)
    .option('--no-peer-xdp', 'leave the peers of the lb legs without the xdp_pass program (GRO only, like a container host; XDP_TX from the lb then waits, see docs/lab.md)')
    .option('--json', 'print the status as JSON')
    .option('--nodes <n>', `the multi-node lab: client -> router (BIRD, ECMP) -> lb1..lbN -> switch -> backends (1..${MAX_NODES}; docs/lab.md)`, intOption('--nodes', 1, MAX_NODES))
    .option('--etcd <n>', 'with --nodes: etcd members on the backend LAN (0, 1 or 3)', intOption('--etcd', 0, 3), 0)
    .action(async (o: { prefix: string; backends: number; mode: 'nat' | 'dsr'; vips?: string; forwardPort?: number; apiPort: number; peerXdp: boolean; json?: boolean; nodes?: number; etcd: number }) => {
      if (o.nodes !== undefined) {
        if (o.forwardPort !== undefined || !o.peerXdp) {
          process.stderr.write('xdplb: usage: lab up --nodes: --forward-port and --no-peer-xdp apply to the single-node lab only\n');
          process.exitCode = 2;
          return;
        }
        const cs = await clusterUp({
          prefix: o.prefix, nodes: o.nodes, backends: o.backends, mode: o.mode, vips: o.vips?.split(',').filter(Boolean), etcd: o.etcd,
          log: o.json ? undefined : (line) => process.stderr.write(`lab: ${line}\n`),
        });
        process.stdout.write(o.json ? JSON.stringify(cs, null, 2) + '\n' : formatClusterStatus(cs) + '\n');
        if (!cs.up) process.exitCode = 1;
        return;
      }
      if (o.etcd !== 0) {
        process.stderr.write('xdplb: usage: lab up: --etcd needs --nodes\n');
        process.exitCode = 2;
        return;
      }
      if (readClusterState(o.prefix)) {
        process.stderr.write(`xdplb: lab up: a multi-node lab ${o.prefix} is up (lab up --nodes N repairs it; lab down --prefix ${o.prefix} removes it)\n`);
        process.exitCode = 1;
        return;
      }
      const status = await labUp({
        prefix: o.prefix, backends: o.backends, mode: o.mode, vips: o.vips?.split(',').filter(Boolean),
        forwardPort: o.forwardPort, apiPort: o.apiPort, peerXdp: o.peerXdp, log: o.json ? undefined : (line) => process.stderr.write(`lab: ${line}\n`),
      });
      process.stdout.write(o.json ? JSON.stringify(status, null, 2) + '\n' : formatLabStatus(status) + '\n');
      if (!status.up) process.exitCode = 1;
    });

  lab.command('down')
    .description('remove the lab: its namespaces and the processes it started, nothing else')
    .addOption(prefixOption())
    .option('--json', 'print the result as JSON')
    .action(async (o: { prefix: string; json?: boolean }) => {
      const result = readClusterState(o.prefix) ? await clusterDown(o.prefix) : await labDown(o.prefix);
      if (o.json) {
        process.stdout.write(JSON.stringify(result, null, 2) + '\n');
        return;
      }
      process.stdout.write(`lab ${o.prefix}: removed ${result.removedNamespaces.length ? result.removedNamespaces.join(', ') : 'nothing'}; stopped pids ${result.stoppedPids.join(', ') || 'none'}\n`);
      for (const f of result.foreignPids) {
        process.stderr.write(`lab: warning: pid ${f.pid} (${f.command}) was still in ${f.netns}; the lab did not start it and left it running\n`);
      }
    });

  lab.command('status')
    .description('namespaces, interfaces, addresses, server pids and XDP on the lb legs')
    .addOption(prefixOption())
    .option('--json', 'print the status as JSON')
    .action((o: { prefix: string; json?: boolean }) => {
      if (readClusterState(o.prefix)) {
        const cs = clusterStatus(o.prefix);
        process.stdout.write(o.json ? JSON.stringify(cs, null, 2) + '\n' : formatClusterStatus(cs) + '\n');
        if (!cs.up) process.exitCode = 1;
        return;
      }
      const status = labStatus(o.prefix);
      process.stdout.write(o.json ? JSON.stringify(status, null, 2) + '\n' : formatLabStatus(status) + '\n');
      if (!status.up) process.exitCode = 1;
    });

  lab.command('exec')
    .description('run a command in a lab host (client, lb, sw, be1..): lab exec client -- curl -s http://198.18.100.1/')
    .addOption(prefixOption())
    .argument('<host>', 'client, lb, sw or beN')
    .argument('<command...>', 'the command and its arguments (put -- before it)')
    .allowUnknownOption()
    .action((host: string, command: string[], o: { prefix: string }) => {
      if (readClusterState(o.prefix)) {
        const netns = `${o.prefix}-${host}`;
        if (!isClusterNetns(o.prefix, netns)) throw new Error(`no lab host ${JSON.stringify(host)} (client, router, sw, lbN, beN, etcdN)`);
        const r = spawnSync('ip', ['netns', 'exec', netns, ...command], { stdio: 'inherit' });
        process.exitCode = r.status ?? 1;
        return;
      }
      process.exitCode = labExec(host, command, o.prefix);
    });

  lab.command('traffic')
    .description('bounded traffic from the lab client; prints a JSON summary')
    .addOption(prefixOption())
    .addOption(new Option('--kind <kind>', 'http or udp').choices(['http', 'udp']).default('http'))
    .option('--target <target>', 'http://VIP[:port]/path (IPv6: http://[VIP]/) for http, VIP:port or [VIP6]:port for udp', 'http://198.18.100.1/')
    .option('--duration <seconds>', 'stop after this many seconds (<= 3600)', positive('--duration'), 10)
    .option('--rps <n>', 'requests per second', positive('--rps'), 20)
    .option('--keep-alive', 'http: reuse connections instead of one connection per request')
    .action(async (o: { prefix: string; kind: 'http' | 'udp'; target: string; duration: number; rps: number; keepAlive?: boolean }) => {
      const run = startTraffic({ prefix: o.prefix, kind: o.kind, target: o.target, durationSec: o.duration, rps: o.rps, keepAlive: o.keepAlive });
      // Ctrl-C or a TERM from the demo ends the child too, which still prints its summary.
      const stop = () => run.stop();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      const summary = await run.done;
      process.stdout.write(JSON.stringify(summary) + '\n');
      if (summary.ok === 0) process.exitCode = 1;
    });

  lab.command('daemon-command')
    .description('print the command line that starts the daemon inside the lb namespace')
    .addOption(prefixOption())
    .argument('[args...]', 'daemon arguments, e.g. -- --config demo/demo.yaml')
    .option('--node <k>', 'the multi-node lab: the command for lb node k', intOption('--node', 1, MAX_NODES))
    .allowUnknownOption()
    .action((args: string[], o: { prefix: string; node?: number }) => {
      process.stdout.write((o.node ? clusterDaemonCommand(args, o.prefix, o.node) : daemonCommand(args, o.prefix)).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ') + '\n');
    });
}

if (require.main === module) {
  const program = new Command('xdplb').description('xdplb lab (standalone entry)');
  registerLabCommands(program);
  program.parseAsync(process.argv).catch((err: Error) => {
    process.stderr.write(`xdplb: lab: ${err.message}\n`);
    process.exitCode = 1;
  });
}
