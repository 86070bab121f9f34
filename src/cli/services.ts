/** `xdplb service ...` and `xdplb backend ...`: the desired state through the API. */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { ServiceSpec, ServiceView, HealthCheckSpec, StateDiff } from '../domain/types';
import {
  withClientOptions, clientFrom, action, integerArg, parseBackendKey, parseBackendSpec, collect, backendKeyText, type ClientFlags,
} from './common';
import { UsageError, formatTable, percent, printJson } from './output';
import { formatDiff } from './state';
import { transitionLine } from './transitions';
import { HealthCheckSpecSchema, MAX_WEIGHT } from '../config/schema';
import { formatHostPort } from '../domain/address';

/** The health check defaults are the schema's (the API would fill in the same). */
const CHECK_DEFAULTS = Object.fromEntries((['intervalMs', 'timeoutMs', 'rise', 'fall'] as const)
  .map((k) => [k, (HealthCheckSpecSchema.properties[k] as unknown as { default: number }).default])) as Record<'intervalMs' | 'timeoutMs' | 'rise' | 'fall', number>;

/** ipvsadm-like listing: one line per service, one indented line per backend. */
export function formatServices(services: ServiceView[]): string {
  const rows: string[][] = [];
  for (const s of services) {
    const check = s.healthCheck ? `${s.healthCheck.type}${s.healthCheck.type === 'http' ? ' ' + (s.healthCheck.path ?? '/') : ''}` : '-';
    rows.push([s.protocol.toUpperCase(), formatHostPort(s.vip, s.port), s.mode, s.name, `table ${s.tableSize ?? '-'}`, `check ${check}`]);
    for (const b of s.backends) {
      const flags = [b.draining ? 'draining' : '', b.inTable ? '' : 'out-of-table',
        b.heldUntil ? `held-until-${new Date(b.heldUntil).toISOString().slice(11, 19)}` : '',
        b.rampWeight !== undefined ? `slow-start-w-${+b.rampWeight.toFixed(2)}` : ''].filter(Boolean).join(',') || '-';
      rows.push(['  ->', b.key, `w ${b.weight}`, b.health, percent(b.tableShare), flags]);
    }
  }
  const header = ['Prot', 'VIP:Port / -> Backend', 'Mode/Weight', 'Name/Health', 'Table/Share', 'Check/Flags'];
  const reasons = services.flatMap((s) => s.backends.filter((b) => b.healthReason).map((b) => `${s.name} ${b.key}: ${b.healthReason}`));
  return services.length ? [formatTable(header, rows), ...reasons].join('\n') : 'no services';
}

interface AddFlags extends ClientFlags {
  vip: string; port: number; proto: 'tcp' | 'udp'; mode: 'nat' | 'dsr';
  backend?: Array<{ address: string; port: number; weight: number }>; tableSize?: number;
  check?: 'tcp' | 'http'; checkPath?: string; checkPort?: number; checkStatus?: [number, number];
  checkInterval: number; checkTimeout: number; rise: number; fall: number;
  initialState?: 'up' | 'down'; slowStart?: number; checkReuseConnection?: boolean;
}

/** "200-299" or "204" -> [lo, hi]. @throws InvalidArgumentError on anything else. */
function parseStatusRange(value: string): [number, number] {
  const m = /^(\d{3})(?:-(\d{3}))?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`--check-status must be LO-HI like 200-399, got '${value}'`);
  return [Number(m[1]), Number(m[2] ?? m[1])];
}

function healthCheckFrom(flags: AddFlags): HealthCheckSpec | undefined {
  if (!flags.check) return undefined;
  const spec: HealthCheckSpec = {
    type: flags.check, intervalMs: flags.checkInterval, timeoutMs: flags.checkTimeout, rise: flags.rise, fall: flags.fall,
  };
  if (flags.checkPort !== undefined) spec.port = flags.checkPort;
  if (flags.initialState) spec.initialState = flags.initialState;
  if (flags.slowStart !== undefined) spec.slowStart = { durationMs: flags.slowStart };
  // Passed on for a tcp check too: the daemon refuses it with a one-line error naming the field.
  if (flags.checkReuseConnection !== undefined) spec.reuseConnection = flags.checkReuseConnection;
  if (flags.check === 'http') {
    spec.path = flags.checkPath ?? '/';
    if (flags.checkStatus) spec.expectStatus = flags.checkStatus;
  }
  return spec;
}

export function registerServiceCommands(program: Command): void {
  const service = program.command('service').description('list, show, add and delete services (VIP:port -> backends)');

  withClientOptions(service.command('list').description('list every service and its backends'))
    .action(action(async (flags: ClientFlags) => {
      const services = await clientFrom(flags).listServices();
      if (flags.json) printJson({ services }); else console.log(formatServices(services));
    }));

  withClientOptions(service.command('show').description('show one service').argument('<name>', 'service name'))
    .action(action(async (name: string, flags: ClientFlags) => {
      const client = clientFrom(flags);
      const svc = await client.getService(name);
      if (flags.json) { printJson(svc); return; }
      // The service's transition (moved Maglev slots), when the daemon reports them.
      const transition = await client.transition(name).catch(() => null);
      console.log(formatServices([svc]) + (transition ? `\n${transitionLine(transition)}` : ''));
    }));

  withClientOptions(service.command('add').description('create a service').argument('<name>', 'service name ([a-z0-9][a-z0-9_-]*)'))
    .requiredOption('--vip <address>', 'virtual IP address: IPv4 (198.18.100.1) or IPv6 (2001:2::100); one family per service')
    .requiredOption('--port <port>', 'virtual port (0 = every port)', integerArg('--port'))
    .addOption(new Option('--proto <proto>', 'protocol').choices(['tcp', 'udp']).default('tcp'))
    .addOption(new Option('--mode <mode>', 'forwarding mode: nat (rewrite to the backend) or dsr (direct server return)')
      .choices(['nat', 'dsr']).default('nat'))
    .option('--backend <addr:port[:weight]>', 'a backend, the VIP\'s family: 198.18.1.2:80[:w] or [2001:2::5]:80[:w] (repeatable; weight defaults to 1)', collect(parseBackendSpec))
    .option('--table-size <prime>', 'Maglev table size (prime; default from the config)', integerArg('--table-size'))
    .addOption(new Option('--check <type>', 'active health check').choices(['tcp', 'http']))
    .option('--check-path <path>', 'HTTP health check path (default /)')
    .option('--check-port <port>', 'probe this port instead of the backend port', integerArg('--check-port'))
    .option('--check-status <lo-hi>', 'HTTP status range counted as healthy (default 200-399)', parseStatusRange)
    .option('--check-interval <ms>', 'health check interval', integerArg('--check-interval'), CHECK_DEFAULTS.intervalMs)
    .option('--check-timeout <ms>', 'health check timeout', integerArg('--check-timeout'), CHECK_DEFAULTS.timeoutMs)
    .option('--rise <n>', 'successes in a row to mark a backend up', integerArg('--rise'), CHECK_DEFAULTS.rise)
    .option('--fall <n>', 'failures in a row to mark a backend down', integerArg('--fall'), CHECK_DEFAULTS.fall)
    .addOption(new Option('--initial-state <state>', 'a new backend before its first verdict: down ("checking", enters the table after --rise successes; default) or up (enters at once)').choices(['up', 'down']))
    .option('--slow-start <ms>', 'a backend coming up ramps its weight over this time (4 steps; default off)', integerArg('--slow-start'))
    .option('--check-reuse-connection', 'http checks: keep each backend\'s connection open between probes (keep-alive; the default)')
    .option('--no-check-reuse-connection', 'http checks: a new connection per probe (also proves the backend accepts new connections; ~3x the CPU per probe)')
    .action(action(async (name: string, flags: AddFlags) => {
      const spec: ServiceSpec = {
        name, vip: flags.vip, port: flags.port, protocol: flags.proto, mode: flags.mode,
        backends: flags.backend ?? [],
      };
      if (flags.tableSize !== undefined) spec.tableSize = flags.tableSize;
      const healthCheck = healthCheckFrom(flags);
      if (healthCheck) spec.healthCheck = healthCheck;
      const svc = await clientFrom(flags).createService(spec);
      if (flags.json) printJson(svc); else console.log(formatServices([svc]));
    }));

  withClientOptions(service.command('del').alias('delete').description('delete a service').argument('<name>', 'service name'))
    .action(action(async (name: string, flags: ClientFlags) => {
      await clientFrom(flags).deleteService(name);
      if (flags.json) printJson({ deleted: name }); else console.log(`deleted service ${name}`);
    }));
}

export function registerBackendCommands(program: Command): void {
  const backend = program.command('backend').description('add, delete, weight and drain the backends of a service');
  const printService = (flags: ClientFlags, svc: ServiceView): void => {
    if (flags.json) printJson(svc); else console.log(formatServices([svc]));
  };
  // A bulk change (PATCH /api/v1/state/backends): the diff, then the services it touched.
  const printServices = (flags: ClientFlags, r: { services: ServiceView[]; diff: StateDiff }): void => {
    if (flags.json) printJson(r); else console.log([...formatDiff(r.diff), formatServices(r.services)].join('\n'));
  };
  // Argument errors found in the action are usage errors too (exit 2), as commander's are.
  const usage = <T>(parse: () => T): T => {
    try { return parse(); } catch (err) { throw err instanceof InvalidArgumentError ? new UsageError(err.message) : err; }
  };
  const backendKeys = (args: string[]): string[] => {
    const keys = args.map((a) => { const k = usage(() => parseBackendKey(a)); return backendKeyText(k); });
    const twice = keys.find((k, i) => keys.indexOf(k) !== i);
    if (twice) throw new UsageError(`backend ${twice} is named twice`);
    return keys;
  };

  withClientOptions(backend.command('add').description('add a backend to a service')
    .argument('<service>', 'service name').argument('<addr:port>', 'backend address and port: 198.18.1.2:80 or [2001:2::5]:80 (port 0 = keep the client port)', parseBackendKey))
    .option('--weight <n>', `Maglev weight (0..${MAX_WEIGHT})`, integerArg('--weight'), 1)
    .action(action(async (service: string, target: { address: string; port: number }, flags: ClientFlags & { weight: number }) => {
      printService(flags, await clientFrom(flags).addBackend(service, { ...target, weight: flags.weight }));
    }));

  withClientOptions(backend.command('del').alias('delete').description('remove a backend from a service')
    .argument('<service>', 'service name').argument('<addr:port>', 'backend: ADDRESS:PORT or [IPv6]:PORT', parseBackendKey))
    .action(action(async (service: string, target: { address: string; port: number }, flags: ClientFlags) => {
      const key = backendKeyText(target);
      await clientFrom(flags).deleteBackend(service, key);
      if (flags.json) printJson({ deleted: key, service }); else console.log(`deleted backend ${key} of ${service}`);
    }));

  withClientOptions(backend.command('weight').description("set the weight of one backend, or of several in one change")
    .argument('<service>', 'service name')
    .argument('<backends-and-weight...>', `ADDRESS:PORT [ADDRESS:PORT...] WEIGHT (0..${MAX_WEIGHT}); IPv6 as [ADDRESS]:PORT`))
    .action(action(async (service: string, args: string[], flags: ClientFlags) => {
      if (args.length < 2) throw new UsageError('backend weight needs ADDRESS:PORT... and a WEIGHT');
      const weight = usage(() => integerArg('weight')(args[args.length - 1]));
      const keys = backendKeys(args.slice(0, -1));
      const client = clientFrom(flags);
      if (keys.length === 1) { printService(flags, await client.patchBackend(service, keys[0], { weight })); return; }
      printServices(flags, await client.patchBackends(keys.map((k) => ({ service, backend: k, weight }))));
    }));

  withClientOptions(backend.command('drain').description('drain backends: no new flows, existing flows stay (--undo to end); several in one change')
    .argument('<service>', 'service name').argument('<addr:port...>', 'backends (ADDRESS:PORT or [IPv6]:PORT, one or more)'))
    .option('--undo', 'stop draining')
    .action(action(async (service: string, targets: string[], flags: ClientFlags & { undo?: boolean }) => {
      const keys = backendKeys(targets);
      const client = clientFrom(flags);
      if (keys.length === 1) { printService(flags, await client.patchBackend(service, keys[0], { drain: !flags.undo })); return; }
      printServices(flags, await client.patchBackends(keys.map((k) => ({ service, backend: k, drain: !flags.undo }))));
    }));
}
