/** btfStructLayout: a struct's layout as the compiler emitted it into an object's BTF. */
import { native } from './native';

export interface StructMember {
  name: string;
  /** Byte offset in the struct. */
  offset: number;
  /** Bytes (resolved through typedefs, arrays included). */
  size: number;
  /** Set for bitfields only. */
  bitSize?: number;
}
export interface StructLayout { size: number; members: StructMember[] }

/**
 * Reads `struct structName` from the BTF of `objectPath`, so codecs can be checked against it.
 * @throws BpfError ENOENT when the file or the struct is missing (op 'btf parse' / 'btf struct layout').
 */
export function btfStructLayout(objectPath: string, structName: string): StructLayout {
  return native().btfStructLayout(objectPath, structName);
}
