/** Plain-text tables of the benchmark reports for the terminal. */
import type { ForwardReport } from './forward';
import type { HttpReport } from './http';
import type { ControlReport } from './control';

function fmt(v: number | null | undefined, digits = 2): string {
  return v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function verdict(met: boolean | null): string {
  return met === null ? 'n/a' : met ? 'met' : 'MISSED';
}

/** The forwarding report as text: one row per case, then the targets. */
export function formatForward(r: ForwardReport): string {
  const rows = r.results.map((c) => [
    c.label,
    c.mpps ? `${fmt(c.mpps.median, 3)} [${fmt(c.mpps.min, 3)}-${fmt(c.mpps.max, 3)}]` : 'n/a',
    c.lbCpuNsPerPacket ? `${fmt(c.lbCpuNsPerPacket.median, 0)} [${fmt(c.lbCpuNsPerPacket.min, 0)}-${fmt(c.lbCpuNsPerPacket.max, 0)}]` : 'n/a',
    fmt(c.lbCpuNsPerPacket ? 1000 / c.lbCpuNsPerPacket.median : null, 2),
    fmt(c.xdpRunNsPerPacket?.median ?? null, 0),
    fmt(c.lbCpuUtilisation?.median ?? null, 2),
    String(c.reps.length),
  ]);
  const out = [
    `forward: ${r.reps} reps x ${r.packetsPerRep} packets (<= ${r.secondsPerRep} s), ${r.flows} flows, ${r.frameBytes}-byte UDP frames, round-robin`,
    table(['case', 'Mpps median [min-max]', 'lb CPU ns/pkt', 'Mpps/lb CPU', 'XDP ns/run', 'lb util', 'reps'], rows),
    '(Mpps/lb CPU = 1000 / lb CPU ns per packet: what one lb CPU would forward with a generator that never limits)',
    '',
    table(['target', 'ratio', 'goal', ''], r.targets.map((t) => [t.description, fmt(t.ratio), `${'atMost' in t && t.atMost ? '<=' : '>='} ${t.goal}`, verdict(t.met)])),
  ];
  for (const f of r.failures) out.push(`FAILED ${f.name} (rep ${f.rep}): ${f.error}`);
  return out.join('\n');
}

/** The HTTP report as text. */
export function formatHttp(r: HttpReport): string {
  const rows = r.results.map((c) => [
    c.label, c.connection, `${fmt(c.requestsPerSecond, 0)} [${fmt(c.requestsPerSecondRange.min, 0)}-${fmt(c.requestsPerSecondRange.max, 0)}]`, fmt(c.latencyUs.p50 / 1000, 2), fmt(c.latencyUs.p99 / 1000, 2),
    fmt(c.latencyUs.p999 / 1000, 2), fmt(c.lbCpuUsPerRequest, 1), String(c.errors + c.non2xx),
  ]);
  const out = [
    `http: wrk ${r.threads} threads, ${r.connections} connections, ${r.reps} reps x ${r.seconds} s per case, ${r.backends} backends (medians)`,
    table(['case', 'conn', 'req/s [min-max]', 'p50 ms', 'p99 ms', 'p99.9 ms', 'lb CPU us/req', 'errors'], rows),
    '',
    table(['target', 'ratio', 'goal', ''], r.targets.map((t) => [t.description, fmt(t.ratio), `>= ${t.goal}`, verdict(t.met)])),
  ];
  for (const f of r.failures) out.push(`FAILED ${f.name}: ${f.error}`);
  return out.join('\n');
}

/** The control report as text. */
export function formatControl(r: ControlReport): string {
  const out: string[] = [];
  if (r.apiToKernel) {
    const a = r.apiToKernel;
    out.push(`API change -> kernel map (${a.changes} changes, ${a.backends} backends, M=${a.tableSize}): p50 ${fmt(a.p50Ms)} ms, p99 ${fmt(a.p99Ms)} ms, max ${fmt(a.maxMs)} ms (HTTP response: p50 ${fmt(a.responseP50Ms)} ms, p99 ${fmt(a.responseP99Ms)} ms)`);
    if (a.bulk) {
      out.push(`bulk change (${a.bulk.backendsPerChange} of ${a.bulk.poolSize} backends drained/undrained in one PATCH /api/v1/state/backends, ${a.bulk.changes} changes): kernel p50 ${fmt(a.bulk.p50Ms)} ms, p99 ${fmt(a.bulk.p99Ms)} ms (HTTP response: p50 ${fmt(a.bulk.responseP50Ms)} ms, p99 ${fmt(a.bulk.responseP99Ms)} ms)`);
      out.push(`  its daemon steps, p50 ms: ${Object.entries(a.bulk.stepsP50Ms ?? {}).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
      if (a.bulk.each?.length) {
        const worst = [...a.bulk.each].sort((x, y) => y.ms - x.ms).slice(0, 3);
        out.push(`  its slowest changes: ${worst.map((w) => `${fmt(w.ms)} ms (change ${a.bulk!.each.indexOf(w) + 1}, slowest step ${w.slowestStep} ${fmt(w.stepMs)})`).join('; ')}`);
      }
    }
    if (a.breakdown?.length) {
      out.push(table(['where the time goes', 'p50 ms', 'p99 ms', 'mean ms'], a.breakdown.map((b) => [b.part, fmt(b.p50Ms, 3), fmt(b.p99Ms, 3), fmt(b.meanMs, 3)])));
      out.push('(request/answer: in transit between the benchmark and the daemon; http..respond: the daemon\'s steps (Server-Timing); poll: maps held until the benchmark saw it)');
    }
  }
  if (r.maglev.length) {
    out.push(table(['Maglev build (M)', 'backends', 'ms median [min-max]'],
      r.maglev.map((m) => [`${m.tableSize}${m.offThread ? ' (worker)' : ''}${m.engine === 'js' ? ' (TypeScript loop)' : ''}`, String(m.backends), `${fmt(m.ms.median)} [${fmt(m.ms.min)}-${fmt(m.ms.max)}]`])));
  }
  const h = r.health;
  if (h) {
    out.push(`health check detection -> kernel (${h.flips} flips of 1 of 10 backends, M=65537, http checks every 250 ms, fall = rise = 1): p50 ${fmt(h.p50Ms)} ms, p99 ${fmt(h.p99Ms)} ms, max ${fmt(h.maxMs)} ms after the deciding probe was answered`);
    if (h.cpu) out.push(`daemon CPU with ${h.cpu.backends} backends checked every ${h.cpu.intervalMs} ms (http, the default check: kept connections): ${fmt(h.cpu.cpuShare * 100, 2)} % of one CPU over ${fmt(h.cpu.seconds, 1)} s (${h.cpu.probes} probes, ${h.cpu.healthChanges} verdict changes)`);
    if (h.cpuFresh) out.push(`daemon CPU with ${h.cpuFresh.backends} backends checked every ${h.cpuFresh.intervalMs} ms (http, reuseConnection: false: a new connection per probe): ${fmt(h.cpuFresh.cpuShare * 100, 2)} % of one CPU over ${fmt(h.cpuFresh.seconds, 1)} s (${h.cpuFresh.probes} probes, ${h.cpuFresh.healthChanges} verdict changes)`);
  }
  const o = r.observability;
  if (o) {
    out.push(`observability (1 Hz stats + 1/${o.sampleRate} sampling), ${o.reps} reps interleaved:`);
    out.push(table(['', 'Mpps median [min-max]', 'lb CPU ns/pkt'], [
      ['off', o.off ? `${fmt(o.off.mpps.median, 3)} [${fmt(o.off.mpps.min, 3)}-${fmt(o.off.mpps.max, 3)}]` : 'n/a', fmt(o.off?.lbCpuNsPerPacket.median, 0)],
      ['on', o.on ? `${fmt(o.on.mpps.median, 3)} [${fmt(o.on.mpps.min, 3)}-${fmt(o.on.mpps.max, 3)}]` : 'n/a', fmt(o.on?.lbCpuNsPerPacket.median, 0)],
    ]));
    if (o.on) out.push(`observer: ${o.on.statsReads} stats reads, ${o.on.events} events consumed`);
  }
  out.push('', table(['target', 'value', 'limit', ''], r.targets.map((t) => [t.description, t.value === null ? 'n/a' : t.unit === 'ms' ? `${fmt(t.value)} ms` : `${fmt(t.value * 100, 1)} %`, t.unit === 'ms' ? `<= ${t.limit} ms` : `<= ${t.limit * 100} %`, verdict(t.met)])));
  for (const f of r.failures) out.push(`FAILED ${f.part}: ${f.error}`);
  return out.join('\n');
}
