/** xdplb itself as a benchmark case (HTTP and forwarding), over the real Dataplane. */
import type { HttpLbCase } from './http';

/** xdplb in `mode` between the HTTP client and the three backends. */
export function xdplbHttpCase(mode: 'nat' | 'dsr'): HttpLbCase {
  return {
    name: `xdplb-${mode}`, label: `xdplb ${mode}`,
    async setUp() { throw new Error('xdplb data plane not available yet'); },
    async tearDown() { /* nothing */ },
    url: (t) => `http://${t.vip}:${t.port}/`,
  };
}
