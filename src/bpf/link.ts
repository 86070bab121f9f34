/**
 * XdpLink: an XDP attachment held by a bpf_link (attach a program, pin it to outlive the process,
 * update it in place). Attachment lives here, not on Program: link.ts imports program.ts, not back.
 */
import type { XdpMode } from './api';
import { FdHandle } from './handle';
import { native } from './native';
import type { Program } from './program';

export class XdpLink extends FdHandle {
  readonly ifindex: number;
  readonly id: number;

  /** Wraps a link fd this process owns (close() closes it). */
  constructor(fd: number) {
    super(fd);
    try {
      const info = native().linkInfo(fd, `fd ${fd}`);
      this.ifindex = info.ifindex;
      this.id = info.id;
    } catch (err) {
      native().closeFd(fd);
      throw err;
    }
  }

  get label(): string {
    return `xdp link ${this.id} (ifindex ${this.ifindex})`;
  }

  /**
   * Attaches the XDP program `prog` to `ifname` (in the calling thread's netns) through a
   * bpf_link.
   * @throws BpfError ENODEV for a missing interface, EBUSY when one is attached already,
   *   EOPNOTSUPP when the driver has no native XDP.
   */
  static attach(prog: Program, ifname: string, mode: XdpMode): XdpLink {
    const ifindex = native().ifNameToIndex(ifname);
    return new XdpLink(native().xdpLinkCreate(prog.fd, ifindex, mode, ifname));
  }

  /**
   * Opens a link pinned on bpffs.
   * @throws BpfError ENOENT when nothing is pinned there.
   */
  static fromPin(pinPath: string): XdpLink {
    return new XdpLink(native().objGet(pinPath, 'link'));
  }

  /**
   * Opens a link by its kernel id (see listLinks() for the XDP links of the host).
   * @throws BpfError ENOENT when no link has that id.
   */
  static fromId(id: number): XdpLink {
    return new XdpLink(native().linkFdFromId(id));
  }

  /** The attached program's id (changes after update()). @throws BpfError */
  progId(): number {
    return native().linkInfo(this.fd, this.label).progId;
  }

  /**
   * Pins the link: the program stays attached after this process closes its fd or exits.
   * @throws BpfError EEXIST when the path is taken.
   */
  pin(pinPath: string): void {
    native().objPin(this.fd, pinPath, 'link');
  }

  /**
   * Replaces the attached program atomically.
   * @throws BpfError EINVAL for a program of another type, ENOLINK after detach().
   */
  update(prog: Program): void {
    native().linkUpdate(this.fd, prog.fd, this.label);
  }

  /**
   * Detaches the program from the interface (even when the link is pinned); the fd stays open
   * until close().
   * @throws BpfError
   */
  detach(): void {
    native().linkDetach(this.fd, this.label);
  }
}
