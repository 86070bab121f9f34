/** Program: a loaded BPF program (info, BPF_PROG_TEST_RUN in three flavours, pinning); XdpLink.attach attaches one. */
import type { ProgramInfo, TestRunOptions, TestRunResult } from './api';
import { bpfError } from './errors';
import { FdHandle } from './handle';
import { native } from './native';

/** BPF_F_TEST_XDP_LIVE_FRAMES: test-run frames go through the real XDP_TX/REDIRECT paths. */
export const BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1;

export interface TestRunManyOptions {
  /** xdp_md.ingress_ifindex; the interface must exist in the calling thread's netns. */
  ingressIfindex?: number;
  /** CPU the calling thread is pinned to for the loop (restored after); default: not pinned. */
  pinCpu?: number;
}
export interface TestRunManyResult {
  /** Kernel-measured duration of each call, ns. */
  durationsNs: Float64Array;
  /** How many calls returned each XDP action: retval -> count. */
  retvals: Record<number, number>;
}
export interface TestRunLiveOptions {
  count: number;
  batchSize?: number;
  ingressIfindex?: number;
  pinCpu?: number;
}
export interface TestRunLiveResult {
  retval: number;
  /** Kernel's average per frame, ns. */
  durationNs: number;
  /** Wall time of the whole syscall, ns. */
  wallNs: number;
}

export class Program extends FdHandle {
  readonly name: string;

  /** Wraps a program fd this process owns (close() closes it). */
  constructor(fd: number, name: string) {
    super(fd);
    this.name = name;
  }

  get label(): string {
    return `program '${this.name}'`;
  }

  /**
   * Opens a program pinned on bpffs.
   * @throws BpfError ENOENT when nothing is pinned there.
   */
  static fromPin(pinPath: string): Program {
    const fd = native().objGet(pinPath, 'program');
    return Program.adopt(fd, pinPath);
  }

  /**
   * Opens a program by its kernel id.
   * @throws BpfError ENOENT when no program has that id.
   */
  static fromId(id: number): Program {
    return Program.adopt(native().progFdFromId(id), `id ${id}`);
  }

  private static adopt(fd: number, what: string): Program {
    try {
      return new Program(fd, native().progInfo(fd, what).name);
    } catch (err) {
      native().closeFd(fd);
      throw err;
    }
  }

  /** The kernel's info (id, tag, run counts, ...). @throws BpfError */
  info(): ProgramInfo {
    return native().progInfo(this.fd, this.name);
  }

  /**
   * One BPF_PROG_TEST_RUN. With ingressIfindex an xdp_md context is passed (rx queue 0); the
   * interface must exist in the calling thread's network namespace (see enterNetns).
   * @throws BpfError (op 'test run'), e.g. EINVAL for frames shorter than 14 bytes.
   */
  testRun(data: Buffer, opts: TestRunOptions = {}): TestRunResult {
    if (!Buffer.isBuffer(data)) throw bpfError('test run', this.label, 'EINVAL', 'data must be a Buffer');
    return native().testRun(this.fd, data, opts, this.name);
  }

  /**
   * Runs the program `count` times on the same fresh input (repeat=1 each call, so a rewrite never
   * feeds the next run), pinned to one CPU, and returns every call's duration.
   * @throws BpfError (op 'test run many').
   */
  testRunMany(data: Buffer, count: number, opts: TestRunManyOptions = {}): TestRunManyResult {
    if (!Number.isInteger(count) || count < 0) {
      throw bpfError('test run many', this.label, 'EINVAL', `count must be a non-negative integer, got ${count}`);
    }
    const raw = native().testRunMany(this.fd, data, count, opts.ingressIfindex ?? 0, opts.pinCpu ?? -1, this.name);
    const retvals: Record<number, number> = {};
    for (const [k, v] of Object.entries(raw.retvals)) retvals[Number(k)] = v;
    return { durationsNs: raw.durations, retvals };
  }

  /**
   * BPF_F_TEST_XDP_LIVE_FRAMES: `count` copies of `frame` go through the real XDP paths
   * (XDP_TX leaves through the ingress interface, REDIRECT through its target).
   * @throws BpfError (op 'test run live').
   */
  testRunLive(frame: Buffer, opts: TestRunLiveOptions): TestRunLiveResult {
    return native().testRunLive(this.fd, frame, opts.count, opts.batchSize ?? 0, opts.ingressIfindex ?? 0,
      opts.pinCpu ?? -1, this.name);
  }

  /**
   * Pins the program at `pinPath` on bpffs.
   * @throws BpfError EEXIST when the path is taken.
   */
  pin(pinPath: string): void {
    native().objPin(this.fd, pinPath, 'program');
  }
}
