/**
 * Everything the CLI prints: aligned tables, human rates, JSON, and the one-line error format
 * `xdplb: <code>: <message> (field /x/y)`.
 */
import { ApiError } from './client';

/** Thrown for bad command-line input found after commander's own parsing; exits 2. */
export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function formatTable(header: string[] | null, rows: string[][]): string {
  const all = header ? [header, ...rows] : rows;
  const widths: number[] = [];
  for (const row of all) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length); });
  return all.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd())
    .join('\n');
}

/** 1234567 -> "1.23M"; small numbers as integers. */
export function humanNumber(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (abs >= 1e4) return `${(n / 1e3).toFixed(1)}K`;
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** Bits per second (the API's bps), human. */
export function humanBits(bitsPerSecond: number): string {
  return `${humanNumber(bitsPerSecond)}bit/s`;
}

export function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** The single error line for any failure; returns the exit code (2 usage, 1 otherwise). */
export function reportError(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`xdplb: usage: ${err.message}\n`);
    return 2;
  }
  if (err instanceof ApiError) {
    const field = err.field ? ` (field ${err.field})` : '';
    process.stderr.write(`xdplb: ${err.code}: ${oneLine(err.message)}${field}\n`);
    return err.code === 'XDPLB_ERR_USAGE' ? 2 : 1;
  }
  const e = err as { code?: unknown; message?: string };
  const code = typeof e?.code === 'string' && e.code.startsWith('XDPLB_ERR_') ? e.code : 'XDPLB_ERR_INTERNAL';
  process.stderr.write(`xdplb: ${code}: ${oneLine(e?.message ?? String(err))}\n`);
  return 1;
}

function oneLine(s: string): string { return s.replace(/\s*\n\s*/g, '; '); }
