/** Host inventory: every BPF program and map, XDP attachments, interfaces, run-time stats. */
import fs from 'node:fs';
import type { MapInfo, ProgramInfo, XdpAttachment } from './api';
import { native } from './native';

/** Every BPF program on the host with its info. @throws BpfError (op 'list programs'), EPERM without root. */
export function listPrograms(): ProgramInfo[] {
  return native().listPrograms();
}

/** Every BPF map on the host. @throws BpfError (op 'list maps'). */
export function listMaps(): MapInfo[] {
  return native().listMaps();
}

export interface LinkInfo { id: number; type: number; progId: number; ifindex: number }

/** Every BPF link on the host (ifindex set for XDP links). @throws BpfError (op 'list links'). */
export function listLinks(): LinkInfo[] {
  return native().listLinks();
}

/**
 * Turns on BPF_STATS_RUN_TIME (run_cnt/run_time_ns in ProgramInfo) until close() is called.
 * @throws BpfError (op 'enable run stats').
 */
export function enableRunStats(): { close(): void } {
  let fd = native().enableStats();
  return {
    close(): void {
      if (fd < 0) return;
      native().closeFd(fd);
      fd = -1;
    },
  };
}

const ATTACH_MODES: Record<number, XdpAttachment['mode']> = { 1: 'native', 2: 'generic', 3: 'offload', 4: 'multi' };

export interface Interface { index: number; name: string }

/** Interfaces of the calling thread's network namespace. @throws BpfError */
export function listInterfaces(): Interface[] {
  return native().listInterfaces();
}

/**
 * Every interface of the calling thread's netns that has an XDP program, with its mode.
 * @throws BpfError (op 'xdp query').
 */
export function xdpAttachments(): XdpAttachment[] {
  const out: XdpAttachment[] = [];
  for (const { index, name } of listInterfaces()) {
    const q = native().xdpQuery(index, name);
    const mode = ATTACH_MODES[q.mode];
    if (!mode) continue;
    out.push({ ifindex: index, ifname: name, progId: q.progId || q.drvProgId || q.skbProgId || q.hwProgId, mode });
  }
  return out;
}

/** ifindex of `name` in the calling thread's netns. @throws BpfError ENODEV (op 'interface lookup'). */
export function ifIndex(name: string): number {
  return native().ifNameToIndex(name);
}

/** Name of interface `index` in the calling thread's netns. @throws BpfError ENXIO/ENODEV. */
export function ifName(index: number): string {
  return native().ifIndexToName(index);
}

/** The MAC address (6 bytes) of interface `name` in the calling thread's netns. @throws BpfError ENODEV (op 'interface lookup'). */
export function ifHwAddr(name: string): Buffer {
  return native().ifHwAddr(name);
}

/** libbpf_num_possible_cpus(): the number of slots in a per-CPU value. */
export function possibleCpus(): number {
  return native().possibleCpus();
}

/** Open file descriptors of this process (for leak tests). */
export function openFdCount(): number {
  // readdirSync holds one fd of its own while listing; it is the same on every call.
  return fs.readdirSync('/proc/self/fd').length;
}
