/**
 * IPv6 services written straight into the data plane's maps as TypedMap rows (services6, vips6,
 * backends6, reverse6, maglev, settings.vip_filter6), for the IPv6 data-path smoke test
 * (test/datapath6-smoke.test.ts), which needs FIXED service and backend ids, a service without
 * its slot copy, and hand-made moved-slot tables next to these rows. Everything else (the daemon,
 * `bench prog`) writes IPv6 services through the reconciler (src/balancer/reconciler.ts), which
 * allocates its own ids; these rows are what it writes for such a service.
 */
import type { BpfMap } from '../../src/bpf';
import { buildMaglevTable } from '../../src/balancer/maglev';
import { LB, encodeU32, canonicalIpv6 } from '../../src/dataplane/abi';
import { createMaglevTable, SLOT_WORDS } from '../../src/dataplane/maglev-tables';
import { lbMap } from '../../src/dataplane/typed-map';
import { serviceSlotIndex6, vipFilterBit6 } from '../../src/dataplane/jhash';
import { joinHostPort } from '../../src/domain/address';

export interface Backend6Row { id: number; ip: string; port: number }
export interface Service6Row {
  id: number;
  vip: string;
  port: number;
  proto: 6 | 17;
  mode: 'nat' | 'dsr';
  tableSize: number;          // a prime
  backends: Backend6Row[];
}

/** What the rows are written through: the data plane (or a test target) by map name. */
export interface MapSource { map(name: string): BpfMap }

export interface Install6Options {
  /** also write the service's service_slots6 copy when its slot is empty (default true) */
  slot?: boolean;
}

/**
 * Writes one IPv6 service with its backends: services6, vips6 (services count), backends6
 * (ACTIVE, owner), reverse6 (NAT: {backend ip, port (0 = any), proto} -> VIP), the Maglev table
 * (buildMaglevTable over the backends' "[ip]:port" keys, weight 1) into maglev[id], the
 * service_slots6 copy (first come: a taken slot is left to its service, that one is found in
 * services6), and the VIP's
 * bit in settings.vip_filter6 (the other settings kept). @throws Error for a bad address or table size
 */
export function installService6(dp: MapSource, svc: Service6Row, opts: Install6Options = {}): void {
  const src = dp as unknown as { map(name: never): never };
  const vip = canonicalIpv6(svc.vip);
  const mode = svc.mode === 'dsr' ? LB.MODE_DSR : LB.MODE_NAT;
  const key = { vip, port: svc.port, proto: svc.proto };
  const value = { id: svc.id, tableSize: svc.tableSize, mode, flags: 0 };
  lbMap(src, 'services6').set(key, value);
  if (opts.slot ?? true) {
    const slots = lbMap(src, 'service_slots6');
    const index = serviceSlotIndex6(vip, svc.port, svc.proto);
    if (slots.get(index)?.key.proto === 0) slots.set(index, { key, svc: value });
  }
  const vips6 = lbMap(src, 'vips6');
  vips6.set(vip, { services: (vips6.get(vip)?.services ?? 0) + 1 });
  const backends6 = lbMap(src, 'backends6');
  const reverse6 = lbMap(src, 'reverse6');
  for (const b of svc.backends) {
    backends6.set(b.id, { ip: b.ip, port: b.port, flags: LB.BACKEND_F_ACTIVE, mode, serviceId: svc.id, vip, vport: svc.port, proto: svc.proto });
    if (mode === LB.MODE_NAT) reverse6.set({ ip: b.ip, port: b.port || svc.port, proto: svc.proto }, { vip, vport: svc.port, serviceId: svc.id, backendId: b.id });
  }
  const indexes = buildMaglevTable(svc.backends.map((b) => ({ key: joinHostPort(canonicalIpv6(b.ip), b.port), weight: 1 })), svc.tableSize);
  const flat = new Uint32Array(svc.tableSize * SLOT_WORDS);
  for (let s = 0; s < indexes.length; s++) flat[s * SLOT_WORDS] = svc.backends[indexes[s]].id;
  const table = createMaglevTable(flat);
  try {
    dp.map('maglev').update(encodeU32(svc.id), encodeU32(table.fd));
  } finally {
    table.close();   // the outer map holds the inner table
  }
  const settings = lbMap(src, 'settings');
  const current = settings.get(0)!;
  const bit = vipFilterBit6(vip);
  const words = [...current.vipFilter6];
  words[bit >>> 5] = (words[bit >>> 5] | (1 << (bit & 31))) >>> 0;
  settings.set(0, { ...current, vipFilter6: words });
}
