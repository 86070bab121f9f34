/** RingBuffer: consumes a BPF RINGBUF map from the event loop, one callback per record. */
import { bpfError } from './errors';
import type { BpfMap } from './map';
import { native, type RawRingBufferConsumer } from './native';

export class RingBuffer {
  #consumer: RawRingBufferConsumer | null;

  /**
   * Starts consuming `map` (which must stay open while this is open). `onRecord` gets a copy of
   * each record; if it throws, the exception surfaces as an uncaught exception, like any callback.
   * An open RingBuffer keeps the event loop alive: close() it.
   * @throws BpfError EINVAL when the map is not a RINGBUF.
   */
  constructor(map: BpfMap, onRecord: (rec: Buffer) => void) {
    if (map.typeName !== 'ringbuf') {
      throw bpfError('ring buffer open', map.label, 'EINVAL', `the map is of type ${map.typeName}, not ringbuf`);
    }
    this.#consumer = new (native().RingBufferConsumer)(map.fd, onRecord, map.name);
  }

  /** Drains what is in the ring now, synchronously; returns the number of records delivered. */
  consume(): number {
    return this.#consumer ? this.#consumer.consume() : 0;
  }

  /** Lets the process exit while this is open (like socket.unref()). */
  unref(): this {
    this.#consumer?.unref();
    return this;
  }

  /** Undoes unref(): an open RingBuffer keeps the event loop alive again. */
  ref(): this {
    this.#consumer?.ref();
    return this;
  }

  get closed(): boolean {
    return this.#consumer === null;
  }

  /** Stops polling and frees the ring; a second call does nothing (safe inside onRecord). */
  close(): void {
    if (!this.#consumer) return;
    this.#consumer.close();
    this.#consumer = null;
  }
}
