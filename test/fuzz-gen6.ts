/**
 * The IPv6 frames of the differential fuzz (test/fuzz-core.ts): valid frames of every class the
 * IPv6 path distinguishes (V6.md "Packet path policy"), weighted toward the edges: extension
 * header chains (every kind, too many, refused ones, truncated ones), payload-length lies,
 * jumbogram headers, hop limits 0/1, ICMPv6 errors quoting VIP flows (whole, cut, of other
 * sources), echo, neighbour discovery, fragments (to VIPs, NAT reply fragments, atomic), v4-mapped
 * addresses, v6 frames to a v4 VIP's mapped address and v4 frames to a port only a v6 service
 * has; then mutations of the IPv6 header fields.
 */
import {
  buildFrame6, buildIpv6, buildEthernet, buildFrame, ip6ToBuffer, bufferToIp6, ETH_P_IPV6,
  IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, type Ext6Spec,
} from '../src/dataplane/packet';
import { VIP, CLIENT } from './datapath-fixtures';
import { VIP6, BACKENDS6, CLIENT6, ROUTER6, fragmentDatagram6 } from './datapath-fixtures6';

/** What the generator needs of the fuzz's random source. */
export interface Random {
  next(): number;
  int(n: number): number;
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
  bytes(n: number): Buffer;
}

const VIPS6 = Object.values(VIP6);
const BACKEND6_IPS = [...new Set(BACKENDS6.map((b) => b.ip))];
const MARTIANS6 = ['::', '::1', 'ff02::1', 'ff05::2', 'fe80::1', 'fe80::a:b', 'febf::9', '::ffff:198.18.0.10', '::ffff:127.0.0.1'];

export class Generator6 {
  private readonly recent: Array<{ src: string; dst: string; sport: number; dport: number }> = [];
  constructor(private readonly r: Random) {}

  /** A random address in a /64 of the lab: its prefix and a mostly small interface id. */
  private inNet(prefix: string): string {
    const r = this.r;
    const b = ip6ToBuffer(prefix);
    if (r.chance(0.7)) b.writeUInt16BE(r.int(0x200), 14);
    else { b.writeUInt32BE(r.next(), 8); b.writeUInt32BE(r.next(), 12); }
    return bufferToIp6(b);
  }

  client(): string {
    const r = this.r;
    if (r.chance(0.04)) return r.pick([...MARTIANS6, ...VIPS6]);
    return r.pick([CLIENT6, CLIENT6, '2001:2:0:a::11', this.inNet('2001:2:0:a::'), this.inNet('2001:2:7::')]);
  }

  private port(common: number[]): number {
    return this.r.chance(0.7) ? this.r.pick(common) : this.r.int(65536);
  }

  private hop(): number {
    return this.r.chance(0.85) ? 64 : this.r.pick([0, 1, 2, 255]);
  }

  /** 0..6 extension headers: mostly none or acceptable ones, sometimes refused or too many. */
  extChain(): Ext6Spec[] {
    const r = this.r;
    if (r.chance(0.6)) return [];
    const n = r.pick([1, 1, 1, 2, 2, 3, 4, 4, 5, 6]);
    const out: Ext6Spec[] = [];
    for (let i = 0; i < n; i++) {
      const type = r.chance(0.85) ? r.pick([60, 60, 43, 51, i === 0 ? 0 : 60]) : r.pick([0, 44, 50, 59, 135, 139, 253]);
      if (type === 43) out.push({ type, segmentsLeft: r.chance(0.8) ? 0 : 1 + r.int(3), body: r.bytes(4 + 16 * r.int(2)) });
      else if (type === 44) out.push({ type, fragOffset: r.chance(0.7) ? 0 : 1 + r.int(100), more: r.chance(0.5), id: r.next() });
      else if (type === 51) out.push({ type, body: r.bytes(12 + 4 * r.int(3)) });
      else if (type === 0 || type === 60) out.push({ type, body: r.chance(0.5) ? Buffer.alloc(0) : Buffer.from([1, r.int(10), ...r.bytes(r.int(10))]).subarray(0, 2 + r.int(10)) });
      else out.push({ type, raw: Buffer.concat([Buffer.from([0, r.int(2)]), r.bytes(6)]) });
    }
    // Options bodies must be well formed enough to pad: PadN with the right length.
    for (const e of out) {
      if ((e.type === 0 || e.type === 60) && e.body && e.body.length >= 2) e.body = Buffer.concat([Buffer.from([1, e.body.length - 2]), Buffer.alloc(e.body.length - 2)]);
    }
    return out;
  }

  private l4(proto: number, sport: number, dport: number, payload: Buffer, zeroUdp = false) {
    return proto === IPPROTO_TCP
      ? { tcp: { sport, dport, seq: this.r.next(), flags: this.r.int(256), payload } }
      : { udp: { sport, dport, payload, checksum: zeroUdp ? 0 : undefined } };
  }

  /** A base frame; `v4` marks the one IPv4 class (a port only the v6 sibling serves). */
  basePacket(): { frame: Buffer; ingress: 'a' | 'b'; v4?: true } {
    const r = this.r;
    const kind = r.int(14);
    const payload = r.bytes(r.chance(0.5) ? 0 : r.int(64));
    const ip = (src: string, dst: string) => ({ src, dst, hopLimit: this.hop(), trafficClass: r.chance(0.2) ? r.int(256) : 0, flowLabel: r.chance(0.2) ? r.int(1 << 20) : 0 });
    switch (kind) {
      case 0: case 1: case 2: { // client -> VIP TCP, half a recent flow again
        let flow = r.chance(0.4) && this.recent.length ? r.pick(this.recent) : null;
        if (!flow) {
          const dst = r.chance(0.95) ? r.pick([VIP6.web, VIP6.web, VIP6.web, VIP6.any, VIP6.dsr, VIP6.tx, ...VIPS6]) : `::ffff:${r.pick(Object.values(VIP))}`;
          const dport = dst === VIP6.web ? this.port([80, 80, 80, 443, 81]) : dst === VIP6.any ? this.port([8443, 2222, 80]) : this.port([80, 80, 81]);
          flow = { src: this.client(), dst, sport: r.int(65536), dport };
          this.recent[r.int(64)] = flow;
        }
        return { ingress: 'a', frame: buildFrame6({ ip: ip(flow.src, flow.dst), ext: this.extChain(), ...this.l4(IPPROTO_TCP, flow.sport, flow.dport, payload) }) };
      }
      case 3: // client -> VIP UDP
        return { ingress: 'a', frame: buildFrame6({ ip: ip(this.client(), r.chance(0.7) ? VIP6.web : r.pick(VIPS6)), ext: this.extChain(), ...this.l4(IPPROTO_UDP, r.int(65536), this.port([53, 53, 80]), payload, r.chance(0.1)) }) };
      case 4: case 5: { // backend -> client reply
        const proto = r.chance(0.65) ? IPPROTO_TCP : IPPROTO_UDP;
        const src = r.chance(0.9) ? r.pick(BACKEND6_IPS) : this.inNet('2001:2:0:b::');
        const dst = r.chance(0.05) ? r.pick([...MARTIANS6, '2001:2:0:b::1', '2001:2:0:a::']) : this.client();
        return { ingress: 'b', frame: buildFrame6({ ip: ip(src, dst), ext: r.chance(0.3) ? this.extChain() : [], ...this.l4(proto, this.port([80, 5353, 4444, 443, 8443]), r.int(65536), payload, r.chance(0.05)) }) };
      }
      case 6: { // ICMPv6 to a VIP (mostly echo) or not
        const type = r.chance(0.7) ? 128 : r.pick([129, 130, 131, 1, 2, 3, 4, 133, 135, 136, 200, r.int(256)]);
        return { ingress: 'a', frame: buildFrame6({ ip: ip(this.client(), r.chance(0.85) ? r.pick(VIPS6) : '2001:2:0:a::1'), ext: r.chance(0.2) ? this.extChain() : [], icmp6: { type, code: r.chance(0.9) ? 0 : r.int(256), rest: r.next(), payload } }) };
      }
      case 7: case 8: { // ICMPv6 error quoting VIP -> client
        const proto = r.chance(0.6) ? IPPROTO_TCP : r.chance(0.9) ? IPPROTO_UDP : r.pick([IPPROTO_ICMPV6, 44, 60]);
        const vip = r.pick(VIPS6);
        const inner = proto === IPPROTO_TCP || proto === IPPROTO_UDP
          ? buildIpv6({ ip: { src: r.chance(0.9) ? vip : this.client(), dst: this.client(), hopLimit: 63 }, ...this.l4(proto, this.port([80, 53, 443, 8443]), r.int(65536), payload, r.chance(0.1)) })
          : buildIpv6({ ip: { src: vip, dst: this.client(), proto }, payload: r.bytes(16) });
        const quoted = r.chance(0.5) ? inner : inner.subarray(0, Math.min(inner.length, 30 + r.int(40)));
        return { ingress: 'a', frame: buildFrame6({ ip: ip(r.chance(0.9) ? ROUTER6 : this.client(), vip), icmp6: { type: r.pick([1, 2, 3, 4]), code: r.int(8), rest: r.pick([1280, 1400, 0, r.next()]), payload: quoted } }) };
      }
      case 9: { // neighbour discovery, to a VIP, the host or a multicast group
        const type = 133 + r.int(5);
        const dst = r.pick([r.pick(VIPS6), '2001:2:0:a::1', 'ff02::1', 'ff02::1:ff00:1', 'fe80::1']);
        return { ingress: r.chance(0.7) ? 'a' : 'b', frame: buildFrame6({ ip: { src: r.pick([CLIENT6, 'fe80::10', '::', ROUTER6]), dst, hopLimit: r.chance(0.9) ? 255 : 64 }, icmp6: { type, payload: Buffer.concat([ip6ToBuffer(r.pick([...VIPS6, '2001:2:0:a::1'])), r.bytes(r.int(16))]) } }) };
      }
      case 10: { // non-VIP traffic (random 2001:2::/48, link-local, multicast, the v4 VIPs' mapped forms)
        const to = ip(this.client(), r.pick([this.inNet('2001:2:9::'), 'fe80::1', 'ff0e::1:3', `::ffff:${r.pick(Object.values(VIP))}`, this.inNet('2001:2:100::')]));
        const ext = r.chance(0.3) ? this.extChain() : [];
        return { ingress: r.chance(0.5) ? 'a' : 'b', frame: r.chance(0.8)
          ? buildFrame6({ ip: to, ext, ...this.l4(r.pick([IPPROTO_TCP, IPPROTO_UDP]), r.int(65536), this.port([80, 53]), payload) })
          : buildFrame6({ ip: { ...to, proto: r.pick([47, IPPROTO_ICMPV6, 50]) }, ext, payload: r.bytes(20) }) };
      }
      case 11: { // fragments: of a backend's reply (first, middle, last) or to a VIP
        const proto = r.chance(0.6) ? IPPROTO_UDP : IPPROTO_TCP;
        const toVip = r.chance(0.2);
        const src = toVip ? this.client() : r.chance(0.9) ? r.pick(BACKEND6_IPS) : this.inNet('2001:2:0:b::');
        const dst = toVip ? r.pick(VIPS6) : this.client();
        const datagram = buildIpv6({ ip: ip(src, dst), ...this.l4(proto, this.port([80, 5353, 4444, 443, 8443]), r.int(65536), r.bytes(16 + r.int(200)), r.chance(0.05)) });
        const frags = fragmentDatagram6(datagram, Array.from({ length: 4 }, () => 8 * (1 + r.int(8))), r.next());
        return { ingress: toVip ? 'a' : 'b', frame: buildEthernet({ etherType: ETH_P_IPV6 }, r.pick(frags)) };
      }
      case 12: { // jumbogram header (payload length 0 + jumbo option) or a VLAN-tagged v6 frame
        if (r.chance(0.5)) {
          const jumbo = Buffer.from([0xc2, 4, ...r.bytes(4)]);
          return { ingress: 'a', frame: buildFrame6({ ip: { src: this.client(), dst: r.pick(VIPS6), payloadLength: r.chance(0.8) ? 0 : undefined }, ext: [{ type: 0, body: jumbo }], tcp: { sport: r.int(65536), dport: 80, payload } }) };
        }
        return { ingress: 'a', frame: buildFrame6({ eth: { vlan: r.int(4096), etherType: ETH_P_IPV6 }, ip: { src: CLIENT6, dst: VIP6.web }, tcp: { sport: r.int(65536), dport: 80 } }) };
      }
      default: // IPv4 to a port only the v6 sibling of its VIP serves (VIP.web tcp/443)
        return { ingress: 'a', v4: true, frame: buildFrame({ ip: { src: CLIENT, dst: VIP.web, proto: IPPROTO_TCP, ttl: this.hop() }, tcp: { sport: r.int(65536), dport: 443, payload } }) };
    }
  }

  /** Zero to three mutations of the IPv6 fields that reach the program's edges (no checksum to fix up). */
  mutate(input: Buffer): Buffer {
    const r = this.r;
    let f = Buffer.from(input);
    if (f.length < 54 || f.readUInt16BE(12) !== ETH_P_IPV6) return f;
    const n = r.chance(0.5) ? 0 : 1 + r.int(r.chance(0.7) ? 1 : 3);
    for (let i = 0; i < n; i++) {
      switch (r.int(10)) {
        case 0: f[r.int(Math.min(f.length, 14 + 40 + 64))] ^= 1 << r.int(8); break;      // a bit in the headers
        case 1: f = f.subarray(0, 14 + r.int(Math.max(1, f.length - 13))); break;          // truncate
        case 2: if (f.length > 19) f.writeUInt16BE(r.pick([0, r.int(65536), Math.max(0, f.length - 54 + r.int(9) - 4), Math.max(0, f.length - 54 - 8 * r.int(4))]), 18); break; // payload length lies
        case 3: if (f.length > 14) f[14] = (r.pick([4, 5, 6, 6, 7, 0]) << 4) | (f[14] & 0x0f); break; // version
        case 4: if (f.length > 20) f[20] = r.pick([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, 0, 43, 44, 50, 51, 59, 60, r.int(256)]); break; // next header
        case 5: if (f.length > 21) f[21] = r.pick([0, 1, 2, r.int(256)]); break;            // hop limit
        case 6: f = Buffer.concat([f, r.bytes(1 + r.int(20))]); break;                     // trailer
        case 7: if (f.length > 55) f[55] = r.pick([0, 1, 2, 255, r.int(256)]); break;       // first ext header's length byte
        case 8: if (f.length > 54) f[54] = r.pick([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, 0, 43, 44, 59, 60]); break; // first ext header's next header
        default: if (f.length > 57) f[57] = r.pick([0, 1, 2]); break;                       // routing segments left / fragment offset bits
      }
    }
    return f;
  }
}
