/**
 * Policy routes that send a health probe for a DSR VIP through one particular backend.
 *
 * A DSR backend serves the VIP from its loopback; a check on the backend's own address proves
 * nothing about that. So the probe connects to VIP:port itself, from a socket carrying a
 * firewall mark (SO_MARK, src/bpf native socketWithMark) that is unique to the pair
 * {VIP, backend}; in the daemon's network namespace
 *     ip rule add pref 3217 fwmark M lookup M
 *     ip route replace VIP/32 via BACKEND table M
 * route exactly that socket's packets to the backend's MAC, as the XDP program would. A backend
 * without the VIP on lo drops the SYN (it is not addressed to it, and it does not forward), so
 * the probe times out. The backend's answer comes from the VIP to the lb's own address and is
 * delivered to the probe socket; the XDP program passes it (it is addressed to the lb).
 *
 * ARP: a backend that answers ARP for the VIP would steal the VIP's traffic on a shared L2.
 * Per VIP and interface toward the backends, a second mark routes VIP/32 straight onto the
 * link (`dev IF scope link`): a marked connect makes the kernel ARP for the VIP itself, after
 * the VIP's neighbour entry was flushed; whoever answers shows as its lladdr, which is matched
 * against the backends' own neighbour entries.
 * IPv6 VIPs: the same with `ip -6` (rule, VIP/128 route, neighbour discovery instead of ARP:
 * whoever answers the neighbour solicitation for the VIP shows as its lladdr).
 * Limits: docs/operations.md (DSR health checks).
 */
import { execFileSync } from 'node:child_process';
import { startProbe } from './checks';

/** ip rule priority of every probe rule: the rules at this priority are the daemon's own. */
export const DSR_RULE_PREF = 3217;
/** First mark (and routing table id); marks MARK_BASE+1 .. MARK_BASE+0xffff are the daemon's. */
export const DSR_MARK_BASE = 0x58480000;
const MAX_PAIRS = 0xffff;

/** Runs `ip` with these arguments in the daemon's namespace; returns stdout. @throws on failure. */
export type IpRunner = (args: string[]) => string;

export const runIp: IpRunner = (args) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });

interface Pair { mark: number; refs: number }

/** `ip` arguments for the VIP's family: ['-6'] for IPv6, [] for IPv4; and its host prefix length. */
function familyArgs(vip: string): { ip: string[]; host: string } {
  return vip.includes(':') ? { ip: ['-6'], host: `${vip}/128` } : { ip: [], host: `${vip}/32` };
}

/** Backend address -> why it fails: it answered ARP for the VIP. */
export type ArpAnswerers = Map<string, string>;

export class DsrProbeRoutes {
  private readonly pairs = new Map<string, Pair>();
  /** `${vip}@${dev}` -> mark of the on-link route used to ARP for the VIP. */
  private readonly arpRoutes = new Map<string, number>();
  private readonly arpRounds = new Map<string, { at: number; result: Promise<ArpAnswerers> }>();
  private readonly devOf = new Map<string, string>();
  private nextIndex = 1;

  constructor(private readonly run: IpRunner = runIp) {}

  /**
   * Removes the rules a previous daemon left at DSR_RULE_PREF and flushes their tables (a
   * crash leaves them behind). Safe when there are none.
   * @throws Error when `ip` cannot be run.
   */
  reset(): void {
    for (const fam of [[], ['-6']]) {
      let text: string;
      try { text = this.run([...fam, '-j', 'rule', 'show', 'pref', String(DSR_RULE_PREF)]); } catch (err) {
        if (fam.length) continue;   // no IPv6 in this namespace: nothing of ours there
        throw err;
      }
      const rules = JSON.parse(text || '[]') as Array<{ table?: string }>;
      for (const rule of rules) {
        const table = Number(rule.table);
        this.tryRun([...fam, 'rule', 'del', 'pref', String(DSR_RULE_PREF)]);
        if (Number.isInteger(table) && table > DSR_MARK_BASE && table <= DSR_MARK_BASE + MAX_PAIRS) this.tryRun([...fam, 'route', 'flush', 'table', String(table)]);
      }
    }
    this.pairs.clear();
    this.arpRoutes.clear();
  }

  /**
   * The mark that routes VIP through `backend`; installs the rule and route on first use.
   * @throws Error when `ip` refuses (e.g. the backend is not on a connected subnet).
   */
  acquire(vip: string, backend: string): number {
    const key = `${vip}>${backend}`;
    const known = this.pairs.get(key);
    if (known) { known.refs++; return known.mark; }
    const mark = this.allocate();
    const id = String(mark);
    const fam = familyArgs(vip);
    try {
      this.run([...fam.ip, 'route', 'replace', fam.host, 'via', backend, 'table', id]);
      this.run([...fam.ip, 'rule', 'add', 'pref', String(DSR_RULE_PREF), 'fwmark', id, 'lookup', id]);
    } catch (err) {
      this.tryRun([...fam.ip, 'route', 'flush', 'table', id]);
      throw new Error(`cannot route probes for ${vip} via ${backend}: ${firstLine(err)}`, { cause: err });
    }
    this.pairs.set(key, { mark, refs: 1 });
    return mark;
  }

  release(vip: string, backend: string): void {
    const key = `${vip}>${backend}`;
    const pair = this.pairs.get(key);
    if (!pair || --pair.refs > 0) return;
    this.pairs.delete(key);
    this.removeRule(pair.mark, vip);
    if (![...this.pairs.keys()].some((k) => k.startsWith(`${vip}>`))) {
      for (const [arpKey, mark] of this.arpRoutes) {
        if (!arpKey.startsWith(`${vip}@`)) continue;
        this.arpRoutes.delete(arpKey);
        this.removeRule(mark, vip);
      }
      this.arpRounds.delete(vip);
    }
  }

  /**
   * Which of `backends` answer ARP for `vip` on the interface toward them: one round (shared
   * by every caller within `reuseMs`) flushes the VIP's neighbour entry, ARPs for it with a
   * marked connect to vip:port bounded by `timeoutMs`, and matches the answer's MAC.
   * Never throws: a round that cannot run finds nobody.
   */
  arpAnswerers(vip: string, port: number, backends: string[], timeoutMs: number, reuseMs: number): Promise<ArpAnswerers> {
    const cached = this.arpRounds.get(vip);
    if (cached && Date.now() - cached.at < reuseMs) return cached.result;
    const result = this.arpRound(vip, port, backends, timeoutMs).catch(() => new Map() as ArpAnswerers);
    this.arpRounds.set(vip, { at: Date.now(), result });
    return result;
  }

  private async arpRound(vip: string, port: number, backends: string[], timeoutMs: number): Promise<ArpAnswerers> {
    const answerers: ArpAnswerers = new Map();
    const fam = familyArgs(vip);
    const byDev = new Map<string, string[]>();
    for (const b of backends) {
      const dev = this.deviceOf(b);
      if (dev) byDev.set(dev, [...(byDev.get(dev) ?? []), b]);
    }
    for (const [dev, addresses] of byDev) {
      const key = `${vip}@${dev}`;
      let mark = this.arpRoutes.get(key);
      if (mark === undefined) {
        mark = this.allocate();
        const id = String(mark);
        try {
          this.run([...fam.ip, 'route', 'replace', fam.host, 'dev', dev, 'scope', 'link', 'table', id]);
          this.run([...fam.ip, 'rule', 'add', 'pref', String(DSR_RULE_PREF), 'fwmark', id, 'lookup', id]);
        } catch (err) {
          this.removeRule(mark, vip);
          throw err;
        }
        this.arpRoutes.set(key, mark);
      }
      this.tryRun([...fam.ip, 'neigh', 'flush', 'to', vip, 'dev', dev]);
      const probe = startProbe({ type: 'tcp', address: vip, port, timeoutMs, mark });
      await probe.result;
      const neigh = JSON.parse(this.run([...fam.ip, '-j', 'neigh', 'show', 'dev', dev]) || '[]') as Array<{ dst?: string; lladdr?: string }>;
      const vipMac = neigh.find((n) => n.dst === vip)?.lladdr;
      if (!vipMac) continue;
      for (const n of neigh) {
        if (n.dst && n.dst !== vip && n.lladdr === vipMac && addresses.includes(n.dst)) {
          answerers.set(n.dst, `answers ARP for the VIP ${vip} (${vipMac} on ${dev})`);
        }
      }
    }
    return answerers;
  }

  /** The interface the lb reaches `address` through (cached), or null. */
  private deviceOf(address: string): string | null {
    const known = this.devOf.get(address);
    if (known) return known;
    try {
      const routes = JSON.parse(this.run(['-j', 'route', 'get', address])) as Array<{ dev?: string; gateway?: string }>;
      const dev = routes[0]?.dev;
      // Only a backend on the link itself can take the VIP's traffic by ARP.
      if (!dev || routes[0].gateway) return null;
      this.devOf.set(address, dev);
      return dev;
    } catch {
      return null;
    }
  }

  private removeRule(mark: number, vip: string): void {
    const id = String(mark);
    const fam = familyArgs(vip).ip;
    this.tryRun([...fam, 'rule', 'del', 'pref', String(DSR_RULE_PREF), 'fwmark', id, 'lookup', id]);
    this.tryRun([...fam, 'route', 'flush', 'table', id]);
  }

  /** {vip>backend: mark} of the installed pairs. */
  installed(): Record<string, number> {
    return Object.fromEntries([...this.pairs].map(([k, p]) => [k, p.mark]));
  }

  private allocate(): number {
    const used = new Set([...this.pairs.values()].map((p) => p.mark).concat([...this.arpRoutes.values()]));
    for (let i = 0; i < MAX_PAIRS; i++) {
      const index = ((this.nextIndex - 1 + i) % MAX_PAIRS) + 1;
      if (!used.has(DSR_MARK_BASE + index)) {
        this.nextIndex = (index % MAX_PAIRS) + 1;
        return DSR_MARK_BASE + index;
      }
    }
    throw new Error(`more than ${MAX_PAIRS} DSR {VIP, backend} pairs to probe`);
  }

  private tryRun(args: string[]): void {
    try { this.run(args); } catch { /* already gone */ }
  }
}

function firstLine(err: unknown): string {
  const e = err as { stderr?: string | Buffer; message?: string };
  const text = (e.stderr ? String(e.stderr) : '') || e.message || String(err);
  return text.trim().split('\n')[0];
}
