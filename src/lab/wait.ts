/** Polling until a condition holds, bounded in time: the lab's tests and benchmarks share it. */

/**
 * Polls `pred` every `stepMs` until it returns true.
 * @returns the milliseconds it took
 * @throws Error naming `what` (and `context()`, e.g. the state that was waited on) after `timeoutMs`
 */
export async function waitFor(what: string, timeoutMs: number, pred: () => boolean | Promise<boolean>,
  stepMs = 50, context?: () => string): Promise<number> {
  const t0 = Date.now();
  while (!(await pred())) {
    if (Date.now() - t0 > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${context ? ` (${context()})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return Date.now() - t0;
}
