/**
 * A small typed client of the xdplb HTTP API v1 (docs/api.md), used by the CLI and tests.
 * Every method throws ApiError: the server's {error: {code, message, field}} when it answered,
 * XDPLB_ERR_UNREACHABLE when nothing answered at the address.
 */
import type {
  ServiceSpec, ServiceView, BackendSpec, SettingsView, StatsView, ProgramView, MapView, MapPage, Role,
  StateDocument, StateApplyResult, StateDiff, BackendChange, ServiceTransitionView, TransitionsView,
} from '../domain/types';

export const DEFAULT_API = 'http://127.0.0.1:8720';

export class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly status: number, readonly field?: string) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ApiClientOptions { baseUrl?: string; token?: string; timeoutMs?: number }

export class ApiClient {
  readonly baseUrl: string;
  readonly token: string | undefined;
  private readonly timeoutMs: number;

  /** @throws ApiError XDPLB_ERR_USAGE when baseUrl is not an http(s) URL. */
  constructor(opts: ApiClientOptions = {}) {
    const base = (opts.baseUrl ?? DEFAULT_API).replace(/\/+$/, '');
    let url: URL;
    try { url = new URL(base); } catch { throw new ApiError('XDPLB_ERR_USAGE', `API address is not a URL: ${base}`, 0); }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ApiError('XDPLB_ERR_USAGE', `API address must be http(s)://..., got ${base}`, 0);
    }
    this.baseUrl = base;
    this.token = opts.token || undefined;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** One request; resolves the parsed JSON body (undefined for 204). */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new ApiError('XDPLB_ERR_UNREACHABLE', `no xdplb API at ${this.baseUrl} (${cause}); start the daemon or pass --api`, 0);
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let parsed: unknown;
    try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = undefined; }
    if (!res.ok) {
      const error = (parsed as { error?: { code?: string; message?: string; field?: string } } | undefined)?.error;
      throw new ApiError(error?.code ?? `HTTP_${res.status}`, error?.message ?? (text.trim() || res.statusText), res.status, error?.field);
    }
    return parsed as T;
  }

  login(username: string, password: string): Promise<{ token: string; user: { name: string; role: Role } }> {
    return this.request('POST', '/api/v1/login', { username, password });
  }
  whoami(): Promise<{ name: string; role: Role }> { return this.request('GET', '/api/v1/whoami'); }

  async listServices(): Promise<ServiceView[]> {
    return (await this.request<{ services: ServiceView[] }>('GET', '/api/v1/services')).services;
  }
  getService(name: string): Promise<ServiceView> { return this.request('GET', `/api/v1/services/${enc(name)}`); }
  createService(spec: ServiceSpec): Promise<ServiceView> { return this.request('POST', '/api/v1/services', spec); }
  replaceService(name: string, spec: ServiceSpec): Promise<ServiceView> {
    return this.request('PUT', `/api/v1/services/${enc(name)}`, spec);
  }
  deleteService(name: string): Promise<void> { return this.request('DELETE', `/api/v1/services/${enc(name)}`); }

  addBackend(service: string, spec: BackendSpec): Promise<ServiceView> {
    return this.request('POST', `/api/v1/services/${enc(service)}/backends`, spec);
  }
  patchBackend(service: string, key: string, patch: { weight?: number; drain?: boolean }): Promise<ServiceView> {
    return this.request('PATCH', `/api/v1/services/${enc(service)}/backends/${enc(key)}`, patch);
  }
  deleteBackend(service: string, key: string): Promise<void> {
    return this.request('DELETE', `/api/v1/services/${enc(service)}/backends/${enc(key)}`);
  }

  transitions(): Promise<TransitionsView> { return this.request('GET', '/api/v1/transitions'); }
  transition(service: string): Promise<ServiceTransitionView & Omit<TransitionsView, 'services'>> {
    return this.request('GET', `/api/v1/transitions/${enc(service)}`);
  }
  getSettings(): Promise<SettingsView> { return this.request('GET', '/api/v1/settings'); }
  getState(): Promise<StateDocument> { return this.request('GET', '/api/v1/state'); }
  applyState(doc: StateDocument, dryRun: boolean): Promise<StateApplyResult> {
    return this.request('PUT', `/api/v1/state${dryRun ? '?dryRun=1' : ''}`, doc);
  }
  patchBackends(changes: BackendChange[]): Promise<{ services: ServiceView[]; diff: StateDiff }> {
    return this.request('PATCH', '/api/v1/state/backends', { changes });
  }
  patchSettings(patch: Partial<SettingsView>): Promise<SettingsView> { return this.request('PATCH', '/api/v1/settings', patch); }

  stats(): Promise<StatsView> { return this.request('GET', '/api/v1/stats'); }
  async statsHistory(seconds: number): Promise<StatsView[]> {
    return (await this.request<{ samples: StatsView[] }>('GET', `/api/v1/stats/history?seconds=${seconds}`)).samples;
  }

  programs(): Promise<{ programs: ProgramView[]; statsEnabled: boolean }> { return this.request('GET', '/api/v1/programs'); }
  setProgramStats(enabled: boolean): Promise<unknown> { return this.request('POST', '/api/v1/programs/stats', { enabled }); }
  async maps(): Promise<MapView[]> { return (await this.request<{ maps: MapView[] }>('GET', '/api/v1/maps')).maps; }
  mapEntries(name: string, offset: number, limit: number): Promise<MapPage> {
    return this.request('GET', `/api/v1/maps/${enc(name)}?offset=${offset}&limit=${limit}`);
  }
  async interfaces(): Promise<Array<{ ifname: string; ifindex: number; mode: string; progId: number }>> {
    return (await this.request<{ interfaces: Array<{ ifname: string; ifindex: number; mode: string; progId: number }> }>('GET', '/api/v1/interfaces')).interfaces;
  }
  async latestBench(): Promise<unknown | null> {
    return (await this.request<{ results: unknown | null }>('GET', '/api/v1/bench/latest')).results;
  }

  /** The WebSocket URL of the live stream (token in the query: WebSocket clients may not set headers). */
  streamUrl(): string {
    const url = new URL(this.baseUrl + '/api/v1/stream');
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.token) url.searchParams.set('token', this.token);
    return url.toString();
  }
}

function enc(segment: string): string { return encodeURIComponent(segment); }
