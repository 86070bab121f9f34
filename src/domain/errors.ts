/**
 * The one error catalogue (as fastify's FST_ERR_*): every error the control plane reports has
 * a stable code, an HTTP status and a default message. The API's error handler maps them to
 * `{error: {code, message, field?}}`; the CLI prints the same code and message. It lives in
 * src/domain so that every layer (config, health, daemon, api, cli) may throw them.
 */

export interface CatalogueEntry { readonly code: string; readonly statusCode: number; readonly message: string }

function entry<C extends string>(code: C, statusCode: number, message: string) {
  return Object.freeze({ code, statusCode, message });
}

export const ERRORS = Object.freeze({
  XDPLB_ERR_VALIDATION: entry('XDPLB_ERR_VALIDATION', 400, 'invalid input'),
  XDPLB_ERR_UNAUTHENTICATED: entry('XDPLB_ERR_UNAUTHENTICATED', 401, 'authentication required'),
  XDPLB_ERR_FORBIDDEN: entry('XDPLB_ERR_FORBIDDEN', 403, 'this action needs the admin role'),
  XDPLB_ERR_NOT_FOUND: entry('XDPLB_ERR_NOT_FOUND', 404, 'not found'),
  XDPLB_ERR_METHOD_NOT_ALLOWED: entry('XDPLB_ERR_METHOD_NOT_ALLOWED', 405, 'method not allowed'),
  XDPLB_ERR_CONFLICT: entry('XDPLB_ERR_CONFLICT', 409, 'conflicts with the current state'),
  XDPLB_ERR_PAYLOAD_TOO_LARGE: entry('XDPLB_ERR_PAYLOAD_TOO_LARGE', 413, 'request body too large'),
  XDPLB_ERR_BAD_REQUEST: entry('XDPLB_ERR_BAD_REQUEST', 400, 'malformed HTTP request'),
  XDPLB_ERR_REQUEST_TIMEOUT: entry('XDPLB_ERR_REQUEST_TIMEOUT', 408, 'the request was not received in time'),
  XDPLB_ERR_URI_TOO_LONG: entry('XDPLB_ERR_URI_TOO_LONG', 414, 'the URL is too long'),
  XDPLB_ERR_UPGRADE_REQUIRED: entry('XDPLB_ERR_UPGRADE_REQUIRED', 426, 'this route is a WebSocket (Upgrade: websocket)'),
  XDPLB_ERR_HEADERS_TOO_LARGE: entry('XDPLB_ERR_HEADERS_TOO_LARGE', 431, 'request headers too large'),
  XDPLB_ERR_UNSUPPORTED_MEDIA_TYPE: entry('XDPLB_ERR_UNSUPPORTED_MEDIA_TYPE', 415, 'unsupported content type (use application/json)'),
  XDPLB_ERR_RATE_LIMITED: entry('XDPLB_ERR_RATE_LIMITED', 429, 'too many attempts; try again later'),
  XDPLB_ERR_CONFIG_FILE: entry('XDPLB_ERR_CONFIG_FILE', 500, 'the config file could not be read or written'),
  XDPLB_ERR_DATAPLANE: entry('XDPLB_ERR_DATAPLANE', 500, 'the kernel refused the change'),
  XDPLB_ERR_INTERNAL: entry('XDPLB_ERR_INTERNAL', 500, 'internal error'),
  XDPLB_ERR_UNAVAILABLE: entry('XDPLB_ERR_UNAVAILABLE', 503, 'the data plane is not ready'),
  XDPLB_ERR_STORAGE: entry('XDPLB_ERR_STORAGE', 507, 'the config file could not be written (disk full or read-only); nothing was changed'),
});

export type ErrorCode = keyof typeof ERRORS;

/** An error from the catalogue; `field` is a JSON pointer to the offending input, when there is one. */
export class XdplbError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly field?: string;

  constructor(code: ErrorCode, message?: string, field?: string, options?: { cause?: unknown }) {
    super(message ?? ERRORS[code].message, options);
    this.name = 'XdplbError';
    this.code = code;
    this.statusCode = ERRORS[code].statusCode;
    if (field !== undefined) this.field = field;
  }

  /** The API's JSON error body. */
  toJSON(): { error: { code: string; message: string; field?: string } } {
    return { error: { code: this.code, message: this.message, ...(this.field !== undefined ? { field: this.field } : {}) } };
  }
}

export function isXdplbError(value: unknown): value is XdplbError {
  return value instanceof XdplbError;
}

/** The catalogue code that belongs to an HTTP status, for errors that did not come from us. */
export function codeForStatus(statusCode: number): ErrorCode {
  const found = (Object.keys(ERRORS) as ErrorCode[]).find((code) => ERRORS[code].statusCode === statusCode && code !== 'XDPLB_ERR_CONFIG_FILE' && code !== 'XDPLB_ERR_DATAPLANE');
  if (found) return found;
  return statusCode >= 400 && statusCode < 500 ? 'XDPLB_ERR_VALIDATION' : 'XDPLB_ERR_INTERNAL';
}
