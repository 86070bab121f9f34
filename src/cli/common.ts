/**
 * What every API verb shares: --api/--token/--json options (with XDPLB_API / XDPLB_TOKEN
 * fallbacks), argument parsers that turn bad input into one-line usage errors, and the action
 * wrapper that maps any failure to one stderr line and an exit code.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ApiClient, DEFAULT_API } from './client';
import { reportError } from './output';
import { formatHostPort } from '../domain/address';

export interface ClientFlags { api?: string; token?: string; json?: boolean }

/** Adds the options every API verb takes. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--api <url>', `API address (env XDPLB_API, default ${DEFAULT_API})`))
    .addOption(new Option('--token <token>', 'API token or session token from `xdplb login` (env XDPLB_TOKEN)'))
    .option('--json', 'print machine-readable JSON');
}

export function clientFrom(flags: ClientFlags): ApiClient {
  return new ApiClient({
    baseUrl: flags.api ?? process.env.XDPLB_API ?? DEFAULT_API,
    token: flags.token ?? process.env.XDPLB_TOKEN,
  });
}

/** Wraps an async action: errors become one line on stderr and exit code 1 (2 for usage). */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      process.exitCode = reportError(err);
    }
  };
}

/** commander argParser: a decimal integer in [min, max]. */
export function integerArg(what: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`${what} must be an integer, got '${value}'`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`${what} must be in ${min}..${max}, got ${n}`);
    return n;
  };
}

/** IPv4 ADDRESS or [IPv6] (brackets required: "2001:2::5:80" would be ambiguous), then the numbers. */
const BACKEND_SHAPE = /^(?:\[([^\]\s]+)\]|([^:\s[\]]+)):(-?\d+)(?::(-?\d+))?$/;

function backendShape(value: string, withWeight: boolean): RegExpExecArray {
  const m = BACKEND_SHAPE.exec(value.trim());
  const form = withWeight ? 'ADDRESS:PORT[:WEIGHT] or [IPv6]:PORT[:WEIGHT]' : 'ADDRESS:PORT or [IPv6]:PORT';
  if (!m || (!withWeight && m[4] !== undefined)) {
    const hint = !value.includes('[') && value.split(':').length > 2 ? ' (an IPv6 address goes in brackets: [2001:2::5]:80)' : '';
    throw new InvalidArgumentError(`backend must be ${form}, got '${value}'${hint}`);
  }
  return m;
}

/**
 * "ADDRESS:PORT" or "[IPv6]:PORT" -> {address, port}. Only the shape is checked here; whether
 * the address is usable and the port is in range is the API's call, so that one validator decides.
 * @throws InvalidArgumentError when the shape is wrong.
 */
export function parseBackendKey(value: string): { address: string; port: number } {
  const m = backendShape(value, false);
  return { address: m[1] ?? m[2], port: Number(m[3]) };
}

/** "ADDRESS:PORT[:WEIGHT]" / "[IPv6]:PORT[:WEIGHT]" for `service add --backend`. @throws InvalidArgumentError on a bad shape. */
export function parseBackendSpec(value: string): { address: string; port: number; weight: number } {
  const m = backendShape(value, true);
  return { address: m[1] ?? m[2], port: Number(m[3]), weight: m[4] === undefined ? 1 : Number(m[4]) };
}

/** The backend key the API names a backend by ("198.18.1.2:80", "[2001:2::5]:80"; canonical when valid). */
export function backendKeyText(target: { address: string; port: number }): string {
  return formatHostPort(target.address, target.port);
}

/** commander collector for repeatable options. */
export function collect<T>(parse: (v: string) => T): (value: string, previous: T[] | undefined) => T[] {
  return (value, previous) => [...(previous ?? []), parse(value)];
}

export function onOff(what: string): (value: string) => boolean {
  return (value: string) => {
    if (value === 'on' || value === 'true') return true;
    if (value === 'off' || value === 'false') return false;
    throw new InvalidArgumentError(`${what} must be on or off, got '${value}'`);
  };
}
