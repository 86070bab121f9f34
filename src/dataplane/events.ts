/**
 * The trace events of a loaded data plane: one ring-buffer consumer over its events map, fanned
 * out to every subscriber, names resolved through the reconciler's ids. The program writes
 * events only while settings.sampleRate > 0.
 */
import { RingBuffer } from '../bpf';
import { LbEventCodec } from './abi';
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
    const e = LbEventCodec.decode(rec);
    return {
      tsNs: e.tsNs, ifindex: e.ifindex, pktLen: e.pktLen,
      service: e.serviceId ? this.names.serviceName(e.serviceId) : null,
      backend: e.backendId ? this.names.backendName(e.backendId) : null,
      serviceId: e.serviceId, backendId: e.backendId, saddr: e.saddr, daddr: e.daddr,
      sport: e.sport, dport: e.dport, proto: e.proto,
      action: XDP_ACTIONS[e.action] ?? 'aborted',
      reason: REASONS[e.reason] ?? 'malformed',
    };
  }

  /** Stops consuming (an open ring keeps the event loop alive) and forgets every subscriber. */
  close(): void {
    this.ring?.close();
    this.ring = null;
    this.listeners.clear();
  }
}
