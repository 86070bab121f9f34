/**
 * What every API verb shares: --api/--token/--json options (with XDPLB_API / XDPLB_TOKEN
 * fallbacks), argument parsers that turn bad input into one-line usage errors, and the action
 * wrapper that maps any failure to one stderr line and an exit code.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ApiClient, DEFAULT_API } from './client';
import { reportError } from './output';

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

/**
 * "ADDRESS:PORT" -> {address, port}. Only the shape is checked here; whether the address is a
 * valid IPv4 and the port is in range is the API's call, so that one validator decides.
 * @throws InvalidArgumentError when the shape is wrong.
 */
export function parseBackendKey(value: string): { address: string; port: number } {
  const m = /^([^:\s]+):(-?\d+)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`backend must be ADDRESS:PORT, got '${value}'`);
  return { address: m[1], port: Number(m[2]) };
}

/** "ADDRESS:PORT[:WEIGHT]" for `service add --backend`. @throws InvalidArgumentError on a bad shape. */
export function parseBackendSpec(value: string): { address: string; port: number; weight: number } {
  const m = /^([^:\s]+):(-?\d+)(?::(-?\d+))?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`backend must be ADDRESS:PORT[:WEIGHT], got '${value}'`);
  return { address: m[1], port: Number(m[2]), weight: m[3] === undefined ? 1 : Number(m[3]) };
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
