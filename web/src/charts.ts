// Time-series charts on uPlot: one chart per metric, one line per series, the x axis in
// seconds. The plot is rebuilt only when the set of series changes; otherwise setData.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from './dom';

export const PALETTE = ['#2563eb', '#16a34a', '#ea580c', '#9333ea', '#0891b2', '#db2777', '#ca8a04', '#4b5563', '#dc2626', '#65a30d'];

export interface SeriesData { label: string; values: Array<number | null>; color?: string; dash?: boolean }

/** x-axis tick: "13:05" on whole minutes, ":20" between them, so labels stay short at 800 px. */
function timeTick(seconds: number): string {
  const d = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  return d.getSeconds() === 0 ? `${pad(d.getHours())}:${pad(d.getMinutes())}` : `:${pad(d.getSeconds())}`;
}

export class TimeChart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private seriesKey = '';
  private resizeObserver: ResizeObserver;
  private lastData: { times: number[]; series: SeriesData[] } | null = null;

  constructor(readonly title: string, private formatValue: (v: number) => string, private height = 220) {
    this.el = h('div', { class: 'chart', role: 'img', 'aria-label': title });
    this.resizeObserver = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize({ width: this.width(), height: this.height });
    });
    this.resizeObserver.observe(this.el);
  }

  private width(): number { return Math.max(240, Math.floor(this.el.clientWidth || 600)); }

  /** Replaces the data; `times` are ms since the epoch. */
  update(times: number[], series: SeriesData[]): void {
    this.lastData = { times, series };
    const key = series.map((s) => s.label).join('\u0000');
    const data: uPlot.AlignedData = [times.map((t) => t / 1000), ...series.map((s) => s.values)];
    if (this.plot && key === this.seriesKey) {
      this.plot.setData(data);
      return;
    }
    this.plot?.destroy();
    this.seriesKey = key;
    const fmt = this.formatValue;
    this.plot = new uPlot({
      width: this.width(), height: this.height,
      cursor: { drag: { x: false, y: false } },
      legend: { live: false },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { stroke: '#64748b', grid: { stroke: '#e2e8f0' }, ticks: { stroke: '#cbd5e1' }, values: (_u, splits) => splits.map(timeTick) },
        { stroke: '#64748b', grid: { stroke: '#e2e8f0' }, ticks: { stroke: '#cbd5e1' }, size: 78,
          values: (_u, splits) => splits.map((v) => fmt(v)) },
      ],
      series: [
        { label: 'time', show: true },
        ...series.map((s, i) => ({
          label: s.label, stroke: s.color ?? PALETTE[i % PALETTE.length], width: 1.6,
          dash: s.dash ? [6, 4] : undefined, points: { show: false },
          value: (_u: uPlot, v: number | null) => (v === null ? '—' : fmt(v)),
        })),
      ],
    }, data, this.el);
  }

  /** Re-renders the last data (after the element was re-attached). */
  refresh(): void { if (this.lastData) this.update(this.lastData.times, this.lastData.series); }

  destroy(): void {
    this.resizeObserver.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}
