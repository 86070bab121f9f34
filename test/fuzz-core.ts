/**
 * Differential fuzzing of the XDP program (bpf/lb.o through BPF_PROG_TEST_RUN in namespace
 * xlbt-dp) against the reference model (test/refmodel.ts): random and mutated frames of every
 * class the program distinguishes; every verdict, reason count and output frame must match,
 * and every frame sent on (TX/REDIRECT) whose input had valid checksums must have valid
 * checksums, recomputed from scratch. Used by test/fuzz.test.ts (in the suite, 100,000 frames)
 * and by test/fuzz-cli.ts (`npm run fuzz -- --frames N --seed S`, millions). The run is a pure
 * function of (frames, seed): a seed reproduces it.
 *
 * Four phases of frames/4 each: fragments dropped; fragments passed; flow cache on with every
 * verdict's trace event checked; flow cache on after backend 2 went inactive. The fixture tables
 * have moved slots (test/datapath-fixtures.ts MARKS): with the flow cache on, their packets
 * consult and write the flow cache. The flow cache is modelled (sets, ways, epochs, evictions)
 * and its final contents are compared, and so are the slots the program marked seen.
 */
import { enterNetns, RingBuffer } from '../src/bpf';
import {
  buildFrame, buildIpv4, buildArpRequest, buildEthernet, checksumProblemsAny, buildIpv6Udp, internetChecksum, macToBuffer, u32ToIp, ipToU32,
  IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP,
} from '../src/dataplane/packet';
import { createDatapathLab, type DatapathLab } from './datapath-lab';
import { installState, settingsFor, backend6Value, readCounters, readFlows, readFlows6, readSeen, backendValue, type Counters, type Installed } from './datapath-harness';
import { LB, LbEventCodec, ipv6ToBytes } from '../src/dataplane/abi';
import { loadTarget, type Target } from './datapath-target';
import { DP_NETNS, PORTS, NEIGHBOURS, VIP, BACKENDS, CLIENT, ROUTER, fixtureState, fragmentDatagram } from './datapath-fixtures';
import { runModel, type ModelState } from './refmodel';
import { reasonNumber, type ModelResult6Fields } from './refmodel6';
import { withV6 } from './datapath-fixtures6';
import { Generator6 } from './fuzz-gen6';

const u32le = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };

/** The most frames one run may take (a bound, not a target). */
export const MAX_FUZZ_FRAMES = 100_000_000;

/** xorshift32: small, fast, reproducible. */
export class Rng {
  constructor(private s: number) { if (this.s === 0) this.s = 1; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
  int(n: number): number { return this.next() % n; }
  chance(p: number): boolean { return this.next() / 0x100000000 < p; }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]; }
  bytes(n: number): Buffer { return Buffer.from(Array.from({ length: n }, () => this.int(256))); }
}

const VIPS = Object.values(VIP);
const BACKEND_IPS = BACKENDS.map((b) => b.ip);
const MARTIANS = ['0.0.0.0', '0.9.9.9', '127.0.0.1', '127.1.2.3', '224.0.0.1', '239.1.2.3', '240.0.0.9', '255.255.255.255'];

function randomClient(r: Rng): string {
  if (r.chance(0.03)) return r.pick([...MARTIANS, ...VIPS]);
  return r.pick([CLIENT, CLIENT, '198.18.0.11', u32ToIp(ipToU32('198.18.0.0') + r.int(256)), u32ToIp(ipToU32('198.18.0.0') + r.int(1 << 17))]);
}
function port(r: Rng, common: number[]): number {
  return r.chance(0.7) ? r.pick(common) : r.int(65536);
}
function ttl(r: Rng): number {
  return r.chance(0.8) ? 64 : r.pick([0, 1, 2, 255]);
}

class Generator {
  /** Recent client -> VIP TCP flows (sent again, so the flow cache is hit, not only filled). */
  private readonly recentTcp: Array<{ src: string; dst: string; sport: number; dport: number }> = [];
  constructor(private readonly r: Rng) {}

  /** A valid frame of one of the classes the program distinguishes. */
  basePacket(): { frame: Buffer; ingress: 'a' | 'b' } {
    const r = this.r;
    const kind = r.int(11);
    const payload = r.bytes(r.chance(0.5) ? 0 : r.int(64));
    const ip = (src: string, dst: string, proto: number) => ({ src, dst, proto, ttl: ttl(r), id: r.int(65536), df: r.chance(0.5) });
    switch (kind) {
      case 0: case 1: case 2: { // client -> VIP TCP; half of them a recent flow again (cache hits)
        let flow = r.chance(0.5) && this.recentTcp.length ? r.pick(this.recentTcp) : null;
        if (!flow) {
          // Half to VIP.web:80, whose slots are all moved (the flow cache's traffic).
          flow = r.chance(0.5)
            ? { src: randomClient(r), dst: VIP.web, sport: r.int(65536), dport: 80 }
            : { src: randomClient(r), dst: r.pick(VIPS), sport: r.int(65536), dport: port(r, [80, 80, 81, 12345]) };
          this.recentTcp[r.int(64)] = flow;
        }
        return { ingress: 'a', frame: buildFrame({ ip: ip(flow.src, flow.dst, IPPROTO_TCP), tcp: { sport: flow.sport, dport: flow.dport, seq: r.next(), flags: r.int(256), payload } }) };
      }
      case 3: // client -> VIP UDP
        return { ingress: 'a', frame: buildFrame({ ip: ip(randomClient(r), r.pick(VIPS), IPPROTO_UDP), udp: { sport: r.int(65536), dport: port(r, [53, 80]), payload, checksum: r.chance(0.2) ? 0 : undefined } }) };
      case 4: case 5: { // backend -> client reply
        const proto = r.chance(0.7) ? IPPROTO_TCP : IPPROTO_UDP;
        const src = r.chance(0.9) ? r.pick(BACKEND_IPS) : u32ToIp(ipToU32('198.18.1.0') + r.int(256));
        const sport = port(r, [80, 5353, 4444, 8443]);
        const spec = proto === IPPROTO_TCP ? { tcp: { sport, dport: r.int(65536), payload } } : { udp: { sport, dport: r.int(65536), payload } };
        return { ingress: 'b', frame: buildFrame({ ip: ip(src, randomClient(r), proto), ...spec }) };
      }
      case 6: // ICMP echo (or another type) to a VIP or not
        return { ingress: 'a', frame: buildFrame({ ip: ip(randomClient(r), r.chance(0.8) ? r.pick(VIPS) : '198.18.0.1', IPPROTO_ICMP), icmp: { type: r.chance(0.8) ? 8 : r.int(20), rest: r.next(), payload } }) };
      case 7: { // ICMP error quoting VIP -> client
        const proto = r.chance(0.6) ? IPPROTO_TCP : IPPROTO_UDP;
        const vip = r.pick(VIPS);
        const sport = port(r, [80, 53]);
        const inner = buildIpv4({ ip: { src: r.chance(0.9) ? vip : randomClient(r), dst: randomClient(r), proto },
          ...(proto === IPPROTO_TCP ? { tcp: { sport, dport: r.int(65536), payload } } : { udp: { sport, dport: r.int(65536), payload } }) });
        const quoted = r.chance(0.5) ? inner : inner.subarray(0, Math.min(inner.length, 28 + r.int(20)));
        return { ingress: 'a', frame: buildFrame({ ip: ip(ROUTER, vip, IPPROTO_ICMP), icmp: { type: r.pick([3, 11]), code: r.int(16), rest: 1400, payload: quoted } }) };
      }
      case 8: // non-VIP traffic
        return { ingress: r.chance(0.5) ? 'a' : 'b', frame: buildFrame({ ip: ip(randomClient(r), u32ToIp(r.next()), r.pick([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 47])), payload: r.bytes(20 + r.int(40)) }) };
      case 9: { // a fragment of a backend's reply (first, middle or last), or of a VIP-bound datagram
        const proto = r.chance(0.6) ? IPPROTO_UDP : IPPROTO_TCP;
        const toVip = r.chance(0.15);
        const src = toVip ? randomClient(r) : r.chance(0.9) ? r.pick(BACKEND_IPS) : u32ToIp(ipToU32('198.18.1.0') + r.int(256));
        const dst = toVip ? r.pick(VIPS) : randomClient(r);
        const data = r.bytes(16 + r.int(200));
        const sport = port(r, [80, 5353, 4444, 2222, 8443]);
        const spec = proto === IPPROTO_TCP ? { tcp: { sport, dport: r.int(65536), payload: data } } : { udp: { sport, dport: r.int(65536), payload: data, checksum: r.chance(0.1) ? 0 : undefined } };
        const datagram = buildIpv4({ ip: ip(src, dst, proto), ...spec });
        const sizes = Array.from({ length: 4 }, () => 8 * (1 + r.int(8)));
        const frags = fragmentDatagram(datagram, sizes);
        return { ingress: toVip ? 'a' : 'b', frame: buildEthernet({}, r.pick(frags)) };
      }
      default: // not IPv4 / tagged
        return { ingress: 'a', frame: r.pick([
          () => buildArpRequest(CLIENT, '198.18.0.1'),
          () => buildIpv6Udp(r.int(65536), 53),
          () => buildFrame({ eth: { vlan: r.int(4096) }, ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_TCP }, tcp: { sport: 1, dport: 80 } }),
        ])() };
    }
  }

  /** Zero to three mutations of the kinds that reach the program's edge cases. */
  mutate(input: Buffer): Buffer {
    const r = this.r;
    let f = Buffer.from(input);
    const n = r.chance(0.3) ? 0 : 1 + r.int(3);
    for (let i = 0; i < n; i++) {
      switch (r.int(10)) {
        case 0: case 1: { // flip bits, mostly in the headers
          const span = Math.min(f.length, r.chance(0.8) ? 14 + 60 + 48 : f.length);
          f[r.int(span)] ^= 1 << r.int(8);
          break;
        }
        case 2: f = f.subarray(0, 14 + r.int(Math.max(1, f.length - 13))); break; // truncate (>= 14 bytes)
        case 3: if (f.length > 14) f[14] = (f[14] & 0xf0) | r.int(16); break; // IHL
        case 4: if (f.length > 17) f.writeUInt16BE(r.chance(0.5) ? r.int(65536) : Math.max(0, f.length - 14 + r.int(9) - 4), 16); break; // tot_len
        case 5: if (f.length > 21) f.writeUInt16BE(r.pick([0x2000, 0x0001, 0x2064, 0x4000, r.int(65536)]), 20); break; // frag bits
        case 6: if (f.length > 23) f[23] = r.pick([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 47, r.int(256)]); break; // protocol
        case 7: f = Buffer.concat([f, r.bytes(1 + r.int(20))]); break; // trailer
        case 8: if (f.length > 14) f[14] = (r.pick([0, 4, 4, 5, 6, 15]) << 4) | (f[14] & 0x0f); break; // IP version
        default: if (f.length > 22) f[22] = r.pick([0, 1, 2, r.int(256)]); break; // TTL
      }
    }
    // Mostly a sender's valid header checksum over whatever the header now says (else almost
    // every mutated frame would stop at bad_checksum).
    if (r.chance(0.8) && f.length >= 34 && f.readUInt16BE(12) === 0x0800) {
      const hdr = (f[14] & 0x0f) * 4;
      if (hdr >= 20 && 14 + hdr <= f.length) {
        f = Buffer.from(f);
        f.writeUInt16BE(0, 24);
        f.writeUInt16BE(internetChecksum(f.subarray(14, 14 + hdr)), 24);
      }
    }
    return f;
  }

  /** The destination MAC: mostly the ingress port's own, sometimes not ours. */
  destMac(ingress: 'a' | 'b'): Buffer {
    const r = this.r;
    if (r.chance(0.93)) return macToBuffer(PORTS.find((p) => p.suffix === ingress)!.mac);
    return macToBuffer(r.pick(['ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:fb', '33:33:00:00:00:01', '02:00:00:aa:bb:cc', PORTS.find((p) => p.suffix !== ingress)!.mac]));
  }
}

export interface FuzzOptions {
  frames: number;
  seed: number;
  /** the share of IPv6 frames (test/fuzz-gen6.ts), 0..1, spread evenly over the run (default 0.5) */
  v6Share?: number;
  /** progress and summary lines (default: none) */
  log?: (line: string) => void;
  /** how many mismatches are logged and returned whole (default 10) */
  show?: number;
}

export interface FuzzResult {
  frames: number; seed: number; ms: number;
  /** the first mismatches (at most 10), each with frame index, input, program and model output */
  mismatches: string[];
  mismatchCount: number;
  /** other failed checks (counters, flow cache contents, coverage) */
  problems: string[];
  checkedSums: number;
  reasons: number[];
  actions: number[];
  /** IPv6 frames run, their mismatches, their reasons */
  v6Frames: number;
  v6Mismatches: number;
  v6Reasons: number[];
}

/**
 * Runs `frames` frames with `seed` in a namespace of its own (created and removed here).
 * @throws Error for a bad frame count; whatever set-up throws (lab, program load)
 */
export function runFuzz(opts: FuzzOptions): FuzzResult {
  const { frames, log = () => {} } = opts;
  const seed = opts.seed >>> 0;
  const v6Share = opts.v6Share ?? 0.5;
  if (!(v6Share >= 0 && v6Share <= 1)) throw new Error(`fuzz: v6Share must be in 0..1, got ${v6Share}`);
  if (!Number.isInteger(frames) || frames < 4 || frames > MAX_FUZZ_FRAMES) {
    throw new Error(`fuzz: frames must be an integer in 4..${MAX_FUZZ_FRAMES}, got ${frames}`);
  }
  let lab: DatapathLab | null = null;
  let target: Target | null = null;
  let restore: () => void = () => {};
  try {
    lab = createDatapathLab(DP_NETNS, PORTS, NEIGHBOURS);
    restore = enterNetns(DP_NETNS);
    target = loadTarget();
    const state = withV6(fixtureState(lab), lab);
    state.settings = { fragPolicy: 0, sampleRate: 0, flowCache: false };
    // More moved slots than the fixture's (every kind: young or not, previous backend usable,
    // draining, of another service), so that the flow cache fills, hits and evicts.
    const more: Array<[number, number, number, boolean]> = [
      [1, 3, 1, false], [1, 4, 2, true], [1, 5, 1, true], [1, 6, 4, false],
      [2, 2, 13, true], [2, 3, 13, false], [3, 1, 12, true], [3, 2, 2, false],
    ];
    for (const [id, slot, prev, young] of more) state.marks!.get(id)!.set(slot, { prev, epoch: 0x5eed + id, seen: false, young });
    // The same for the IPv6 services (flows6): every slot of VIP6.web:80 moved.
    const more6: Array<[number, number, number, boolean]> = [
      [21, 3, 21, false], [21, 4, 22, true], [21, 5, 21, true], [21, 6, 24, false],
      [22, 2, 33, true], [22, 3, 33, false], [23, 1, 34, true], [23, 2, 22, false],
    ];
    for (const [id, slot, prev, young] of more6) state.marks!.get(id)!.set(slot, { prev, epoch: 0x6eed + id, seen: false, young });
    const installed = installState(target.maps, state);
    return fuzzLoop(target, lab, state, installed, frames, seed, v6Share, log, opts.show ?? 10);
  } finally {
    target?.close();
    restore();
    lab?.destroy();
  }
}

function fuzzLoop(target: Target, lab: DatapathLab, state: ModelState, installed: Installed, frames: number, seed: number, v6Share: number, log: (line: string) => void, show: number): FuzzResult {
  const r = new Rng(seed);
  const gen = new Generator(r);
  const gen6 = new Generator6(r);
  const isV6Frame = (i: number) => Math.floor((i + 1) * v6Share) > Math.floor(i * v6Share);
  let v6Frames = 0;
  let v6Mismatches = 0;
  const v6Reasons = new Array<number>(32).fill(0);
  const ifindex = { a: lab.ports.a.ifindex, b: lab.ports.b.ifindex };
  const tally = { actions: new Array<number>(8).fill(0), reasons: new Array<number>(32).fill(0), verdicts: new Array<number>(LB.VERDICT_SLOTS).fill(0), bytes: 0 };
  const mismatches: string[] = [];
  let mismatchCount = 0;
  const problems: string[] = [];
  const before: Counters = readCounters(target.maps, [], []);
  const started = Date.now();
  let checkedSums = 0;
  const phase = (i: number) => Math.floor((i * 4) / frames);
  const events: Buffer[] = [];
  const ring = new RingBuffer(target.map('events'), (rec) => events.push(rec));
  const progressEvery = Math.max(100_000, Math.floor(frames / 20));

  const enterPhase = (n: number): void => {
    state.settings = { fragPolicy: n === 0 ? 0 : 1, sampleRate: n >= 2 ? 1 : 0, flowCache: n >= 2 };
    target.maps.update('settings', Buffer.alloc(4), settingsFor(state, state.settings));
    if (n === 3) {
      const b2 = state.backends.get(2)!;
      b2.flags = 0;
      target.maps.update('backends', u32le(2), backendValue(b2.ip, b2.port, 0, b2.serviceId, state.services));
      // and its IPv6 sibling (VIP6.web's second backend)
      state.v6!.backends.get(22)!.flags = 0;
      target.maps.update('backends6', u32le(22), backend6Value(state, 22));
    }
  };

  try {
    for (let i = 0; i < frames; i++) {
      if (i > 0 && phase(i) !== phase(i - 1)) enterPhase(phase(i));
      if (i > 0 && i % progressEvery === 0) log(`fuzz: ${i} frames, ${mismatchCount} mismatches, ${Math.round((Date.now() - started) / 1000)} s`);
      const fromGen6 = isV6Frame(i);
      const base = fromGen6 ? gen6.basePacket() : gen.basePacket();
      // (Counted as IPv6: every frame of the IPv6 generator but its IPv4 cross-family class.)
      const v6 = fromGen6 && !('v4' in base && base.v4);
      base.frame = Buffer.from(base.frame);
      gen.destMac(base.ingress).copy(base.frame, 0);
      const frame = fromGen6 ? gen6.mutate(base.frame) : gen.mutate(base.frame);
      const ingress = ifindex[base.ingress];
      const got = target.program.testRun(frame, { ingressIfindex: ingress });
      const want = runModel(state, frame, ingress);
      tally.actions[want.action]++;
      tally.reasons[want.reason]++;
      tally.verdicts[want.reason * LB.ACTION_SLOTS + want.action]++;
      tally.bytes += frame.length;
      let problem = '';
      if (got.retval !== want.action || !got.data.equals(want.frame)) problem = 'verdict or frame';
      // Independently of the model: what leaves with valid checksums in came in with them.
      if ((got.retval === 3 || got.retval === 4) && checksumProblemsAny(frame).length === 0) {
        const bad = checksumProblemsAny(got.data);
        if (bad.length) problem += ` checksums: ${bad.join('; ')}`;
        checkedSums++;
      }
      if (state.settings.sampleRate === 1) {
        ring.consume();
        const e = events.length === 1 ? events[0] : null;
        // An IPv6 verdict's event: family 6 and the 16-byte addresses (hex); IPv4: the mapped form's last word.
        const w6 = want as typeof want & Partial<ModelResult6Fields>;
        const family = w6.family === 6 ? 6 : frame.length >= 14 && frame.readUInt16BE(12) === 0x0800 ? 4 : frame.length >= 14 && frame.readUInt16BE(12) === 0x86dd ? 6 : 0;
        const wantAddr = family === 6 ? [w6.saddr6?.toString('hex') ?? '0'.repeat(32), w6.daddr6?.toString('hex') ?? '0'.repeat(32)] : [want.saddr, want.daddr];
        const wantEvent = [ingress, frame.length, want.serviceId, want.backendId, ...wantAddr, want.sport, want.dport, want.proto, want.action, want.reason, family];
        const ev = e && e.length === LbEventCodec.size ? LbEventCodec.decode(e) : null;
        const gotAddr = (a: string) => (ev!.family === 6 ? ipv6ToBytes(a).toString('hex') : ipv6ToBytes(a).readUInt32BE(12));
        const gotEvent = ev && [ev.ifindex, ev.pktLen, ev.serviceId, ev.backendId, gotAddr(ev.saddr), gotAddr(ev.daddr), ev.sport, ev.dport, ev.proto, ev.action, ev.reason, ev.family];
        if (!gotEvent || gotEvent.join() !== wantEvent.join()) problem += ` event ${gotEvent?.join() ?? `x${events.length}`} != ${wantEvent.join()}`;
        events.length = 0;
      }
      if (v6) {
        v6Frames++;
        v6Reasons[want.reason]++;
        if (problem) v6Mismatches++;
      }
      if (problem) {
        mismatchCount++;
        const line = `#${i} (seed 0x${seed.toString(16)}) ingress ${base.ingress}: ${problem}; program ${got.retval}, model ${want.action} (reason ${want.reason})\n in  ${frame.toString('hex')}\n got ${got.data.toString('hex')}\n want ${want.frame.toString('hex')}`;
        if (mismatches.length < show) {
          mismatches.push(line);
          log(`fuzz: MISMATCH ${line}`);
        }
      }
    }
  } finally {
    ring.close();
  }

  // The flow cache holds exactly the flows the model remembered.
  const cached = new Set(readFlows(target.maps, state.seed, true));
  const modelled = new Set(state.flows.entries().map((e) => `${e.key}=${e.backendId}@${e.epoch}${e.referenced ? '*' : ''}`));
  log(`fuzz: ${modelled.size} flows cached at the end, ${state.flows.evictions} evicted from full sets, ${state.flows.hotHits} packets sent from the cache`);
  if (frames >= 10_000) {
    // (The IPv4 flow cache's thresholds need IPv4 traffic: a mostly-IPv6 run checks flows6 below.)
    if (frames - v6Frames >= 50_000) {
      if (modelled.size <= 100) problems.push(`only ${modelled.size} flows cached`);
      if (!(state.flows.hotHits > 200 && state.flows.evictions > 100)) problems.push(`the cache was not exercised (${state.flows.hotHits} hits, ${state.flows.evictions} evictions)`);
    }
    if (checkedSums <= frames / 50) problems.push(`only ${checkedSums} sent frames had their checksums recomputed`);
    // Every reason the program has must have been reached at least once.
    // (ext_header is IPv6-only: an IPv4-only run cannot reach it; a run with IPv6 frames must.)
    // (too_big needs a route narrower than the packet: the corpus' routes are not; see test/pmtu-datapath.test.ts.)
    const exempt: number[] = [LB.REASON_TOO_BIG, ...(v6Frames >= 10_000 ? [] : [LB.REASON_EXT_HEADER])];
    const unreached = tally.reasons.slice(0, LB.REASON_COUNT).map((c, k) => (c === 0 && !exempt.includes(k) ? k : -1)).filter((k) => k >= 0);
    if (unreached.length) problems.push(`reasons never produced by the fuzz corpus: ${unreached.join(', ')}`);
  }
  if (v6Frames >= 10_000) {
    // The IPv6 frames alone reach every reason of the IPv6 path (all but not_ip, and too_big: see above).
    const unreached6 = v6Reasons.slice(0, LB.REASON_COUNT).map((c, k) => (c === 0 && k !== reasonNumber('not_ip') && k !== LB.REASON_TOO_BIG ? k : -1)).filter((k) => k >= 0);
    if (unreached6.length) problems.push(`reasons never produced by the IPv6 frames: ${unreached6.join(', ')}`);
  }
  // And flows6 exactly the IPv6 flows the model remembered.
  const flows6 = state.v6!.flows;
  const cached6 = new Set(readFlows6(target.maps, state.seed));
  const modelled6 = new Set(flows6.entries().map((e) => `${e.key}=${e.backendId}@${e.epoch}${e.referenced ? '*' : ''}`));
  log(`fuzz: flows6: ${modelled6.size} flows cached at the end, ${flows6.evictions} evicted, ${flows6.hotHits} packets sent from the cache`);
  if (v6Frames >= 10_000 && !(flows6.hotHits > 100 && flows6.evictions > 50)) problems.push(`flows6 was not exercised (${flows6.hotHits} hits, ${flows6.evictions} evictions)`);
  const extra6Map = [...cached6].filter((x) => !modelled6.has(x));
  const extra6Model = [...modelled6].filter((x) => !cached6.has(x));
  if (extra6Map.length) problems.push(`flows in flows6 but not in the model: ${extra6Map.slice(0, 5).join(' ')}`);
  if (extra6Model.length) problems.push(`IPv6 flows in the model but not in flows6: ${extra6Model.slice(0, 5).join(' ')}`);
  const extraMap = [...cached].filter((x) => !modelled.has(x));
  const extraModel = [...modelled].filter((x) => !cached.has(x));
  if (extraMap.length) problems.push(`flows in the map but not in the model: ${extraMap.slice(0, 5).join(' ')}`);
  if (extraModel.length) problems.push(`flows in the model but not in the map: ${extraModel.slice(0, 5).join(' ')}`);
  // The moved slots the program marked seen are the ones the model marked.
  const seen = readSeen(target.maps, installed);
  for (const [id, slots] of seen) {
    const want = [...(state.marks?.get(id) ?? new Map())].filter(([, m]) => m.seen).map(([slot]) => slot).sort((a, b) => a - b);
    if (slots.join() !== want.join()) problems.push(`service ${id}: slots seen ${slots.join() || 'none'}, model ${want.join() || 'none'}`);
  }
  const seenCount = [...seen.values()].reduce((n, slots) => n + slots.length, 0);
  if (frames >= 10_000 && seenCount === 0) problems.push('no moved slot was seen (the transition path was not exercised)');

  // The program's own counters saw the same verdicts.
  const after = readCounters(target.maps, [], []);
  for (let v = 0; v < LB.VERDICT_SLOTS; v++) {
    const delta = Number(after.verdicts[v][0] - before.verdicts[v][0]);
    if (delta !== tally.verdicts[v]) problems.push(`verdict_stats[${v}] (reason ${v >> 3}, action ${v & 7}): ${delta} counted, ${tally.verdicts[v]} expected`);
  }
  const bytes = after.actions.reduce((s, c, a) => s + Number(c[1] - before.actions[a][1]), 0);
  if (bytes !== tally.bytes) problems.push(`verdict_stats bytes ${bytes} != sum of frame lengths ${tally.bytes}`);
  const ms = Date.now() - started;
  log(`fuzz: ${v6Frames} of them IPv6, ${v6Mismatches} IPv6 mismatches; IPv6 reasons ${JSON.stringify(v6Reasons.slice(0, LB.REASON_COUNT))}`);
  log(`fuzz: ${frames} frames in ${ms} ms; ${mismatchCount} mismatches; ${checkedSums} sent frames re-checksummed; actions ${JSON.stringify(tally.actions.slice(0, 5))}; reasons ${JSON.stringify(tally.reasons.slice(0, LB.REASON_COUNT))}`);
  return { frames, seed, ms, mismatches, mismatchCount, problems, checkedSums, reasons: tally.reasons.slice(0, LB.REASON_COUNT), actions: tally.actions.slice(0, 5), v6Frames, v6Mismatches, v6Reasons: v6Reasons.slice(0, LB.REASON_COUNT) };
}
