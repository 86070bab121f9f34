/**
 * The contract of the libbpf bridge (src/bpf/index.ts implements it over native/).
 * Everything else in xdplb talks to the kernel only through these types.
 * Every method that touches the kernel throws BpfError (see errors.ts) on failure.
 */

/** Options for loading an object file: all set before load. */
export interface LoadOptions {
  /** map name -> max_entries (outer maps included). */
  maxEntries?: Record<string, number>;
  /** outer map name -> max_entries of its inner-map template. */
  innerMaxEntries?: Record<string, number>;
  /** `const volatile` global name (in .rodata) -> its bytes (exact size of the variable). */
  globals?: Record<string, Buffer>;
  /** map name -> bpffs path of a pinned map to reuse instead of creating a new one. */
  reuseMaps?: Record<string, string>;
}

export type XdpMode = 'native' | 'generic';

export interface TestRunOptions {
  repeat?: number;        // default 1
  dataOutSize?: number;   // default: input length + 256
  ingressIfindex?: number;// xdp_md.ingress_ifindex (context in)
  flags?: number;         // e.g. BPF_F_TEST_XDP_LIVE_FRAMES
  batchSize?: number;     // live frames batch size
  cpu?: number;
}
export interface TestRunResult { retval: number; data: Buffer; durationNs: number }

export interface ProgramInfo {
  id: number; name: string; type: number; typeName: string; tag: string;
  loadTime: number;      // ms since the epoch
  jitedSize: number; xlatedSize: number; mapIds: number[];
  runCount: number; runTimeNs: number; btfId: number; uid: number;
}
export interface MapInfo {
  id: number; name: string; type: number; typeName: string;
  keySize: number; valueSize: number; maxEntries: number; flags: number;
}
export interface XdpAttachment {
  ifindex: number; ifname: string; progId: number; mode: XdpMode | 'offload' | 'multi';
}
export interface MapCreateOptions {
  type: number | string;  // BPF_MAP_TYPE_* number or name like 'array', 'hash'
  name: string; keySize: number; valueSize: number; maxEntries: number; flags?: number;
  innerMapFd?: number;
}
