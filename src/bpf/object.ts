/** BpfObject: a BPF ELF object opened, configured (map sizes, globals, pinned maps) and loaded. */
import type { LoadOptions } from './api';
import { bpfError } from './errors';
import { BpfMap } from './map';
import { native } from './native';
import { Program } from './program';

export class BpfObject {
  readonly path: string;
  #handle: number;

  private constructor(path: string, handle: number) {
    this.path = path;
    this.#handle = handle;
  }

  /**
   * Opens and loads `path`, applying every option before load. The verifier's log is kept and
   * attached to the error when a program is refused.
   * @throws BpfError op 'object open' (ENOENT missing file), 'object set max_entries' /
   *   'object set global' / 'object reuse map' (ENOENT unknown name, EINVAL wrong size),
   *   'object load' (EACCES/EINVAL with verifierLog when the verifier refuses).
   */
  static load(path: string, opts: LoadOptions = {}): BpfObject {
    return new BpfObject(path, native().objectLoad(path, opts));
  }

  private get handle(): number {
    if (this.#handle < 0) throw bpfError('use', `object ${this.path}`, 'EBADF', 'the object was closed');
    return this.#handle;
  }

  /** Names of the object's programs. */
  programNames(): string[] {
    return native().objectProgramNames(this.handle);
  }

  /** Names of the object's maps (internal .rodata/.bss maps only with withInternal). */
  mapNames(withInternal = false): string[] {
    return native().objectMapNames(this.handle, withInternal);
  }

  /**
   * A new handle on the program `name` with its own fd: the caller owns it and must close it;
   * it stays valid after the object is closed.
   * @throws BpfError ENOENT (op 'object program') naming the programs the object has.
   */
  program(name: string): Program {
    return new Program(native().objectProgramFd(this.handle, name), name);
  }

  /**
   * A new handle on the map `name` with its own fd (caller owns it, valid after the object closes).
   * @throws BpfError ENOENT (op 'object map') naming the maps the object has.
   */
  map(name: string): BpfMap {
    return new BpfMap(native().objectMapFd(this.handle, name), name);
  }

  /** New handles on every (non-internal) map; the caller closes each. */
  maps(): BpfMap[] {
    return this.mapNames().map((name) => this.map(name));
  }

  /**
   * Closes the object and its own fds. Programs not attached, pinned or held by a handle are
   * unloaded. A second call does nothing.
   */
  close(): void {
    if (this.#handle < 0) return;
    native().objectClose(this.#handle);
    this.#handle = -1;
  }
}
