/**
 * Configurations that validate but will not work as meant, found at start and on reload and
 * logged as warnings (refusing them would be wrong: the kernel side may learn to handle them).
 */
import type { ServiceSpec } from '../api/controller';

/**
 * NAT services whose health check probes a backend on the port its NAT replies come from:
 * the XDP program's stateless reverse NAT takes the probe's answers (backend:port -> lb) for
 * client replies and rewrites them, so the check fails although the backend is fine.
 * Returns one "service backend" line per clash.
 */
export function healthChecksHitByReverseNat(services: readonly ServiceSpec[]): string[] {
  const clashes: string[] = [];
  for (const s of services) {
    if (s.mode !== 'nat' || !s.healthCheck) continue;
    for (const b of s.backends) {
      const replyPort = b.port || s.port;
      const probePort = s.healthCheck.port ?? replyPort;
      if (replyPort !== 0 && probePort === replyPort) clashes.push(`${s.name} ${b.address}:${replyPort}`);
    }
  }
  return clashes;
}
