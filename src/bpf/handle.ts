/** FdHandle: a kernel object reached through one file descriptor this process owns. */
import { native } from './native';
import { bpfError } from './errors';

export abstract class FdHandle {
  #fd: number;

  /** Takes ownership of `fd`: close() closes it. */
  protected constructor(fd: number) {
    this.#fd = fd;
  }

  /** What error messages call this handle, e.g. "map 'services'". */
  abstract get label(): string;

  /**
   * The descriptor.
   * @throws BpfError EBADF after close().
   */
  get fd(): number {
    if (this.#fd < 0) throw bpfError('use', this.label, 'EBADF', 'the handle was closed');
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Closes the descriptor; a second call does nothing. */
  close(): void {
    if (this.#fd < 0) return;
    native().closeFd(this.#fd);
    this.#fd = -1;
  }
}
