// Number formatting for the dashboard: short, unit-bearing and stable in width.
// Pure functions (no DOM) so test/browser/format.test.ts can check them under Node.
import { formatHostPort } from './address';

const SI_PREFIXES = ['', 'k', 'M', 'G', 'T', 'P'];

/** 1234 -> "1.23 k", 0.5 -> "0.5": three significant digits with an SI prefix. */
export function formatSi(value: number, unit = ''): string {
  if (!Number.isFinite(value)) return '—';
  const sign = value < 0 ? '-' : '';
  let magnitude = Math.abs(value);
  let prefix = 0;
  while (magnitude >= 999.5 && prefix < SI_PREFIXES.length - 1) {
    magnitude /= 1000;
    prefix++;
  }
  const digits = prefix === 0 && Number.isInteger(magnitude) ? 0 : magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : 2;
  const text = magnitude.toFixed(digits).replace(/\.0+$/, '').replace(/(\.\d*?)0+$/, '$1');
  const suffix = `${SI_PREFIXES[prefix]}${unit}`;
  return suffix ? `${sign}${text} ${suffix}` : `${sign}${text}`;
}

/** Packets per second: "1.2 Mpps". */
export const formatPps = (pps: number): string => formatSi(pps, 'pps');
/** Bytes per second: "3.4 MB/s". */
export const formatBytesRate = (bytesPerSecond: number): string => formatSi(bytesPerSecond, 'B/s');
/**
 * The API's `bps` fields are BITS per second (the network convention, src/daemon/stats-history.ts);
 * the dashboard shows bytes per second, like its byte totals: 27.2 Mbit/s -> "3.4 MB/s".
 */
export const bitsToBytes = (bitsPerSecond: number): number => bitsPerSecond / 8;
export const formatBps = (bitsPerSecond: number): string => formatBytesRate(bitsToBytes(bitsPerSecond));
/** Byte totals: "12.3 GB". */
export const formatBytes = (bytes: number): string => formatSi(bytes, 'B');
/** Counters: exact with thousands separators below a million, SI above ("4.56 M"). */
export function formatCount(count: number): string {
  if (!Number.isFinite(count)) return '—';
  return Math.abs(count) < 1e6 ? Math.round(count).toLocaleString('en-US') : formatSi(count);
}
/** Nanoseconds: "87 ns", "1.5 µs", "2.3 ms". null (stats off) -> "—". */
export function formatNs(ns: number | null | undefined): string {
  if (ns === null || ns === undefined || !Number.isFinite(ns)) return '—';
  if (ns < 1000) return `${ns < 10 ? ns.toFixed(1) : Math.round(ns)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(1)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}
/** A 0..1 fraction as "12.5 %". */
export function formatPercent(fraction: number, digits = 1): string {
  if (!Number.isFinite(fraction)) return '—';
  return `${(fraction * 100).toFixed(digits)} %`;
}
/** Wall-clock time of day in UTC-less local form: "13:04:05". */
export function formatClock(ms: number, withMillis = false): string {
  const d = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withMillis ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}
/** "2026-11-26 13:04:05" in local time. */
export function formatDateTime(ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '—';
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${formatClock(ms)}`;
}
/** IP protocol number -> name. */
export function formatProto(proto: number): string {
  return proto === 6 ? 'tcp' : proto === 17 ? 'udp' : proto === 1 ? 'icmp' : proto === 58 ? 'icmpv6' : String(proto);
}
/** "198.18.0.10:80/tcp", "[2001:2::10]:80/tcp", port 0 meaning every port. */
export function formatEndpoint(address: string, port: number, protocol?: string): string {
  const hostPort = formatHostPort(address, port === 0 ? '*' : port);
  return protocol ? `${hostPort}/${protocol}` : hostPort;
}
