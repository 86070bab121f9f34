/**
 * The `bench` verbs of the xdplb CLI (src/cli/program.ts loads registerBenchCommands when
 * this module is present). Each verb lives in its own module; this file only wires options.
 */
import type { Command } from 'commander';
import { formatProgBench, runProgBench } from './prog';
import { registerClusterCommand } from './cluster';
import { registerAllCommand, registerControlCommand, registerForwardCommand, registerHttpCommand } from './commands';

function parseCount(what: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, got "${value}"`);
    return n;
  };
}

/** Adds `bench` and its verbs to the program (others add more verbs to the same `bench`). */
export function registerBenchCommands(program: Command): void {
  const bench = program.commands.find((c) => c.name() === 'bench')
    ?? program.command('bench').description('benchmarks (run as root; each in its own xlbb-* namespace)');
  bench
    .command('prog')
    .description('per-packet cost of the XDP program via BPF_PROG_TEST_RUN, against the empty program, at 2 and 1000 backends: IPv4 and IPv6 ("v6 ...") NAT TCP/UDP, reverse NAT, DSR, ICMP echo; targets: NAT TCP <= 40 ns over empty, v6 NAT TCP <= 1.3x NAT TCP (over empty), 1000 backends <= 1.05x 2')
    .option('--json', 'print the result as JSON')
    .option('--calls <n>', 'test runs per measurement run', parseCount('--calls'), 100_000)
    .option('--runs <n>', 'measurement runs per case', parseCount('--runs'), 5)
    .option('--loads <n>', 'separate loads of every program, each measured in every run (a load\'s placement in memory moves its cost)', parseCount('--loads'), 3)
    .option('--cpu <n>', 'CPU to pin the runs to (default: the last one)', (v: string) => Number(v))
    .option('--no-flow-cache', 'measure with the flow-affinity cache off (pure Maglev)')
    .option('--baseline-object <path>', 'another build of bpf/lb.o (same map layout) measured in the same interleaved runs, IPv4 cases only, named "<case> [baseline]"')
    .action((opts: { json?: boolean; calls: number; runs: number; loads: number; cpu?: number; flowCache: boolean; baselineObject?: string }) => {
      const result = runProgBench({ calls: opts.calls, runs: opts.runs, loads: opts.loads, cpu: opts.cpu, flowCache: opts.flowCache, baselineObjectPath: opts.baselineObject });
      process.stdout.write(opts.json ? JSON.stringify(result, null, 2) + '\n' : formatProgBench(result) + '\n');
    });
  registerForwardCommand(bench);
  registerHttpCommand(bench);
  registerControlCommand(bench);
  registerAllCommand(bench);
  registerClusterCommand(bench);
}
