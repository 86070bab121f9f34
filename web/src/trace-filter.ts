// The Trace page's filters, for both address families, as pure functions (checked under Node by
// test/browser/trace-filter.test.ts and in the browser by test/browser/v6-suite.ts).
//
// Addresses are compared as parsed values, never as text: an IPv6 filter matches whatever form
// it was typed in (`2001:2:0:0:0:0:0:1`, `2001:2::1`, upper case), `2001:2::1` does not match
// `2001:2::10`, `198.18.0.1` does not match `198.18.0.10`, and a filter of one family never
// matches an address of the other.
import type { TraceEvent } from './api-types';
import { formatProto } from './format';
import { canonicalHostPort, parseIp, parsePrefix, prefixContains, splitHostPort, type Family, type IpAddress, type IpPrefix } from './address';

export interface TraceFilter {
  /** Matches the source, the destination or the backend. */
  address?: IpPrefix;
  /** With `address` (typed as address:port): the port that goes with it. */
  addressPort?: number;
  /** Matches the source port, the destination port or the backend's port. */
  port?: number;
  family?: Family;
  proto?: string;
  service?: string;
  /** The backend key, canonical (`[2001:2::5]:80`). */
  backend?: string;
  action?: string;
  reason?: string;
}

export interface TraceFilterInput {
  address?: string; port?: string; family?: string; proto?: string;
  service?: string; backend?: string; action?: string; reason?: string;
}

/**
 * Reads the filter controls' values ('' = any). Invalid text fields are left out of the filter
 * and reported in `errors` by field, one line each.
 */
export function parseTraceFilter(input: TraceFilterInput): { filter: TraceFilter; errors: Partial<Record<'address' | 'port', string>> } {
  const filter: TraceFilter = {};
  const errors: Partial<Record<'address' | 'port', string>> = {};
  // "[2001:2::1]" (copied from an endpoint without its port) is the address alone.
  const address = (input.address?.trim() ?? '').replace(/^\[([^\]]*)\]$/, '$1');
  if (address) {
    try {
      const withPort = address.startsWith('[') || /^[\d.]+:\d+$/.test(address) ? splitHostPort(address) : null;
      filter.address = parsePrefix(withPort ? withPort.address : address);
      if (withPort) filter.addressPort = withPort.port;
    } catch (err) {
      errors.address = `address filter: ${(err as Error).message}`;
    }
  }
  const port = input.port?.trim() ?? '';
  if (port) {
    if (/^\d{1,5}$/.test(port) && Number(port) <= 65535) filter.port = Number(port);
    else errors.port = `port filter: "${port}" is not a port (0..65535)`;
  }
  if (input.family === 'IPv4' || input.family === '4') filter.family = 4;
  else if (input.family === 'IPv6' || input.family === '6') filter.family = 6;
  if (input.proto) filter.proto = input.proto;
  if (input.service) filter.service = input.service;
  if (input.backend) filter.backend = canonicalKey(input.backend) ?? input.backend;
  if (input.action) filter.action = input.action;
  if (input.reason) filter.reason = input.reason;
  return { filter, errors };
}

// Events arrive with canonical text already; parsing each distinct string once keeps a
// re-render of 1000 buffered events cheap.
const parsed = new Map<string, IpAddress | null>();
function ip(text: string): IpAddress | null {
  let hit = parsed.get(text);
  if (hit === undefined) {
    try { hit = parseIp(text); } catch { hit = null; }
    if (parsed.size > 20_000) parsed.clear();
    parsed.set(text, hit);
  }
  return hit;
}

/** `[2001:2:0:0::5]:80` -> `[2001:2::5]:80`; null when it is not address:port. */
export function canonicalKey(key: string): string | null {
  let hit = keys.get(key);
  if (hit === undefined) {
    try { hit = canonicalHostPort(key); } catch { hit = null; }
    if (keys.size > 20_000) keys.clear();
    keys.set(key, hit);
  }
  return hit;
}
const keys = new Map<string, string | null>();

/**
 * 4 or 6: the event's `family` (the daemon's decoder sets it for every IP frame), else from its
 * addresses (an older daemon, the dev server); null for a frame that was not IP (no family and
 * 0.0.0.0 both ways: not_ip, vlan, a truncated Ethernet header).
 */
export function eventFamily(e: Pick<TraceEvent, 'saddr' | 'daddr'> & { family?: number }): Family | null {
  if (e.family === 4 || e.family === 6) return e.family;
  if (e.saddr === '0.0.0.0' && e.daddr === '0.0.0.0') return null;
  return ip(e.saddr)?.family ?? null;
}

/** Whether `e` passes every set part of `f`. */
export function traceEventMatches(e: TraceEvent, f: TraceFilter): boolean {
  if (f.service !== undefined && e.service !== f.service) return false;
  if (f.action !== undefined && e.action !== f.action) return false;
  if (f.reason !== undefined && e.reason !== f.reason) return false;
  if (f.proto !== undefined && formatProto(e.proto) !== f.proto) return false;
  if (f.family !== undefined && eventFamily(e) !== f.family) return false;
  const backend = e.backend ? splitBackend(e.backend) : null;
  if (f.backend !== undefined && (!e.backend || (canonicalKey(e.backend) ?? e.backend) !== f.backend)) return false;
  if (f.port !== undefined && e.sport !== f.port && e.dport !== f.port && backend?.port !== f.port) return false;
  if (f.address) {
    const prefix = f.address;
    const hit = (text: string | undefined, port: number | undefined) => {
      if (text === undefined) return false;
      const a = ip(text);
      return !!a && prefixContains(prefix, a) && (f.addressPort === undefined || port === f.addressPort);
    };
    if (!hit(e.saddr, e.sport) && !hit(e.daddr, e.dport) && !hit(backend?.address, backend?.port)) return false;
  }
  return true;
}

function splitBackend(key: string): { address: string; port: number } | null {
  try { return splitHostPort(key); } catch { return null; }
}
