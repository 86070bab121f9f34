/**
 * Loads the xdplb_native addon (build/Release/xdplb_native.node) and declares its raw type.
 * Only the modules of src/bpf call it; everything else uses their typed handles.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BpfError } from './errors';
import type { MapInfo, ProgramInfo } from './api';
import { repoRoot } from '../paths';

export { repoRoot };


export interface RawTestRunOptions {
  repeat?: number; dataOutSize?: number; ingressIfindex?: number; flags?: number; batchSize?: number; cpu?: number;
}
export interface RawLinkInfo { id: number; type: number; progId: number; ifindex: number }
export interface RawXdpQuery { mode: number; progId: number; drvProgId: number; skbProgId: number; hwProgId: number }
export interface RawStructLayout {
  size: number;
  members: { name: string; offset: number; size: number; bitSize?: number }[];
}
export interface RawRingBufferConsumer { close(): void; consume(): number; ref(): void; unref(): void }

export interface NativeAddon {
  setErrorClass(ctor: new (fields: never) => Error): void;
  objectLoad(path: string, opts: object): number;
  objectClose(handle: number): void;
  objectProgramNames(handle: number): string[];
  objectMapNames(handle: number, withInternal?: boolean): string[];
  objectProgramFd(handle: number, name: string): number;
  objectMapFd(handle: number, name: string): number;
  mapCreate(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, flags: number,
    innerMapFd: number): number;
  mapInfo(fd: number, name: string): MapInfo;
  mapLookup(fd: number, key: Buffer, keySize: number, valueLen: number, name: string): Buffer | null;
  mapUpdate(fd: number, key: Buffer, keySize: number, value: Buffer, valueLen: number, flags: number, name: string): void;
  mapDelete(fd: number, key: Buffer, keySize: number, name: string): boolean;
  mapNextKey(fd: number, key: Buffer | null, keySize: number, name: string): Buffer | null;
  mapLookupBatch(fd: number, keySize: number, valueLen: number, maxEntries: number, name: string):
    { keys: Buffer; values: Buffer; count: number };
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, flags: number, name: string): void;
  mapStoreWords(fd: number, bytes: number, offsets: Uint32Array, values: Uint32Array, name: string): void;
  mapReadWords(fd: number, bytes: number, name: string): Buffer;
  mapMmap(fd: number, bytes: number, name: string): number;
  mapMmapStore(handle: number, offsets: Uint32Array, values: Uint32Array): void;
  /** Maglev slots written in place through kept mappings of a table's ids and marks (native/maps.cc has the steps). */
  mapMmapStoreSlots(idsHandle: number, marksHandle: number, indices: Uint32Array, words: Uint32Array, idStride: number, markStride: number,
    movedBit: number): boolean;
  mapMmapRead(handle: number): Buffer;
  mapMunmap(handle: number): boolean;
  objPin(fd: number, path: string, what: string): void;
  objGet(path: string, what: string): number;
  progFdFromId(id: number): number;
  mapFdFromId(id: number): number;
  linkFdFromId(id: number): number;
  closeFd(fd: number): void;
  possibleCpus(): number;
  mapTypeNames(): string[];
  progTypeNames(): string[];
  xdpLinkCreate(progFd: number, ifindex: number, mode: string, ifname: string): number;
  linkUpdate(linkFd: number, progFd: number, what: string): void;
  linkDetach(linkFd: number, what: string): void;
  linkInfo(linkFd: number, what: string): RawLinkInfo;
  xdpQuery(ifindex: number, ifname: string): RawXdpQuery;
  ifNameToIndex(name: string): number;
  ifIndexToName(index: number): string;
  ifHwAddr(name: string): Buffer;
  listInterfaces(): { index: number; name: string }[];
  progInfo(fd: number, name: string): ProgramInfo;
  listPrograms(): ProgramInfo[];
  listMaps(): MapInfo[];
  listLinks(): RawLinkInfo[];
  enableStats(): number;
  testRun(fd: number, data: Buffer, opts: RawTestRunOptions, name: string): { retval: number; data: Buffer; durationNs: number };
  testRunMany(fd: number, data: Buffer, count: number, ingressIfindex: number, pinCpu: number, name: string):
    { durations: Float64Array; retvals: Record<string, number> };
  testRunLive(fd: number, frame: Buffer, count: number, batchSize: number, ingressIfindex: number, pinCpu: number,
    name: string): { retval: number; durationNs: number; wallNs: number };
  RingBufferConsumer: new (mapFd: number, onRecord: (rec: Buffer) => void, name: string) => RawRingBufferConsumer;
  netnsEnter(name: string): number;
  /** A new non-blocking TCP socket (IPv4; IPv6 for family 6) with SO_MARK = mark (needs CAP_NET_ADMIN); returns its fd. */
  socketWithMark(mark: number, family?: 4 | 6): number;
  netnsRestore(savedFd: number): void;
  btfStructLayout(objectPath: string, structName: string): RawStructLayout;
  /** The Maglev turn loop (src/balancer/maglev.ts fillTable) in C++: fills `table` with `owner` indexes. */
  maglevFill(size: number, n: number, equal: boolean, maxWeight: number, cap: Int32Array, position: Int32Array, skip: Int32Array,
    weight: Float64Array, owner: Uint32Array, table: Uint32Array): void;
  /** transitionSlots' loop (src/balancer/transitions.ts) in C++: [slots changed, slots marked]. */
  transitionPass(old: Uint32Array, ids: Uint32Array, isKnown: Uint8Array, epoch: number, young: number, out: Uint32Array,
    changed: Uint32Array): [number, number];
}

let addon: NativeAddon | undefined;

/**
 * The addon, loaded on first use.
 * @throws Error when build/Release/xdplb_native.node is missing (run `npx node-gyp rebuild`).
 */
export function native(): NativeAddon {
  if (addon) return addon;
  const file = path.join(repoRoot(), 'build', 'Release', 'xdplb_native.node');
  if (!fs.existsSync(file)) {
    throw new Error(`xdplb native addon not built: ${file} is missing (run \`npx node-gyp rebuild\` or scripts/build.sh)`);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const loaded = require(file) as NativeAddon;
  loaded.setErrorClass(BpfError as unknown as new (fields: never) => Error);
  addon = loaded;
  return loaded;
}
