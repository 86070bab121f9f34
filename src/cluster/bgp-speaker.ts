/**
 * The daemon's BGP speaker: runs BIRD (adopting one a previous daemon left running), keeps its
 * config equal to what announcedVips() decides, and reports the sessions (NodeStatus.bgp).
 *
 * - start(): writes bird.conf announcing what the policy allows now, adopts the BIRD answering
 *   on the socket (reconfigured: a restart with the same VIPs changes no route) or spawns
 *   `bird -f -c CONF -s SOCK -P PIDFILE`.
 * - Every intervalMs (and on refresh()) the policy is evaluated again; a change rewrites
 *   bird.conf and runs `birdc configure` (BIRD diffs the static protocol: only changed /32s move).
 * - BIRD exiting while the daemon runs is restarted (at most once a second).
 * - onDrain(true, grace): withdraw everything, keep forwarding (the data plane is untouched);
 *   onDrain(false): announce again.
 * - stop(): withdraw, then `birdc down` (the peers see a clean BGP Cease), wait for BIRD to exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { ServiceView } from '../domain/types';
import type { BgpConfig } from '../config/schema';
import { announcedVips, withdrawReason } from './announce';
import {
  birdConfigText, birdFiles, birdc, birdcBinary, parseBfdSessions, parseProtocols, parseRoutePrefixes, peerProtocol, prefixVip,
} from './bird';
import { canonicalOrSelf, compareAddresses, familyOf } from '../domain/address';

/** NodeStatus.bgp of the cluster contract. */
export interface NodeBgpStatus {
  state: string;
  peers: Array<{ peer: string; state: string; bfd: string | null }>;
  announced: string[];
  drained: boolean;
}

export interface BgpSpeakerOptions {
  bgp: BgpConfig;
  /** Directory for bird.ctl, bird.conf, bird.pid, bird.log when bgp.socket is not set. */
  birdDir: string;
  logger: Logger;
  services: () => ReadonlyArray<Pick<ServiceView, 'vip' | 'backends'>>;
  /** Whether the data plane is attached to every configured interface now. */
  attached: () => boolean;
  /** Whether the desired state is fresh (file mode: always true). */
  storeFresh: () => boolean;
  /** Policy evaluation period (default 250 ms). */
  intervalMs?: number;
  /** Start drained (a drain that arrived before BGP started, or restored from the store). */
  drained?: { drain: boolean; graceSeconds: number };
}

const SOCKET_WAIT_MS = 10_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
}

function isBird(pid: number): boolean {
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return /(^|\/)bird$/.test(cmd[0]) && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export class BgpSpeaker {
  private bgp: BgpConfig;
  private readonly files: ReturnType<typeof birdFiles>;
  private readonly birdcPath: string;
  private readonly logger: Logger;
  private readonly opts: BgpSpeakerOptions;
  private child: ChildProcess | null = null;
  private pid = 0;
  private written: string | null = null;
  private lastVips: string[] = [];
  private lastReason = '';
  private lastError = '';
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;
  private lastSpawn = 0;
  private drainedFlag = false;
  private graceUntil = 0;
  private readonly warnedNoPeer = new Set<4 | 6>();

  constructor(opts: BgpSpeakerOptions) {
    this.opts = opts;
    this.bgp = opts.bgp;
    this.files = birdFiles(opts.bgp.socket ?? `${opts.birdDir.replace(/\/+$/, '')}/bird.ctl`);
    this.birdcPath = birdcBinary(opts.bgp.birdBinary);
    this.logger = opts.logger.child({ component: 'bgp' });
    if (opts.drained?.drain) {
      this.drainedFlag = true;
      this.graceUntil = Date.now() + Math.max(0, opts.drained.graceSeconds) * 1000;
    }
  }

  /** The BIRD process's pid (0 before start). */
  get birdPid(): number { return this.pid; }
  get socket(): string { return this.files.socket; }
  get drained(): boolean { return this.drainedFlag; }
  /** Until when (ms since the epoch) a drained node promised to keep forwarding (0: no grace). */
  get drainGraceUntil(): number { return this.graceUntil; }
  /** The VIPs last given to BIRD. */
  get vips(): string[] { return [...this.lastVips]; }

  /** @throws Error when BIRD cannot be started or does not answer on its socket. */
  async start(): Promise<void> {
    fs.mkdirSync(this.files.config.replace(/\/[^/]+$/, ''), { recursive: true, mode: 0o700 });
    // What the policy allows now, so that adopting a running BIRD does not withdraw and
    // re-announce (a hitless daemon restart keeps every route).
    this.lastVips = announcedVips(this.policyInput());
    this.writeConfig(this.lastVips);
    const adopted = await this.adopt();
    if (adopted) {
      this.logger.info({ pid: this.pid, socket: this.files.socket }, 'adopted the running BIRD');
      await birdc(this.birdcPath, this.files.socket, ['configure']);
    } else {
      await this.spawnBird();
    }
    await this.refresh();
    this.timer = setInterval(() => { void this.tick(); }, this.opts.intervalMs ?? 250);
    this.timer.unref();
  }

  /** Evaluates the policy now and tells BIRD when the set changed. Never throws (logs). */
  refresh(): Promise<void> {
    const run = this.chain.then(() => this.apply(), () => this.apply());
    this.chain = run.catch(() => undefined);
    return run.then(() => { this.lastError = ''; }, (err: Error) => {
      // Once per distinct failure, not every 250 ms while BIRD restarts.
      if (err.message !== this.lastError) this.logger.warn({ err: err.message }, 'BGP announcement update failed; retrying');
      this.lastError = err.message;
    });
  }

  /** Applies a changed bgp: section (peers, timers) with `birdc configure`. */
  async reconfigure(bgp: BgpConfig): Promise<void> {
    this.bgp = bgp;
    this.written = null;
    await this.refresh();
  }

  /**
   * The drain hook (PUT /api/v1/nodes/NAME/drain): drain withdraws every VIP now while the data
   * plane keeps forwarding (flows already routed here, NAT replies); undrain announces again.
   */
  async onDrain(drain: boolean, graceSeconds = 0): Promise<NodeBgpStatus> {
    this.drainedFlag = drain;
    this.graceUntil = drain ? Date.now() + Math.max(0, graceSeconds) * 1000 : 0;
    this.logger.info({ drain, graceSeconds }, drain ? 'node drained: withdrawing every VIP' : 'node undrained: announcing again');
    await this.refresh();
    return this.status();
  }

  /** NodeStatus.bgp from birdc (state 'down' when BIRD does not answer). */
  async status(): Promise<NodeBgpStatus> {
    let protocols;
    try {
      protocols = parseProtocols(await birdc(this.birdcPath, this.files.socket, ['show', 'protocols', 'all']));
    } catch (err) {
      return { state: 'down', peers: this.bgp.peers.map((p) => ({ peer: p.address, state: 'down', bfd: null })), announced: [], drained: this.drainedFlag };
    }
    let bfd = new Map<string, string>();
    if (this.bgp.bfd) {
      try { bfd = parseBfdSessions(await birdc(this.birdcPath, this.files.socket, ['show', 'bfd', 'sessions'])); } catch { /* no BFD answer: null below */ }
    }
    const peers: NodeBgpStatus['peers'] = [];
    const announced = new Set<string>();
    for (const p of this.bgp.peers) {
      const proto = protocols.find((x) => x.name === peerProtocol(p.address));
      const state = proto ? (proto.bgpState ?? proto.state) : 'unconfigured';
      peers.push({ peer: p.address, state, bfd: this.bgp.bfd ? (bfd.get(canonicalOrSelf(p.address)) ?? 'none') : null });
      if (state === 'Established') {
        try {
          const text = await birdc(this.birdcPath, this.files.socket, ['show', 'route', 'export', peerProtocol(p.address)]);
          for (const prefix of parseRoutePrefixes(text)) {
            const vip = prefixVip(prefix);
            if (vip) announced.add(vip);
          }
        } catch { /* counted as nothing exported */ }
      }
    }
    const up = peers.filter((p) => p.state === 'Established').length;
    return {
      state: up === peers.length ? 'established' : up > 0 ? 'partial' : 'idle',
      peers, announced: [...announced].sort(compareAddresses), drained: this.drainedFlag,
    };
  }

  /** Withdraws every VIP and stops BIRD (clean Cease to the peers). Never throws. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    await this.chain.catch(() => undefined);
    try {
      this.writeConfig([]);
      await birdc(this.birdcPath, this.files.socket, ['configure']);
      this.lastVips = [];
      await birdc(this.birdcPath, this.files.socket, ['down']).catch(() => undefined);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'BIRD did not take the withdrawal; stopping it');
    }
    const pid = this.pid;
    for (let i = 0; i < 60 && pid && pidAlive(pid) && isBird(pid); i++) await sleep(50);
    if (pid && pidAlive(pid) && isBird(pid)) {
      try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    }
    this.logger.info({ pid }, 'BIRD stopped; VIPs withdrawn');
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    if (this.pid && !pidAlive(this.pid) && !this.child) {
      // An adopted BIRD died: start our own.
      this.logger.warn({ pid: this.pid }, 'BIRD exited; starting it again');
      this.pid = 0;
      await this.spawnBird().catch((err: Error) => this.logger.error({ err: err.message }, 'cannot restart BIRD'));
    }
    await this.refresh();
  }

  private async apply(): Promise<void> {
    if (this.stopping) return;
    const input = this.policyInput();
    const vips = announcedVips(input);
    const reason = withdrawReason(input);
    if (reason !== this.lastReason) {
      if (reason) this.logger.warn({ reason }, 'withdrawing every VIP');
      this.lastReason = reason;
    }
    for (const family of [4, 6] as const) {
      const orphan = vips.some((v) => familyOf(v) === family) && !this.bgp.peers.some((p) => familyOf(canonicalOrSelf(p.address)) === family);
      if (orphan && !this.warnedNoPeer.has(family)) {
        this.logger.warn({ family }, `IPv${family} VIPs are announced to no one: the bgp section has no IPv${family} peer (docs/cluster.md, "IPv6 VIPs")`);
      }
      if (orphan) this.warnedNoPeer.add(family); else this.warnedNoPeer.delete(family);
    }
    if (this.written !== null && vips.join(',') === this.lastVips.join(',')) return;
    this.writeConfig(vips);
    await birdc(this.birdcPath, this.files.socket, ['configure']);
    const added = vips.filter((v) => !this.lastVips.includes(v));
    const removed = this.lastVips.filter((v) => !vips.includes(v));
    this.lastVips = vips;
    this.logger.info({ announced: vips, added, removed }, 'BGP announcements updated');
  }

  private policyInput() {
    return { attached: this.opts.attached(), storeFresh: this.opts.storeFresh(), drained: this.drainedFlag, services: this.opts.services() };
  }

  private writeConfig(vips: string[]): void {
    const text = birdConfigText(this.bgp, vips);
    const tmp = `${this.files.config}.tmp`;
    fs.writeFileSync(tmp, text, { mode: 0o600 });
    fs.renameSync(tmp, this.files.config);
    this.written = text;
  }

  /** Adopts a BIRD from the pid file that answers on our socket. */
  private async adopt(): Promise<boolean> {
    let pid = 0;
    try { pid = Number(fs.readFileSync(this.files.pidFile, 'utf8').trim()); } catch { return false; }
    if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid) || !isBird(pid)) return false;
    try {
      await birdc(this.birdcPath, this.files.socket, ['show', 'status'], 2000);
    } catch {
      return false;
    }
    this.pid = pid;
    return true;
  }

  private async spawnBird(): Promise<void> {
    const wait = this.lastSpawn + 1000 - Date.now();
    if (wait > 0) await sleep(wait);
    this.lastSpawn = Date.now();
    fs.rmSync(this.files.socket, { force: true });
    const log = fs.openSync(this.files.log, 'a');
    const child = spawn(this.bgp.birdBinary, ['-f', '-c', this.files.config, '-s', this.files.socket, '-P', this.files.pidFile],
      { detached: true, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    let spawnError: Error | null = null;
    let ready = false;
    child.once('error', (err) => { spawnError = err; });
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.stopping || !ready) return;
      this.logger.error({ pid: child.pid, code, signal }, 'BIRD exited; starting it again');
      this.pid = 0;
      void this.spawnBird().then(() => { this.written = null; return this.refresh(); })
        .catch((err: Error) => this.logger.error({ err: err.message }, 'cannot restart BIRD'));
    });
    child.unref();
    this.child = child;
    this.pid = child.pid ?? 0;
    const deadline = Date.now() + SOCKET_WAIT_MS;
    for (;;) {
      if (spawnError) throw new Error(`cannot start BIRD (${this.bgp.birdBinary}): ${(spawnError as Error).message}`);
      if (this.child !== child) throw new Error(`BIRD exited at start; see ${this.files.log}: ${tail(this.files.log)}`);
      try {
        await birdc(this.birdcPath, this.files.socket, ['show', 'status'], 1000);
        ready = true;
        break;
      } catch (err) {
        if (Date.now() > deadline) {
          try { process.kill(child.pid!, 'SIGTERM'); } catch { /* gone */ }
          throw new Error(`BIRD did not answer on ${this.files.socket} within ${SOCKET_WAIT_MS} ms: ${(err as Error).message}`);
        }
        await sleep(50);
      }
    }
    this.logger.info({ pid: this.pid, socket: this.files.socket }, 'BIRD started');
  }
}

function tail(file: string): string {
  try { return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | '); } catch { return 'no log'; }
}
