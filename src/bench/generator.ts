/**
 * The benchmark's own packet generator and sink, over bpf/xdp_fwd.o:
 * - xdp_gen runs under BPF_PROG_TEST_RUN with LIVE_FRAMES in the generator namespace: each run
 *   rewrites the frame to the next of N flows and returns XDP_TX, which the kernel turns into a
 *   real transmit out of the generator's veth, i.e. a receive on the lb's veth.
 * - xdp_sink, attached natively to the sink's veth, counts per CPU what arrives and drops it.
 * - xdp_fwd is the trivial forwarder (MAC rewrite + redirect), the ceiling for XDP cases.
 */
import * as path from 'node:path';
import { BpfObject, BPF_F_TEST_XDP_LIVE_FRAMES, XdpLink, inNetns, repoRoot, type BpfMap, type Program } from '../bpf';
import { buildFrame, ipToU32, macToBuffer, IPPROTO_UDP } from '../dataplane/packet';
import type { ForwardTopology } from './forward-topology';
import { ipv6Groups } from '../lab/topology';

export { BPF_F_TEST_XDP_LIVE_FRAMES };

/** Frame length without FCS: 64 bytes (so 68 on a wire with FCS; the classic "64-byte" test frame is 60 + 4). */
export const FRAME_BYTES = 64;
/** Frames per LIVE_FRAMES batch: the NAPI budget, so the lb's ring (256) takes whole batches. */
export const GEN_BATCH = 64;
/** Default number of distinct flows the generator cycles through. */
export const DEFAULT_FLOWS = 16384;

export interface ForwarderConfig {
  /** MACs the trivial forwarder writes: next hop (destination) and its egress interface (source). */
  fwdDstMac: string;
  fwdSrcMac: string;
  /** MACs the XDP_TX reading forwarder writes: the generator's (destination) and the lb ingress's (source). */
  txDstMac?: string;
  txSrcMac?: string;
}

/** What the generator sends: flow i uses saddrBase + i / 16384 and source port 1024 + i % 16384
 * (IPv6 addresses: saddrBase's last 32 bits + i / 16384). daddr's family picks the generator. */
export interface TrafficConfig {
  flows: number;
  saddrBase: string;
  daddr: string;
  dport: number;
  srcMac: string;
  dstMac: string;
}

/**
 * Ones' complement partial sum of `bytes` as the BPF program loads it: 16-bit words in memory
 * order read natively (little-endian here), so no byte swapping on either side.
 */
export function nativeWordSum(bytes: Buffer): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += i + 1 < bytes.length ? bytes.readUInt16LE(i) : bytes[i];
  return sum >>> 0;
}

function u32le(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0, 0);
  return b;
}

/** Path of the benchmark's BPF object (built by `make -C bpf`). */
export function benchObjectPath(): string {
  return path.join(repoRoot(), 'bpf', 'xdp_fwd.o');
}

/** The 16 bytes of an IPv6 address. @throws Error when it is not IPv6 text. */
export function ipv6Bytes(address: string): Buffer {
  const groups = ipv6Groups(address);
  if (!groups) throw new Error(`generator: ${JSON.stringify(address)} is not an IPv6 address`);
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  return b;
}

/** The UDP payload of every generated IPv6 frame (fills it to FRAME_BYTES: 14 + 40 + 8 + 2). */
export function benchPayload6(): Buffer {
  return Buffer.alloc(FRAME_BYTES - 14 - 40 - 8, 0x58);
}

/** Whether a frame is IPv6 (EtherType 0x86DD). */
function isIpv6Frame(frame: Buffer): boolean {
  return frame.readUInt16BE(12) === 0x86dd;
}

/**
 * A UDP frame from the generator to `dst`:`dport` via the lb's MAC, FRAME_BYTES long, with
 * correct checksums: the initial content of the test run's pages (the generator rewrites it).
 * An IPv6 `dst` gives an IPv6 frame of the same length, whose every header field and checksum
 * xdp_gen6 writes on each run (here only its EtherType and payload matter).
 */
export function benchFrame(t: ForwardTopology, dst: string, dport: number): Buffer {
  if (dst.includes(':')) {
    const frame = Buffer.alloc(FRAME_BYTES);
    macToBuffer(t.lb.ingressMac).copy(frame, 0);
    macToBuffer(t.gen.mac).copy(frame, 6);
    frame.writeUInt16BE(0x86dd, 12);
    frame.writeUInt32BE(0x60000000, 14);
    frame.writeUInt16BE(FRAME_BYTES - 14 - 40, 18);
    frame[20] = IPPROTO_UDP;
    frame[21] = 64;
    ipv6Bytes(t.v6.clientBase).copy(frame, 22);
    ipv6Bytes(dst).copy(frame, 38);
    frame.writeUInt16BE(1024, 54);
    frame.writeUInt16BE(dport, 56);
    frame.writeUInt16BE(FRAME_BYTES - 14 - 40, 58);
    benchPayload6().copy(frame, 62);
    return frame;
  }
  return buildFrame({
    eth: { src: t.gen.mac, dst: t.lb.ingressMac },
    ip: { src: t.clientBase, dst, proto: IPPROTO_UDP, ttl: 64 },
    udp: { sport: 1024, dport, payload: benchPayload() },
  });
}

/** The UDP payload of every generated frame (fills the frame to FRAME_BYTES). */
export function benchPayload(): Buffer {
  return Buffer.alloc(FRAME_BYTES - 14 - 20 - 8, 0x58);
}

/** struct sink_counter: packets, bytes, first_ns, last_ns (u64 each). */
const SINK_COUNTER_BYTES = 32;

export interface SinkReading {
  packets: number;
  /** Time between the first and the last packet the sink saw, by the kernel's clock. */
  windowNs: number;
}

export interface SendResult {
  packets: number;
  /** Time the generator spent sending, by the kernel's clock (sum over calls of average x count). */
  sendNs: number;
  /** Wall time including each call's set-up (a fresh page pool per call, ~20 ms). */
  wallNs: number;
  stoppedBy: 'packets' | 'seconds';
}

/** The loaded benchmark programs and the sink's attachment. close() releases everything. */
export class BenchPrograms {
  readonly object: BpfObject;
  readonly gen: Program;
  readonly gen6: Program;
  readonly fwd: Program;
  readonly fwdRead: Program;
  readonly fwdReadTx: Program;
  readonly sink: Program;
  readonly sinkCounts: BpfMap;
  readonly fwdPorts: BpfMap;
  readonly genConfig: BpfMap;
  readonly genConfig6: BpfMap;
  private links: XdpLink[] = [];

  private constructor(object: BpfObject) {
    this.object = object;
    this.gen = object.program('xdp_gen');
    this.gen6 = object.program('xdp_gen6');
    this.genConfig6 = object.map('gen_config6');
    this.fwd = object.program('xdp_fwd');
    this.fwdRead = object.program('xdp_fwd_read');
    this.fwdReadTx = object.program('xdp_fwd_read_tx');
    this.sink = object.program('xdp_sink');
    this.sinkCounts = object.map('sink_counts');
    this.fwdPorts = object.map('fwd_ports');
    this.genConfig = object.map('gen_config');
  }

  /**
   * Loads bpf/xdp_fwd.o with the forwarder's MACs.
   * @throws BpfError when the object is missing or does not load.
   */
  static load(config: ForwarderConfig): BenchPrograms {
    const object = BpfObject.load(benchObjectPath(), {
      globals: {
        fwd_dst_mac: macToBuffer(config.fwdDstMac),
        fwd_src_mac: macToBuffer(config.fwdSrcMac),
        tx_dst_mac: macToBuffer(config.txDstMac ?? '00:00:00:00:00:00'),
        tx_src_mac: macToBuffer(config.txSrcMac ?? '00:00:00:00:00:00'),
      },
    });
    return new BenchPrograms(object);
  }

  /**
   * Sets what the generator sends from its next run on (the frame itself only needs the right
   * length: the program rewrites every header field and both checksums).
   * @throws Error on a flow count outside 1..4194304 or a bad address, port or MAC.
   */
  configure(traffic: TrafficConfig): void {
    if (!Number.isInteger(traffic.flows) || traffic.flows < 1 || traffic.flows > 16384 * 256) {
      throw new Error(`generator: flows=${traffic.flows} must be an integer in 1..${16384 * 256}`);
    }
    if (!Number.isInteger(traffic.dport) || traffic.dport < 1 || traffic.dport > 65535) {
      throw new Error(`generator: dport=${traffic.dport} must be in 1..65535`);
    }
    if (traffic.daddr.includes(':')) {
      // struct gen_config6: macs (12), dport, pad, daddr[16], saddr_base[16], flows, payload_sum.
      const value6 = Buffer.alloc(56);
      macToBuffer(traffic.dstMac).copy(value6, 0);
      macToBuffer(traffic.srcMac).copy(value6, 6);
      value6.writeUInt16BE(traffic.dport, 12);
      ipv6Bytes(traffic.daddr).copy(value6, 16);
      ipv6Bytes(traffic.saddrBase).copy(value6, 32);
      value6.writeUInt32LE(traffic.flows, 48);
      value6.writeUInt32LE(nativeWordSum(benchPayload6()), 52);
      this.genConfig6.update(Buffer.alloc(4), value6);
      return;
    }
    const value = Buffer.alloc(32);
    macToBuffer(traffic.dstMac).copy(value, 0);
    macToBuffer(traffic.srcMac).copy(value, 6);
    value.writeUInt32BE(ipToU32(traffic.daddr), 12);
    value.writeUInt16BE(traffic.dport, 16);
    value.writeUInt32LE(ipToU32(traffic.saddrBase), 20);
    value.writeUInt32LE(traffic.flows, 24);
    value.writeUInt32LE(nativeWordSum(benchPayload()), 28);
    this.genConfig.update(Buffer.alloc(4), value);
  }

  /** Attaches the counting sink to the sink's veth and to the generator's (where XDP_TX cases deliver) (native XDP). */
  attachSink(t: ForwardTopology): void {
    this.links.push(inNetns(t.sink.netns, () => XdpLink.attach(this.sink, t.sink.ifname, 'native')));
    this.links.push(inNetns(t.gen.netns, () => XdpLink.attach(this.sink, t.gen.ifname, 'native')));
  }

  /** Attaches the reading forwarder that sends back out the lb's ingress (XDP_TX). */
  attachTxForwarder(t: ForwardTopology): XdpLink {
    return inNetns(t.lb.netns, () => XdpLink.attach(this.fwdReadTx, t.lb.ingress, 'native'));
  }

  /** Attaches the trivial forwarder to the lb's ingress; returns its link (detach() to remove). */
  /** Attaches the trivial forwarder (`reading`: the variant that reads the headers first). */
  attachForwarder(t: ForwardTopology, reading = false): XdpLink {
    return inNetns(t.lb.netns, () => {
      const key = Buffer.alloc(4);
      // DEVMAP values are ifindexes of the namespace the update is made from.
      this.fwdPorts.update(key, u32le(t.lb.egressIfindex));
      return XdpLink.attach(reading ? this.fwdRead : this.fwd, t.lb.ingress, 'native');
    });
  }

  /** Zeroes the sink's counters on every CPU (a new measurement window starts at the next packet). */
  resetSink(): void {
    const cpus = (this.sinkCounts.lookupPerCpu(Buffer.alloc(4)) ?? []).length;
    this.sinkCounts.update(Buffer.alloc(4), Buffer.alloc(SINK_COUNTER_BYTES * Math.max(cpus, 1)));
  }

  /** What the sink counted since resetSink(), summed over CPUs, with the window it spans. */
  sinkReading(): SinkReading {
    const values = this.sinkCounts.lookupPerCpu(Buffer.alloc(4)) ?? [];
    let packets = 0;
    let first = Infinity;
    let last = 0;
    for (const v of values) {
      const n = Number(v.readBigUInt64LE(0));
      if (n === 0) continue;
      packets += n;
      first = Math.min(first, Number(v.readBigUInt64LE(16)));
      last = Math.max(last, Number(v.readBigUInt64LE(24)));
    }
    return { packets, windowNs: packets > 1 ? last - first : 0 };
  }

  /**
   * Sends up to `packets` frames (in calls of at most `chunk`: each call has a fixed set-up cost,
   * so calls are large), stopping between calls once `seconds` have passed; the generator
   * thread is pinned to `cpu`.
   * @throws BpfError when the live test run fails.
   */
  send(t: ForwardTopology, frame: Buffer, packets: number, seconds: number, cpu: number, chunk = 1 << 22): SendResult {
    if (!(packets > 0) || !(seconds > 0)) throw new Error(`generator: packets=${packets} and seconds=${seconds} must be > 0`);
    const started = process.hrtime.bigint();
    const deadline = started + BigInt(Math.round(seconds * 1e9));
    let sent = 0;
    let sendNs = 0;
    let stoppedBy: SendResult['stoppedBy'] = 'packets';
    inNetns(t.gen.netns, () => {
      while (sent < packets) {
        if (process.hrtime.bigint() >= deadline) { stoppedBy = 'seconds'; break; }
        const count = Math.min(chunk, packets - sent);
        const r = (isIpv6Frame(frame) ? this.gen6 : this.gen).testRunLive(frame, { count, batchSize: GEN_BATCH, ingressIfindex: t.gen.ifindex, pinCpu: cpu });
        sendNs += r.durationNs * count;
        sent += count;
      }
    });
    return { packets: sent, sendNs, wallNs: Number(process.hrtime.bigint() - started), stoppedBy };
  }

  /** Detaches what this object attached and closes the object. */
  close(): void {
    for (const link of this.links) {
      try { link.detach(); } catch { /* its namespace may be gone */ }
    }
    this.links = [];
    this.object.close();
  }
}
