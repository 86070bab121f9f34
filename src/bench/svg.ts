/**
 * Horizontal bar charts as standalone SVG, written by hand (no chart library): one bar per
 * labelled value, an optional min-max whisker, the value printed at the bar's end.
 */

export interface Bar {
  label: string;
  value: number;
  /** Range of the repetitions, drawn as a whisker when given. */
  min?: number;
  max?: number;
  /** Drawn in the accent colour (xdplb's own bars). */
  highlight?: boolean;
}

export interface BarChart {
  title: string;
  /** Unit printed after each value, e.g. "Mpps". */
  unit: string;
  bars: Bar[];
  /** Digits after the decimal point in the printed values (default 2). */
  digits?: number;
}

/** Escapes text for SVG/XML content and attributes. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/**
 * Renders a bar chart. Non-finite or negative values are drawn as empty bars labelled "n/a".
 * @throws Error when there are no bars.
 */
export function barChartSvg(chart: BarChart): string {
  if (chart.bars.length === 0) throw new Error(`chart "${chart.title}": no bars`);
  const digits = chart.digits ?? 2;
  const labelWidth = Math.max(120, Math.min(300, 7 * Math.max(...chart.bars.map((b) => b.label.length)) + 16));
  const plotWidth = 420;
  const valueWidth = 130;
  const barHeight = 22;
  const gap = 8;
  const top = 36;
  const width = labelWidth + plotWidth + valueWidth;
  const height = top + chart.bars.length * (barHeight + gap) + 12;
  const finite = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v) && v >= 0;
  const scaleMax = Math.max(1e-12, ...chart.bars.flatMap((b) => [b.value, b.max ?? 0]).filter(finite));
  const x = (v: number) => labelWidth + (v / scaleMax) * plotWidth;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="8" y="20" font-size="14" font-weight="bold">${escapeXml(chart.title)}</text>`,
    `<line x1="${labelWidth}" y1="${top - 6}" x2="${labelWidth}" y2="${height - 8}" stroke="#888"/>`,
  ];
  chart.bars.forEach((bar, i) => {
    const y = top + i * (barHeight + gap);
    const mid = y + barHeight / 2;
    parts.push(`<text x="${labelWidth - 6}" y="${mid + 4}" text-anchor="end">${escapeXml(bar.label)}</text>`);
    if (!finite(bar.value)) {
      parts.push(`<text x="${labelWidth + 6}" y="${mid + 4}" fill="#888">n/a</text>`);
      return;
    }
    const w = Math.max(1, x(bar.value) - labelWidth);
    parts.push(`<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${bar.highlight ? '#d9480f' : '#4c6ef5'}"/>`);
    if (finite(bar.min) && finite(bar.max)) {
      const x1 = x(bar.min).toFixed(1);
      const x2 = x(bar.max).toFixed(1);
      parts.push(`<line x1="${x1}" y1="${mid}" x2="${x2}" y2="${mid}" stroke="#222"/>`);
      parts.push(`<line x1="${x1}" y1="${mid - 5}" x2="${x1}" y2="${mid + 5}" stroke="#222"/>`);
      parts.push(`<line x1="${x2}" y1="${mid - 5}" x2="${x2}" y2="${mid + 5}" stroke="#222"/>`);
    }
    const end = Math.max(x(bar.value), finite(bar.max) ? x(bar.max) : 0);
    parts.push(`<text x="${(end + 6).toFixed(1)}" y="${mid + 4}">${escapeXml(`${bar.value.toFixed(digits)} ${chart.unit}`)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
