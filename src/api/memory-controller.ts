/**
 * A Controller over DesiredState alone, with no data plane: a test double of the daemon for
 * the API's unit tests (and for running the API without a kernel). Kernel views are empty,
 * counters are whatever the test sets, health is whatever the test marks.
 */
import type {
  BackendSpec, Controller, MapPage, MapView, ProgramView, ServiceSpec, ServiceView, SettingsView,
  StatsView, StreamMessage,
} from '../domain/types';
import { XdplbError } from '../domain/errors';
import { DesiredState, backendKey } from '../config/state';
import type { Config } from '../config/schema';
import { XDP_ACTIONS, REASONS, type StatsSnapshot } from '../dataplane/types';

export class MemoryController implements Controller {
  state: DesiredState;
  /** Cumulative counters returned by counters(); tests fill them in. */
  snapshot: StatsSnapshot;
  readonly health = new Map<string, 'up' | 'down'>();   // "service/address:port" -> health
  private readonly listeners = new Set<(msg: StreamMessage) => void>();
  private programStats = false;
  private bench: unknown = null;

  constructor(config: unknown = {}) {
    this.state = new DesiredState(config);
    this.snapshot = {
      at: Date.now(), services: {}, backends: {},
      actions: Object.fromEntries(XDP_ACTIONS.map((a) => [a, { packets: 0, bytes: 0 }])) as StatsSnapshot['actions'],
      reasons: Object.fromEntries(REASONS.map((r) => [r, { packets: 0, bytes: 0 }])) as StatsSnapshot['reasons'],
    };
  }

  /** Sends a message to every stream subscriber (what the daemon does on its own events). */
  publish(msg: StreamMessage): void {
    for (const listener of this.listeners) listener(msg);
  }

  subscriberCount(): number {
    return this.listeners.size;
  }

  setLatestBench(results: unknown): void {
    this.bench = results;
  }

  private view(spec: ServiceSpec, id: number): ServiceView {
    const { backends, ...rest } = spec;
    const usable = backends.filter((b) => this.backendHealth(spec.name, b) !== 'down' && !b.drain && b.weight > 0);
    const total = usable.reduce((sum, b) => sum + b.weight, 0);
    return {
      ...rest, id,
      backends: backends.map((b, i) => ({
        ...b, id: id * 1000 + i, key: backendKey(b), health: this.backendHealth(spec.name, b),
        draining: b.drain === true, inTable: usable.includes(b), tableShare: usable.includes(b) && total > 0 ? b.weight / total : 0,
      })),
    };
  }

  private backendHealth(service: string, backend: BackendSpec): 'up' | 'down' | 'unchecked' {
    return this.health.get(`${service}/${backendKey(backend)}`) ?? 'unchecked';
  }

  private async apply(next: DesiredState): Promise<void> {
    this.state = next;
    this.publish({ type: 'state', data: { services: this.listServices() } });
  }

  listServices(): ServiceView[] {
    return this.state.services.map((s, i) => this.view(s, i + 1));
  }
  getService(name: string): ServiceView {
    this.state.getService(name);
    return this.listServices().find((s) => s.name === name)!;
  }
  async createService(spec: ServiceSpec): Promise<ServiceView> {
    await this.apply(this.state.createService(spec));
    return this.getService(spec.name);
  }
  async replaceService(name: string, spec: ServiceSpec): Promise<ServiceView> {
    await this.apply(this.state.replaceService(name, spec));
    return this.getService(name);
  }
  async deleteService(name: string): Promise<void> {
    await this.apply(this.state.deleteService(name));
  }
  async addBackend(service: string, spec: BackendSpec): Promise<ServiceView> {
    await this.apply(this.state.addBackend(service, spec));
    return this.getService(service);
  }
  async patchBackend(service: string, key: string, patch: { weight?: number; drain?: boolean }): Promise<ServiceView> {
    await this.apply(this.state.patchBackend(service, key, patch));
    return this.getService(service);
  }
  async deleteBackend(service: string, key: string): Promise<void> {
    await this.apply(this.state.deleteBackend(service, key));
  }
  getSettings(): SettingsView {
    return this.state.settings();
  }
  async patchSettings(patch: Partial<SettingsView>): Promise<SettingsView> {
    await this.apply(this.state.patchSettings(patch));
    return this.getSettings();
  }
  hashSeed(): { hashSeed: number } {
    return { hashSeed: this.state.config.hashSeed };
  }
  async setHashSeed(seed: number): Promise<{ hashSeed: number }> {
    await this.apply(new DesiredState({ ...this.state.toConfig(), hashSeed: seed }));
    return this.hashSeed();
  }
  programs(): { programs: ProgramView[]; statsEnabled: boolean } {
    return { programs: [], statsEnabled: this.programStats };
  }
  setProgramStats(enabled: boolean): void {
    this.programStats = enabled;
  }
  maps(): MapView[] {
    return [];
  }
  mapEntries(name: string): MapPage {
    throw new XdplbError('XDPLB_ERR_NOT_FOUND', `map "${name}" does not exist`);
  }
  interfaces(): Array<{ ifname: string; ifindex: number; mode: string; progId: number }> {
    return [];
  }
  counters(): StatsSnapshot {
    return this.snapshot;
  }
  stats(): StatsView {
    const s = this.snapshot;
    const sum = (c?: { fwdPackets: number; fwdBytes: number; revPackets: number; revBytes: number }) =>
      ({ packets: (c?.fwdPackets ?? 0) + (c?.revPackets ?? 0), bytes: (c?.fwdBytes ?? 0) + (c?.revBytes ?? 0) });
    return {
      at: s.at, interval: 1,
      totals: { pps: 0, bps: 0, ...Object.values(s.actions).reduce((t, a) => ({ packets: t.packets + a.packets, bytes: t.bytes + a.bytes }), { packets: 0, bytes: 0 }) },
      services: this.listServices().map((svc) => ({
        name: svc.name, fwdPps: 0, fwdBps: 0, revPps: 0, revBps: 0, ...sum(s.services[svc.name]),
        backends: svc.backends.map((b) => ({ key: b.key, fwdPps: 0, fwdBps: 0, revPps: 0, revBps: 0, ...sum(s.backends[svc.name]?.[b.key]), health: b.health })),
      })),
      actions: XDP_ACTIONS.map((name) => ({ name, pps: 0, packets: s.actions[name].packets })),
      reasons: REASONS.map((name) => ({ name, pps: 0, packets: s.reasons[name].packets })),
    };
  }
  statsHistory(seconds: number): StatsView[] {
    return seconds > 0 ? [this.stats()] : [];
  }
  latestBench(): unknown | null {
    return this.bench;
  }
  subscribe(listener: (msg: StreamMessage) => void): () => void {
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  /** The current config (e.g. to check what the API changed). */
  config(): Config {
    return this.state.toConfig();
  }
}
