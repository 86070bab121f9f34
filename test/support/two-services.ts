/**
 * The data-plane state of the kernel tests under src/dataplane: a UDP NAT service with two
 * backends (weights 1 and 3, table of 251 slots) and a TCP DSR service with one (13 slots),
 * every packet sampled.
 */
import type { DataplaneState } from '../../src/dataplane/types';

export function twoServicesState(): DataplaneState {
  return {
    services: [
      {
        name: 'dns', vip: '198.18.100.1', port: 53, protocol: 'udp', mode: 'nat', tableSize: 251,
        backends: [
          { address: '198.18.1.2', port: 5353, weight: 1, healthy: true, draining: false },
          { address: '198.18.1.3', port: 5353, weight: 3, healthy: true, draining: false },
        ],
      },
      {
        name: 'web', vip: '198.18.100.2', port: 80, protocol: 'tcp', mode: 'dsr', tableSize: 13,
        backends: [{ address: '198.18.1.4', port: 0, weight: 1, healthy: true, draining: false }],
      },
    ],
    settings: { fragPolicy: 'drop', sampleRate: 1, flowCache: true },
  };
}
