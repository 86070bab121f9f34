/**
 * What the kernel holds for one backend, read through the daemon's pinned maps (no API):
 * its entry in `backends` (flags) and how many slots of its service's inner Maglev table
 * point at it. The browser suite uses it to check that a drain clicked in the UI reached
 * the data plane.
 */
import path from 'node:path';
import { BpfMap } from '../../src/bpf';
import { LB, LbBackend6Codec, LbBackendCodec, LbServiceCodec } from '../../src/dataplane/abi';
import { pinnedTableOuterValue } from '../../src/dataplane/maglev-tables';
import { formatHostPort } from '../../src/domain/address';

export interface KernelBackend { id: number; flags: number; draining: boolean; maglevSlots: number; tableSize: number }

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function withMap<T>(map: BpfMap, fn: (m: BpfMap) => T): T {
  try { return fn(map); } finally { map.close(); }
}

/**
 * Reads backend `key` ("address:port", active entry) from the maps pinned under `pinDir`.
 * @throws Error when no active backend entry has that address and port; BpfError on map access.
 */
export function kernelBackend(pinDir: string, key: string): KernelBackend {
  const maps = path.join(pinDir, 'maps');
  const found = withMap(BpfMap.fromPin(path.join(maps, 'backends')), (m) => {
    for (const [k, v] of m.entries()) {
      const be = LbBackendCodec.decode(v);
      if ((be.flags & LB.BACKEND_F_ACTIVE) && `${be.ip}:${be.port}` === key) return { id: k.readUInt32LE(0), ...be };
    }
    return null;
  });
  if (!found) throw new Error(`no active backend ${key} in ${maps}/backends`);
  const tableSize = withMap(BpfMap.fromPin(path.join(maps, 'services')), (m) => {
    for (const [, v] of m.entries()) {
      const svc = LbServiceCodec.decode(v);
      if (svc.id === found.serviceId) return svc.tableSize;
    }
    throw new Error(`service id ${found.serviceId} of backend ${key} is not in ${maps}/services`);
  });
  const innerId = pinnedTableOuterValue(maps, found.serviceId)?.readUInt32LE(0);
  if (innerId === undefined) throw new Error(`no maglev table for service id ${found.serviceId}`);
  const maglevSlots = withMap(BpfMap.fromId(innerId), (inner) => {
    let slots = 0;
    // A slot in a transition carries LB_SLOT_MOVED on top of the backend id.
    for (let i = 0; i < tableSize; i++) if (((inner.lookup(u32(i))?.readUInt32LE(0) ?? 0) & LB.SLOT_ID_MASK) === found.id) slots++;
    return slots;
  });
  return { id: found.id, flags: found.flags, draining: (found.flags & LB.BACKEND_F_DRAINING) !== 0, maglevSlots, tableSize };
}

/**
 * The active IPv6 backends in the `backends6` map pinned under `pinDir`, as `[addr]:port` keys
 * (the map's codec decodes addresses to canonical text), sorted.
 * @throws BpfError on map access.
 */
export function kernelBackends6(pinDir: string): string[] {
  return withMap(BpfMap.fromPin(path.join(pinDir, 'maps', 'backends6')), (m) => {
    const keys: string[] = [];
    for (const [, v] of m.entries()) {
      const be = LbBackend6Codec.decode(v);
      if (be.flags & LB.BACKEND_F_ACTIVE) keys.push(formatHostPort(be.ip, be.port));
    }
    return keys.sort();
  });
}
