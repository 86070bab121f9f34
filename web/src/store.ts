// Live state shared by every page: the stats history (seeded from the API, then one sample a
// second from the stream), the services, and a bounded buffer of kernel trace events.
import { get, getToken } from './api';
import type { ServiceView, StatsView, StreamMessage, TraceEvent } from './api-types';

export const HISTORY_SECONDS = 300;
export const EVENT_BUFFER = 1000;
const EVENT_TRIM_SLACK = 250;

export interface BufferedEvent extends TraceEvent { receivedAt: number; seq: number }
export interface HealthChange { at: number; service: string; backend: string; health: 'up' | 'down' }
export const HEALTH_LOG = 20;
export type StreamStatus = 'connecting' | 'live' | 'down';
type Topic = 'stats' | 'services' | 'events' | 'status';

class LiveStore {
  history: StatsView[] = [];
  services: ServiceView[] = [];
  events: BufferedEvent[] = [];
  /** The latest health transitions seen on the stream, newest last. */
  healthLog: HealthChange[] = [];
  eventsSeen = 0;
  /**
   * Wall clock minus kernel monotonic clock (ms), estimated as the smallest gap seen between an
   * event's arrival and its kernel timestamp: event times keep the kernel's own spacing.
   */
  kernelClockOffsetMs: number | null = null;
  status: StreamStatus = 'down';
  private listeners = new Map<Topic, Set<() => void>>();
  private socket: WebSocket | null = null;
  private retryTimer = 0;
  private retryDelayMs = 1000;
  private running = false;

  /** The last EVENT_BUFFER events, oldest first. */
  recentEvents(): BufferedEvent[] {
    return this.events.length > EVENT_BUFFER ? this.events.slice(-EVENT_BUFFER) : this.events;
  }

  get latest(): StatsView | null { return this.history[this.history.length - 1] ?? null; }

  /** Subscribes to a topic; returns the unsubscribe function. */
  on(topic: Topic, listener: () => void): () => void {
    let set = this.listeners.get(topic);
    if (!set) this.listeners.set(topic, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  private emit(topic: Topic): void {
    for (const listener of this.listeners.get(topic) ?? []) listener();
  }

  /** Loads services and history, then keeps them live over the stream. Throws ApiError. */
  async start(): Promise<void> {
    this.running = true;
    await Promise.all([this.reloadServices(), this.reloadHistory()]);
    this.connect();
  }

  stop(): void {
    this.running = false;
    window.clearTimeout(this.retryTimer);
    this.socket?.close();
    this.socket = null;
    this.history = [];
    this.services = [];
    this.events = [];
    this.healthLog = [];
    this.eventsSeen = 0;
    this.kernelClockOffsetMs = null;
    this.setStatus('down');
  }

  async reloadServices(): Promise<void> {
    const res = await get<{ services: ServiceView[] }>('/services');
    this.services = res.services;
    this.emit('services');
  }

  private async reloadHistory(): Promise<void> {
    const res = await get<{ samples: StatsView[] }>(`/stats/history?seconds=${HISTORY_SECONDS}`);
    this.history = res.samples.slice(-HISTORY_SECONDS);
    this.emit('stats');
  }

  private setStatus(status: StreamStatus): void {
    if (this.status === status) return;
    this.status = status;
    this.emit('status');
  }

  private connect(): void {
    const token = getToken();
    if (!this.running || !token) return;
    this.setStatus('connecting');
    const url = new URL(`api/v1/stream?token=${encodeURIComponent(token)}`, location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      this.retryDelayMs = 1000;
      this.setStatus('live');
    };
    socket.onmessage = (msg) => this.handle(JSON.parse(String(msg.data)) as StreamMessage);
    socket.onclose = () => {
      if (this.socket !== socket || !this.running) return;
      this.socket = null;
      this.setStatus('down');
      // Back off, then reconnect and re-seed whatever was missed while down.
      this.retryTimer = window.setTimeout(() => {
        Promise.all([this.reloadServices(), this.reloadHistory()]).catch(() => undefined);
        this.connect();
      }, this.retryDelayMs);
      this.retryDelayMs = Math.min(this.retryDelayMs * 2, 10_000);
    };
  }

  private handle(msg: StreamMessage): void {
    switch (msg.type) {
      case 'stats': {
        const last = this.latest;
        if (last && msg.data.at <= last.at) return; // duplicate of a seeded sample
        this.history.push(msg.data);
        if (this.history.length > HISTORY_SECONDS) this.history.splice(0, this.history.length - HISTORY_SECONDS);
        this.emit('stats');
        break;
      }
      case 'event': {
        const receivedAt = Date.now();
        const offset = receivedAt - msg.data.tsNs / 1e6;
        if (this.kernelClockOffsetMs === null || offset < this.kernelClockOffsetMs) this.kernelClockOffsetMs = offset;
        this.events.push({ ...msg.data, receivedAt, seq: ++this.eventsSeen });
        // Trim in batches: at thousands of events a second, a splice per event would dominate.
        if (this.events.length > EVENT_BUFFER + EVENT_TRIM_SLACK) this.events.splice(0, this.events.length - EVENT_BUFFER);
        this.emit('events');
        break;
      }
      case 'state':
        this.services = msg.data.services;
        this.emit('services');
        break;
      case 'health': {
        const { service, backend, health } = msg.data;
        this.healthLog.push({ at: Date.now(), service, backend, health });
        if (this.healthLog.length > HEALTH_LOG) this.healthLog.shift();
        const backendView = this.services.find((s) => s.name === service)?.backends.find((b) => b.key === backend);
        if (backendView) backendView.health = health;
        this.emit('services');
        break;
      }
    }
  }
}

export const store = new LiveStore();
