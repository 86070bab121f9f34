/**
 * bench-results/report.md: the figures of one run as Markdown tables with SVG bar charts
 * (written beside it), the machine, the method and the command that produced them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { barChartSvg, type Bar } from './svg';
import { formatControl, formatForward, formatHttp } from './format';
import type { BenchResults } from './results';
import { formatProgBench, type ProgBenchResult } from './prog';

interface ChartFile { file: string; svg: string; alt: string }

function isXdplb(name: string): boolean {
  return name.startsWith('xdplb');
}

/** The charts of a run: file name, SVG text and alt text. */
export function reportCharts(r: BenchResults): ChartFile[] {
  const charts: ChartFile[] = [];
  if (r.forward) {
    const ok = r.forward.results.filter((c) => c.mpps);
    if (ok.length) {
      charts.push({
        file: 'forward-mpps.svg', alt: 'Mpps delivered at the sink',
        svg: barChartSvg({ title: 'Forwarding: Mpps delivered at the sink (median, min-max)', unit: 'Mpps', digits: 3,
          bars: ok.map((c): Bar => ({ label: c.label, value: c.mpps!.median, min: c.mpps!.min, max: c.mpps!.max, highlight: isXdplb(c.name) })) }),
      });
      charts.push({
        file: 'forward-cpu.svg', alt: 'lb CPU per packet',
        svg: barChartSvg({ title: 'Forwarding: lb CPU time per packet (lower is better)', unit: 'ns', digits: 0,
          bars: ok.map((c): Bar => ({ label: c.label, value: c.lbCpuNsPerPacket?.median ?? NaN, min: c.lbCpuNsPerPacket?.min, max: c.lbCpuNsPerPacket?.max, highlight: isXdplb(c.name) })) }),
      });
    }
  }
  if (r.http && r.http.results.length) {
    for (const connection of ['keepalive', 'close'] as const) {
      const rows = r.http.results.filter((x) => x.connection === connection);
      if (!rows.length) continue;
      charts.push({
        file: `http-rps-${connection}.svg`, alt: `HTTP requests/s (${connection})`,
        svg: barChartSvg({ title: `HTTP requests/s, ${connection === 'close' ? 'new connection per request' : 'keep-alive'}`, unit: 'req/s', digits: 0,
          bars: rows.map((x): Bar => ({ label: x.label, value: x.requestsPerSecond, highlight: isXdplb(x.name) })) }),
      });
      charts.push({
        file: `http-p99-${connection}.svg`, alt: `HTTP p99 latency (${connection})`,
        svg: barChartSvg({ title: `HTTP p99 latency, ${connection === 'close' ? 'new connection per request' : 'keep-alive'} (lower is better)`, unit: 'ms', digits: 2,
          bars: rows.map((x): Bar => ({ label: x.label, value: x.latencyUs.p99 / 1000, highlight: isXdplb(x.name) })) }),
      });
    }
  }
  if (r.control && r.control.maglev.length) {
    charts.push({
      file: 'maglev-build.svg', alt: 'Maglev build time',
      svg: barChartSvg({ title: 'Maglev table build, M = 65537 (median, min-max)', unit: 'ms', digits: 1,
        bars: r.control.maglev.filter((m) => !m.offThread).map((m): Bar => ({ label: `${m.backends} backends${m.engine === 'js' ? ' (TS loop)' : ''}`, value: m.ms.median, min: m.ms.min, max: m.ms.max })) }),
    });
  }
  return charts;
}

/** The Markdown of the report (charts referenced by file name, relative to the report). */
export function reportMarkdown(r: BenchResults, charts: ChartFile[]): string {
  const m = r.machine;
  const chart = (file: string) => {
    const c = charts.find((x) => x.file === file);
    return c ? `![${c.alt}](${c.file})\n` : '';
  };
  const out = [
    '# xdplb benchmark report',
    '',
    `Run: \`${r.command}\`, ${r.startedAt} .. ${r.finishedAt}.`,
    '',
    `Machine: Linux ${m.kernel} (${m.arch}), ${m.cpus} CPUs (${m.cpuModel}), ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, node ${m.node}; `
      + `load average at start ${m.loadAverage.map((l) => l.toFixed(2)).join(' / ')}.`,
    '',
    'Method: see docs/benchmarks.md. All traffic is between network namespaces over veth pairs.',
    '',
  ];
  if (r.prog) out.push('## Program (BPF_PROG_TEST_RUN)', '', '```', formatProgBench(r.prog as ProgBenchResult), '```', '');
  if (r.forward) {
    out.push('## Forwarding', '', chart('forward-mpps.svg'), chart('forward-cpu.svg'), '```', formatForward(r.forward), '```', '', `Method: ${r.forward.method}`, '');
  }
  if (r.http) {
    out.push('## HTTP', '', chart('http-rps-keepalive.svg'), chart('http-rps-close.svg'), chart('http-p99-keepalive.svg'), chart('http-p99-close.svg'),
      '```', formatHttp(r.http), '```', '', `Method: ${r.http.method}`, '');
  }
  if (r.control) {
    out.push('## Control plane', '', chart('maglev-build.svg'), '```', formatControl(r.control), '```', '', `Method: ${r.control.method}`, '');
  }
  if (r.failures.length) {
    out.push('## Failures', '', ...r.failures.map((f) => `- ${f.part}: ${f.error.replace(/\n/g, ' ')}`), '');
  }
  return out.join('\n');
}

/**
 * Writes report.md and its SVG charts into `dir`; returns the report's path.
 * @throws Error when the directory cannot be written.
 */
export function writeReport(r: BenchResults, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const charts = reportCharts(r);
  for (const c of charts) fs.writeFileSync(path.join(dir, c.file), c.svg);
  const file = path.join(dir, 'report.md');
  fs.writeFileSync(file, reportMarkdown(r, charts));
  return file;
}
