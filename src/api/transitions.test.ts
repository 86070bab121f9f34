/**
 * GET /api/v1/transitions(/:name) and the xdplb_service_moved_slots gauge over the real
 * DaemonController, with a driver whose data plane reports moved slots (the kernel's side is
 * test/transitions-api.test.ts): the configured services in order, zeros where the data plane
 * has none, a 404 for an unknown service, viewers may read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { AuthStore } from './auth';
import { createApiServer } from './server';
import { createMetrics } from './metrics';
import { MemoryController } from './memory-controller';
import { DaemonController } from '../daemon/controller';
import { MemoryDriver } from '../daemon/memory-driver';
import { DesiredState } from '../config/state';
import { HealthMonitor } from '../health/monitor';
import type { TransitionsView } from '../domain/types';

const VIEWER = 'viewer-token-0123456789abcdef';
const svc = (name: string, vip: string, net = 1) => ({ name, vip, port: 80, protocol: 'tcp' as const, mode: 'nat' as const, tableSize: 13,
  backends: [{ address: `198.18.${net}.11`, port: 8080, weight: 1 }, { address: `198.18.${net}.12`, port: 8080, weight: 1 }] });

class MovingDriver extends MemoryDriver {
  view: TransitionsView = {
    transitionSeconds: 5, nextSweepAt: 1_700_000_005_000, flowCache: true,
    services: [{ service: 'b', tableSize: 13, movedSlots: 6, movedShare: 6 / 13, seenSlots: 2, youngSlots: 6, since: 1_700_000_000_000 }],
  };
  transitions(): TransitionsView { return structuredClone(this.view); }
}

test('GET /api/v1/transitions: every configured service, the data plane\'s moved slots, the sweep schedule; /metrics gauges them', async () => {
  const driver = new MovingDriver();
  const controller = new DaemonController({ state: new DesiredState({ transitionSeconds: 5, services: [svc('a', '198.18.100.1'), svc('b', '198.18.100.2', 2)] }),
    driver, health: new HealthMonitor(), logger: pino({ level: 'silent' }), persist: null });
  await controller.start();
  const app = createApiServer(controller, { auth: new AuthStore([], [{ name: 'v', role: 'viewer', token: VIEWER }]) });
  const get = (url: string) => app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${VIEWER}` } });
  try {
    const all = await get('/api/v1/transitions');
    assert.equal(all.statusCode, 200, all.body);
    assert.deepEqual(all.json(), {
      transitionSeconds: 5, nextSweepAt: 1_700_000_005_000, flowCache: true,
      services: [
        { service: 'a', tableSize: 0, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null },
        { service: 'b', tableSize: 13, movedSlots: 6, movedShare: 6 / 13, seenSlots: 2, youngSlots: 6, since: 1_700_000_000_000 },
      ],
    });
    const one = await get('/api/v1/transitions/b');
    assert.equal(one.statusCode, 200);
    assert.deepEqual(one.json(), { transitionSeconds: 5, nextSweepAt: 1_700_000_005_000, flowCache: true,
      service: 'b', tableSize: 13, movedSlots: 6, movedShare: 6 / 13, seenSlots: 2, youngSlots: 6, since: 1_700_000_000_000 });
    const missing = await get('/api/v1/transitions/nope');
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'XDPLB_ERR_NOT_FOUND');
    assert.match(missing.json().error.message, /service "nope" does not exist/);
    assert.equal((await app.inject({ method: 'GET', url: '/api/v1/transitions' })).statusCode, 401);

    const text = await createMetrics(controller).render();
    assert.match(text, /^xdplb_service_moved_slots\{service="a"\} 0$/m);
    assert.match(text, /^xdplb_service_moved_slots\{service="b"\} 6$/m);
    driver.view.services = [];
    driver.view.nextSweepAt = null;
    assert.match(await createMetrics(controller).render(), /^xdplb_service_moved_slots\{service="b"\} 0$/m);
  } finally {
    await app.close();
    controller.stop();
  }
});

test('a controller without a data plane answers every service at rest', async () => {
  const controller = new MemoryController({ services: [svc('a', '198.18.100.1')] });
  const app = createApiServer(controller, { auth: new AuthStore([], [{ name: 'v', role: 'viewer', token: VIEWER }]) });
  try {
    const res = await app.inject({ method: 'GET', url: '/api/v1/transitions', headers: { authorization: `Bearer ${VIEWER}` } });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json().services, [{ service: 'a', tableSize: 13, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null }]);
    assert.equal(res.json().nextSweepAt, null);
  } finally {
    await app.close();
  }
});
