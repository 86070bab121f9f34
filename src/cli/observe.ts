/** `xdplb settings|stats|trace|programs|maps|login`: run-time settings, counters and kernel views. */
import { Command, InvalidArgumentError, Option } from 'commander';
import WebSocket from 'ws';
import type { StatsView, ProgramView, MapView, MapPage, SettingsView, StreamMessage } from '../domain/types';
import { REASONS, type TraceEvent } from '../dataplane/types';
import { ApiError } from './client';
import { hashSecret } from '../config/config';
import { MapPageQuerySchema } from '../config/schema';
import { secretWeakness } from '../config/secret-policy';
import { withClientOptions, clientFrom, action, integerArg, onOff, type ClientFlags } from './common';
import { formatTable, humanNumber, humanBits, printJson, UsageError } from './output';
import { canonicalOrSelf, formatHostPort } from '../domain/address';

/** One page limit for the API and the CLI: the schema's. */
const PAGE_LIMIT = MapPageQuerySchema.properties.limit as unknown as { minimum: number; maximum: number; default: number };

export function formatSettings(s: SettingsView): string {
  return formatTable(null, [
    ['sample-rate', s.sampleRate === 0 ? '0 (trace off)' : `1 in ${s.sampleRate} packets`],
    ['frag-policy', s.fragPolicy],
    ['flow-cache', s.flowCache ? 'on' : 'off'],
  ]);
}

export function formatStats(v: StatsView): string {
  const lines: string[] = [];
  lines.push(`at ${new Date(v.at).toISOString()}  interval ${v.interval.toFixed(1)}s  total ${humanNumber(v.totals.pps)} pps ${humanBits(v.totals.bps)}  (${v.totals.packets} packets)`);
  const rows: string[][] = [];
  for (const s of v.services) {
    rows.push([s.name, '', humanNumber(s.fwdPps), humanBits(s.fwdBps), humanNumber(s.revPps), humanBits(s.revBps), String(s.packets), String(s.bytes)]);
    for (const b of s.backends) {
      rows.push([`  -> ${b.key}`, b.health, humanNumber(b.fwdPps), humanBits(b.fwdBps), humanNumber(b.revPps), humanBits(b.revBps), String(b.packets), String(b.bytes)]);
    }
  }
  if (rows.length) lines.push(formatTable(['Service / -> Backend', 'Health', 'Fwd pps', 'Fwd rate', 'Rev pps', 'Rev rate', 'Packets', 'Bytes'], rows));
  else lines.push('no services');
  const counters = (list: Array<{ name: string; pps: number; packets: number }>): string =>
    list.filter((x) => x.packets > 0).map((x) => `${x.name} ${humanNumber(x.pps)}/s (${x.packets})`).join('  ') || '-';
  lines.push(`actions: ${counters(v.actions)}`);
  lines.push(`reasons: ${counters(v.reasons)}`);
  return lines.join('\n');
}

const PROTOCOL_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp' };

export function formatTraceEvent(e: TraceEvent, receivedAt = new Date()): string {
  const proto = PROTOCOL_NAMES[e.proto] ?? `proto${e.proto}`;
  const ports = e.proto === 6 || e.proto === 17;
  // IPv6 with a port in brackets ([2001:2::5]:80), every address canonical.
  const src = ports ? formatHostPort(e.saddr, e.sport) : canonicalOrSelf(e.saddr);
  const dst = ports ? formatHostPort(e.daddr, e.dport) : canonicalOrSelf(e.daddr);
  const target = e.service ? `${e.service}${e.backend ? ' -> ' + e.backend : ''}` : '-';
  return `${receivedAt.toISOString().slice(11, 23)}  if${e.ifindex}  ${proto} ${src} > ${dst}  len ${e.pktLen}  ${target}  ${e.action}/${e.reason}`;
}

export function formatPrograms(programs: ProgramView[], statsEnabled: boolean): string {
  const rows = programs.map((p) => [
    String(p.id), p.name || '-', p.typeName, p.tag, p.attach ? `${p.attach.ifname}(${p.attach.ifindex})` : '-',
    p.attach?.mode ?? '-', String(p.runCount), p.avgNs === null ? '-' : p.avgNs.toFixed(0), p.xdplb ? 'yes' : '',
  ]);
  const table = formatTable(['ID', 'Name', 'Type', 'Tag', 'Attached', 'Mode', 'Runs', 'Avg ns', 'xdplb'], rows);
  return `${table}\nrun stats: ${statsEnabled ? 'on' : 'off (xdplb programs --stats on)'}`;
}

export function formatMaps(maps: MapView[]): string {
  return formatTable(['Name', 'ID', 'Type', 'Key', 'Value', 'Max', 'Used'],
    maps.map((m) => [m.name, String(m.id), m.typeName, String(m.keySize), String(m.valueSize), String(m.maxEntries), String(m.usedEntries)]));
}

export function formatMapPage(page: MapPage): string {
  const lines = [`map ${page.name}: ${page.total} entries, showing ${page.entries.length ? `${page.offset}..${page.offset + page.entries.length - 1}` : 'none'}`];
  for (const e of page.entries) lines.push(`${JSON.stringify(e.key)} => ${JSON.stringify(e.value)}`);
  return lines.join('\n');
}

function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export function registerObserveCommands(program: Command): void {
  withClientOptions(program.command('settings').description('show the run-time settings, or change those given'))
    .option('--sample-rate <n>', 'trace 1 in N packets to the kernel event ring (0 = off)', integerArg('--sample-rate', 0))
    .addOption(new Option('--frag-policy <policy>', 'what to do with fragments to a VIP').choices(['drop', 'pass']))
    .option('--flow-cache <on|off>', 'flow-affinity cache', onOff('--flow-cache'))
    .action(action(async (flags: ClientFlags & { sampleRate?: number; fragPolicy?: 'drop' | 'pass'; flowCache?: boolean }) => {
      const client = clientFrom(flags);
      const patch: Partial<SettingsView> = {};
      if (flags.sampleRate !== undefined) patch.sampleRate = flags.sampleRate;
      if (flags.fragPolicy !== undefined) patch.fragPolicy = flags.fragPolicy;
      if (flags.flowCache !== undefined) patch.flowCache = flags.flowCache;
      const settings = Object.keys(patch).length ? await client.patchSettings(patch) : await client.getSettings();
      if (flags.json) printJson(settings); else console.log(formatSettings(settings));
    }));

  const seed = program.command('hash-seed').description('the flow hash seed of the running program (the same on every node behind ECMP)');
  withClientOptions(seed.command('show', { isDefault: true }).description('show the seed in use'))
    .action(action(async (flags: ClientFlags) => {
      const result = await clientFrom(flags).request<{ hashSeed: number }>('GET', '/api/v1/hash-seed');
      if (flags.json) printJson(result); else console.log(`hash-seed ${result.hashSeed}`);
    }));
  withClientOptions(seed.command('set').description('replace the seed in the running program and the config file: every flow re-hashes, established connections may move')
    .argument('<seed>', 'integer 0..4294967295', integerArg('seed', 0, 0xffffffff)))
    .action(action(async (value: number, flags: ClientFlags) => {
      const result = await clientFrom(flags).request<{ hashSeed: number }>('PUT', '/api/v1/hash-seed', { hashSeed: value });
      if (flags.json) printJson(result); else console.log(`hash-seed ${result.hashSeed}`);
    }));

  withClientOptions(program.command('stats').description('packet and byte rates per service and backend, XDP actions, drop reasons'))
    .option('--watch', 'refresh until interrupted')
    .option('--interval <seconds>', 'refresh interval with --watch', integerArg('--interval', 1, 3600), 1)
    .option('--count <n>', 'with --watch: stop after N refreshes', integerArg('--count', 1))
    .action(action(async (flags: ClientFlags & { watch?: boolean; interval: number; count?: number }) => {
      const client = clientFrom(flags);
      const rounds = flags.watch ? (flags.count ?? Infinity) : 1;
      for (let i = 0; i < rounds; i++) {
        if (i > 0) await sleep(flags.interval * 1000);
        const view = await client.stats();
        if (flags.json) {
          process.stdout.write(JSON.stringify(view) + (flags.watch ? '\n' : ''));
          if (!flags.watch) process.stdout.write('\n');
        } else {
          if (flags.watch && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
          console.log(formatStats(view));
        }
      }
    }));

  withClientOptions(program.command('trace').description('follow sampled kernel trace events (needs settings --sample-rate > 0)'))
    .option('--service <name>', 'only events of this service')
    .option('--reason <reason>', `only this verdict reason (${REASONS.join(', ')})`, (v: string) => {
      if (!(REASONS as readonly string[]).includes(v)) throw new InvalidArgumentError(`unknown reason '${v}'; one of ${REASONS.join(', ')}`);
      return v;
    })
    .option('--count <n>', 'stop after N events', integerArg('--count', 1))
    .option('--timeout <seconds>', 'stop after S seconds', integerArg('--timeout', 1))
    .action(action(async (flags: ClientFlags & { service?: string; reason?: string; count?: number; timeout?: number }) => {
      const client = clientFrom(flags);
      if (process.stderr.isTTY && (await client.getSettings()).sampleRate === 0) {
        process.stderr.write('note: sampling is off, no events will come; turn it on with `xdplb settings --sample-rate N`\n');
      }
      await followTrace(client.streamUrl(), flags);
    }));

  withClientOptions(program.command('programs').description('XDP/BPF programs on this host: attach point, run count, ns per run'))
    .option('--stats <on|off>', 'turn kernel run-time statistics (BPF_ENABLE_STATS) on or off first', onOff('--stats'))
    .action(action(async (flags: ClientFlags & { stats?: boolean }) => {
      const client = clientFrom(flags);
      if (flags.stats !== undefined) await client.setProgramStats(flags.stats);
      const { programs, statsEnabled } = await client.programs();
      if (flags.json) printJson({ programs, statsEnabled }); else console.log(formatPrograms(programs, statsEnabled));
    }));

  withClientOptions(program.command('maps').description("the balancer's BPF maps, or one map's decoded entries")
    .argument('[name]', 'map name (services, backends, maglev, reverse, ...)'))
    .option('--offset <n>', 'first entry', integerArg('--offset', 0), 0)
    .option('--limit <n>', `entries per page (${PAGE_LIMIT.minimum}..${PAGE_LIMIT.maximum})`, integerArg('--limit', PAGE_LIMIT.minimum, PAGE_LIMIT.maximum), PAGE_LIMIT.default)
    .action(action(async (name: string | undefined, flags: ClientFlags & { offset: number; limit: number }) => {
      const client = clientFrom(flags);
      if (name === undefined) {
        const maps = await client.maps();
        if (flags.json) printJson({ maps }); else console.log(formatMaps(maps));
        return;
      }
      const page = await client.mapEntries(name, flags.offset, flags.limit);
      if (flags.json) printJson(page); else console.log(formatMapPage(page));
    }));

  withClientOptions(program.command('login').description('log in and print a session token (password from --password or stdin)')
    .argument('<user>', 'user name'))
    .option('--password <password>', 'the password (default: first line of stdin)')
    .action(action(async (user: string, flags: ClientFlags & { password?: string }) => {
      let password = flags.password;
      if (password === undefined) {
        if (process.stdin.isTTY) process.stderr.write('Password: ');
        password = (await readStdin()).split(/\r?\n/)[0];
      }
      if (!password) throw new UsageError('no password: pass --password or pipe it on stdin');
      const result = await clientFrom(flags).login(user, password);
      if (flags.json) printJson(result); else console.log(result.token);
    }));
}

/** `xdplb hash-password`: the scrypt hash for a config file's passwordHash / tokenHash. */
export function registerHashPasswordCommand(program: Command): void {
  program.command('hash-password')
    .description('print the scrypt hash of a password or token for the config file (passwordHash / tokenHash); reads stdin')
    .option('--password <password>', 'the secret (default: first line of stdin)')
    .action(action(async (flags: { password?: string }) => {
      let secret = flags.password;
      if (secret === undefined) {
        if (process.stdin.isTTY) process.stderr.write('Password: ');
        secret = (await readStdin()).split(/\r?\n/)[0];
      }
      if (!secret) throw new UsageError('no password: pass --password or pipe it on stdin');
      // The daemon can judge a hash only against known defaults: say so now, while the text is here.
      const weakness = secretWeakness('user', '', secret);
      if (weakness) process.stderr.write(`xdplb: warning: ${weakness}: an admin with it cannot make the daemon listen beyond loopback (docs/config.md)\n`);
      console.log(hashSecret(secret));
    }));
}

/** Prints stream 'event' messages until --count events or --timeout seconds. */
async function followTrace(url: string, flags: ClientFlags & { service?: string; reason?: string; count?: number; timeout?: number }): Promise<void> {
  const ws = new WebSocket(url);
  let seen = 0;
  await new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: Error): void => {
      if (timer) clearTimeout(timer);
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.close();
      if (err) reject(err); else resolve();
    };
    if (flags.timeout) timer = setTimeout(() => finish(), flags.timeout * 1000);
    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      const code = status === 401 ? 'XDPLB_ERR_UNAUTHENTICATED' : status === 403 ? 'XDPLB_ERR_FORBIDDEN' : `HTTP_${status}`;
      finish(new ApiError(code, `the stream refused the connection (HTTP ${status})${status === 401 ? '; pass --token' : ''}`, status));
    });
    ws.on('error', (err: NodeJS.ErrnoException) => {
      finish(new ApiError('XDPLB_ERR_UNREACHABLE', `no xdplb stream at ${url.replace(/token=[^&]+/, 'token=...')} (${err.code ?? err.message})`, 0));
    });
    ws.on('close', () => finish());
    ws.on('message', (data) => {
      let msg: StreamMessage;
      try { msg = JSON.parse(data.toString()) as StreamMessage; } catch { return; }
      if (msg.type !== 'event') return;
      const e = msg.data;
      if (flags.service && e.service !== flags.service) return;
      if (flags.reason && e.reason !== flags.reason) return;
      console.log(flags.json ? JSON.stringify(e) : formatTraceEvent(e));
      if (flags.count && ++seen >= flags.count) finish();
    });
  });
}
