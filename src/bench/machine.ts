/** The machine a benchmark ran on, recorded beside its figures. */
import * as os from 'node:os';
import { readFileSync } from 'node:fs';

export interface MachineDescription {
  kernel: string;
  kernelVersion: string;
  arch: string;
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  node: string;
  hostname: string;
  /** Load average (1, 5, 15 min) when the run started: a busy machine explains noisy figures. */
  loadAverage: number[];
}

/** Describes this machine (kernel, CPUs, model name, memory, node version). */
export function describeMachine(): MachineDescription {
  let model = os.cpus()[0]?.model ?? 'unknown';
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) model = line.split(':').slice(1).join(':').trim();
  } catch { /* keep os.cpus() */ }
  return {
    kernel: os.release(), kernelVersion: os.version(), arch: os.arch(), cpus: os.cpus().length, cpuModel: model,
    memoryBytes: os.totalmem(), node: process.version, hostname: os.hostname(), loadAverage: os.loadavg(),
  };
}
