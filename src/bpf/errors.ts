/**
 * BpfError: every failure of the libbpf bridge. The message names the operation, the object
 * (path, map, interface), the errno name and strerror, and a hint where one helps.
 */
export interface BpfErrorFields {
  message: string;
  op: string;
  errno: number;
  code: string;
  hint?: string;
  verifierLog?: string;
}

export class BpfError extends Error {
  /** What was being done: 'object load', 'map lookup', 'xdp attach (native)', ... */
  readonly op: string;
  /** Positive errno (or a LIBBPF_ERRNO__* value, 4000+). */
  readonly errno: number;
  /** Errno name: 'ENOENT', 'EPERM', ... */
  readonly code: string;
  readonly hint?: string;
  /** The verifier's log when a program load was refused. */
  readonly verifierLog?: string;

  constructor(fields: BpfErrorFields) {
    super(fields.message);
    this.name = 'BpfError';
    this.op = fields.op;
    this.errno = fields.errno;
    this.code = fields.code;
    if (fields.hint !== undefined) this.hint = fields.hint;
    if (fields.verifierLog !== undefined) this.verifierLog = fields.verifierLog;
  }
}

/** A BpfError raised in TypeScript before any syscall (bad sizes, closed handles, unknown names). */
export function bpfError(op: string, object: string, code: 'EINVAL' | 'EBADF' | 'ENOENT', detail: string): BpfError {
  const errnos = { EINVAL: 22, EBADF: 9, ENOENT: 2 } as const;
  return new BpfError({
    message: `${op} ${object}: ${code} (${detail})`,
    op,
    errno: errnos[code],
    code,
    hint: detail,
  });
}
