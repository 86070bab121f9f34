/**
 * The HTTP edge's browser defences: security headers on every response, a Host check against
 * DNS rebinding (a page on evil.example that re-resolves its name to this server still sends
 * `Host: evil.example`) and an Origin check on every change and WebSocket upgrade (a page on
 * another origin cannot make the browser act with the user's session). Clients that are not
 * browsers (curl, the CLI, Prometheus) send no Origin and are unaffected.
 */
import { isIP } from 'node:net';
import { XdplbError } from '../domain/errors';

/** What the dashboard needs and nothing more: its own scripts, styles and API; data: for the empty favicon. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "font-src 'self'",
  "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // For browsers without CSP frame-ancestors.
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
});

/** The host name of a Host header ("name:port", "[v6]:port", "1.2.3.4"), lower case, or null when malformed. */
export function hostNameOf(hostHeader: string): string | null {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(hostHeader.trim());
  if (!match) return null;
  const name = match[1].toLowerCase().replace(/\.$/, '');
  return name.startsWith('[') ? name.slice(1, -1) : name;
}

/**
 * True when the Host header names this server: any IP address literal (a DNS-rebinding page
 * always uses a name), localhost, the listen host, or one of `allowedHosts` (config
 * api.allowedHosts; case-insensitive, a trailing dot ignored).
 */
export function isAllowedHost(hostHeader: string, allowedHosts: readonly string[] = [], listenHost?: string): boolean {
  const name = hostNameOf(hostHeader);
  if (name === null) return false;
  if (isIP(name) !== 0 || name === 'localhost') return true;
  const wanted = (n: string) => n.toLowerCase().replace(/\.$/, '') === name;
  return (listenHost !== undefined && wanted(listenHost)) || allowedHosts.some(wanted);
}

/** True when `origin` (an Origin header) is the same origin as the request's Host; absent Origin = not a browser = true. */
export function isSameOrigin(origin: string | undefined, hostHeader: string | undefined): boolean {
  if (origin === undefined) return true;
  if (!hostHeader) return false;
  let url: URL;
  try {
    url = new URL(origin);
    // The Host header read with the Origin's scheme, so a default port compares equal either way.
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host === new URL(`${url.protocol}//${hostHeader}`).host;
  } catch {
    return false;   // "null" (sandboxed frames, file:) and anything unparsable
  }
}

export interface GuardRequest { method: string; headers: Record<string, string | string[] | undefined> }

/**
 * Refuses a request whose Host is not this server's, or a change (any method but GET, HEAD,
 * OPTIONS) or WebSocket upgrade whose Origin is another origin.
 * @throws XdplbError XDPLB_ERR_FORBIDDEN naming the header that is wrong.
 */
export function checkHostAndOrigin(request: GuardRequest, allowedHosts: readonly string[] = [], listenHost?: string): void {
  const host = request.headers.host;
  if (typeof host === 'string' && !isAllowedHost(host, allowedHosts, listenHost)) {
    throw new XdplbError('XDPLB_ERR_FORBIDDEN', `Host "${host.slice(0, 100)}" is not a name of this server (add it to api.allowedHosts)`);
  }
  const upgrade = typeof request.headers.upgrade === 'string';
  if (!upgrade && ['GET', 'HEAD', 'OPTIONS'].includes(request.method)) return;
  const origin = request.headers.origin;
  if (Array.isArray(origin) || !isSameOrigin(origin, typeof host === 'string' ? host : undefined)) {
    throw new XdplbError('XDPLB_ERR_FORBIDDEN', `cross-origin request refused (Origin "${String(origin).slice(0, 100)}" is not this server)`);
  }
}

/** True for a loopback peer address (127.0.0.0/8, ::1, and IPv4-mapped 127.x). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return address === '::1' || (isIP(v4) === 4 && v4.startsWith('127.'));
}
