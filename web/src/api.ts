// The HTTP client: one place that adds the Bearer token, decodes the API's error shape and
// turns a 401 into "log in again".
import type { User } from './api-types';

const TOKEN_KEY = 'xdplb.token';

/** An API error: HTTP status plus the catalogue code and message from the body. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly field?: string) {
    super(message);
    this.name = 'ApiError';
  }
}

let onUnauthenticated: (() => void) | null = null;
/** Called once when any request comes back 401 (expired or revoked session). */
export function setUnauthenticatedHandler(handler: () => void): void { onUnauthenticated = handler; }

export function getToken(): string | null { return sessionStorage.getItem(TOKEN_KEY); }
export function clearSession(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * Calls the API. Throws ApiError for any non-2xx answer (status 0 when the daemon is
 * unreachable); 204 resolves to undefined.
 */
export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `cannot reach the daemon (${(err as Error).message})`);
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let parsed: unknown = undefined;
  try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON: reported below */ }
  if (!res.ok) {
    const error = (parsed as { error?: { code?: string; message?: string; field?: string } } | undefined)?.error;
    if (res.status === 401 && token && onUnauthenticated) onUnauthenticated();
    throw new ApiError(res.status, error?.code ?? `HTTP_${res.status}`, error?.message ?? (text.slice(0, 200) || res.statusText), error?.field);
  }
  return parsed as T;
}

export const get = <T>(path: string) => request<T>('GET', path);

/** Logs in and keeps the session token for this browser tab. Throws ApiError (401 on a wrong password). */
export async function login(username: string, password: string): Promise<User> {
  const res = await request<{ token: string; user: User }>('POST', '/login', { username, password });
  sessionStorage.setItem(TOKEN_KEY, res.token);
  return res.user;
}

/** Ends the session on the daemon (best effort) and forgets the token. */
export async function logout(): Promise<void> {
  try { if (getToken()) await request('POST', '/logout'); } catch { /* the token is dropped anyway */ }
  clearSession();
}

/** Describes an error for a human: "conflict: backend exists (field /port)". */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    const field = err.field && !err.message.includes(err.field) ? ` (field ${err.field})` : '';
    return err.status ? `${err.message}${field} [${err.status} ${err.code}]` : err.message;
  }
  return err instanceof Error ? err.message : String(err);
}
