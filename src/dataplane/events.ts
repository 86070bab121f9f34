/**
 * The trace events of a loaded data plane: one ring-buffer consumer over its events map, fanned
 * out to every subscriber, names resolved through the reconciler's ids. The program writes
 * events only while settings.sampleRate > 0.
 */
import { RingBuffer } from '../bpf';
import { LbEventCodec, ipv6ToBytes } from './abi';
import { LB } from './lb.generated';
import { REASONS, XDP_ACTIONS, type TraceEvent } from './types';
import type { Dataplane } from './dataplane';
import type { IdNames } from './inspect';

export class TraceEvents {
  private ring: RingBuffer | null = null;
  private readonly listeners = new Set<(e: TraceEvent) => void>();

  /** Consumes `dp`'s events map (which stays the data plane's); `names` resolves the ids. */
  constructor(private readonly dp: Dataplane, private readonly names: Pick<IdNames, 'serviceName' | 'backendName'>) {}

  /**
   * Calls `cb` with every trace event from the ring buffer (names resolved); returns the
   * unsubscribe function. Events are only produced while settings.sampleRate > 0.
   * @throws BpfError when the ring cannot be opened
   */
  subscribe(cb: (e: TraceEvent) => void): () => void {
    if (!this.ring) {
      this.ring = new RingBuffer(this.dp.map('events'), (rec) => {
        if (rec.length < LbEventCodec.size) return;
        const e = this.decodeEvent(rec);
        for (const l of this.listeners) {
          // One faulty listener must not stop the others or throw into the addon's poll callback.
          try { l(e); } catch (err) { process.emitWarning(`dataplane: trace listener threw: ${String(err)}`); }
        }
      });
    }
    this.listeners.add(cb);
    return () => {
      this.listeners.delete(cb);
      if (this.listeners.size === 0 && this.ring) {
        this.ring.close();
        this.ring = null;
      }
    };
  }

  /** Drains the ring buffer now (tests: deliver what the kernel wrote without waiting). */
  drainEvents(): number {
    return this.ring ? this.ring.consume() : 0;
  }

  decodeEvent(rec: Buffer): TraceEvent {
    return decodeTraceEvent(rec, this.names);
  }

  /** Stops consuming (an open ring keeps the event loop alive) and forgets every subscriber. */
  close(): void {
    this.ring?.close();
    this.ring = null;
    this.listeners.clear();
  }
}

/** An event address as text: family 6 canonical IPv6 (RFC 5952); otherwise (IPv4, stored as
 * ::ffff:a.b.c.d, or a frame that was not IP, all zero) the dotted IPv4 of the last 4 bytes. */
function eventAddress(text: string, family: number): string {
  if (family === LB.FAMILY_IPV6) return text;
  const b = ipv6ToBytes(text);
  return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
}

/** One ring-buffer record as a TraceEvent, ids resolved through `names`. */
export function decodeTraceEvent(rec: Buffer, names: Pick<IdNames, 'serviceName' | 'backendName'>): TraceEvent {
  const e = LbEventCodec.decode(rec);
  return {
    tsNs: e.tsNs, ifindex: e.ifindex, pktLen: e.pktLen,
    service: e.serviceId ? names.serviceName(e.serviceId) : null,
    backend: e.backendId ? names.backendName(e.backendId) : null,
    serviceId: e.serviceId, backendId: e.backendId,
    saddr: eventAddress(e.saddr, e.family), daddr: eventAddress(e.daddr, e.family),
    sport: e.sport, dport: e.dport, proto: e.proto,
    ...(e.family === LB.FAMILY_IPV4 || e.family === LB.FAMILY_IPV6 ? { family: e.family as 4 | 6 } : {}),
    action: XDP_ACTIONS[e.action] ?? 'aborted',
    reason: REASONS[e.reason] ?? 'malformed',
  };
}
