/**
 * The revision an API client based a change on (`If-Match: <revision>`, the value of the
 * X-Xdplb-Revision header it read), carried from the request to the store's persist hook
 * through the async context (the controller's queue runs the change in the request's context).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export const requestRevision = new AsyncLocalStorage<number>();

/** "17", "\"17\"" or W/"17" -> 17; anything else null. */
export function parseIfMatch(value: string): number | null {
  const m = /^\s*(?:W\/)?"?([0-9]{1,15})"?\s*$/.exec(value);
  return m ? Number(m[1]) : null;
}
