/** The libbpf bridge: typed handles over the xdplb_native addon (see api.ts for the contract). */
export * from './api';
export { BpfError } from './errors';
export { BpfObject } from './object';
export { BpfMap, MappedWords, BPF_F_INNER_MAP, BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, mapTypeNumber, type UpdateFlag } from './map';
export {
  Program, BPF_F_TEST_XDP_LIVE_FRAMES,
  type TestRunManyOptions, type TestRunManyResult, type TestRunLiveOptions, type TestRunLiveResult,
} from './program';
export { XdpLink } from './link';
export { RingBuffer } from './ringbuf';
export {
  listPrograms, listMaps, listLinks, enableRunStats, xdpAttachments, listInterfaces, ifIndex, ifName, ifHwAddr,
  possibleCpus, openFdCount, type LinkInfo, type Interface,
} from './inventory';
export { enterNetns, inNetns } from './netns';
export { btfStructLayout, type StructLayout, type StructMember } from './btf';
export { repoRoot } from './native';
export { nativeMaglevFill, type MaglevFill } from './maglev-fill';

/** XDP actions (retval of an XDP program). */
export const XDP_ACTIONS = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;
