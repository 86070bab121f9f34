/** The state routes over the real controller (MemoryDriver for the kernel): access, dry run, body limit. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { createApiServer } from './server';
import { AuthStore } from './auth';
import { DaemonController } from '../daemon/controller';
import { MemoryDriver } from '../daemon/memory-driver';
import { HealthMonitor } from '../health/monitor';
import { DesiredState } from '../config/state';
import type { StateApplyResult, StateDocument } from '../domain/types';

const ADMIN = 'state-routes-admin-token-0123456789';
const VIEWER = 'state-routes-viewer-token-0123456789';

describe('/api/v1/state', () => {
  test('GET for viewers, PUT (dry run or not) and PATCH /backends for admins; the state body may exceed 1 MiB', async () => {
    const driver = new MemoryDriver();
    const web = { name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp' as const, mode: 'nat' as const, tableSize: 13,
      backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }, { address: '198.18.1.12', port: 8080, weight: 1 }] };
    const controller = new DaemonController({ state: new DesiredState({ services: [web] }), driver, health: new HealthMonitor(),
      logger: pino({ level: 'silent' }), persist: null });
    await controller.start();
    const app = createApiServer(controller, { auth: new AuthStore([], [{ name: 'a', role: 'admin', token: ADMIN }, { name: 'v', role: 'viewer', token: VIEWER }]) });
    const call = (method: 'GET' | 'PUT' | 'PATCH', url: string, token: string, payload?: unknown) =>
      app.inject({ method, url, headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}) },
        ...(payload !== undefined ? { payload: typeof payload === 'string' ? payload : JSON.stringify(payload) } : {}) });
    try {
      const got = await call('GET', '/api/v1/state', VIEWER);
      assert.equal(got.statusCode, 200);
      const doc = got.json() as StateDocument;
      assert.deepEqual(doc.services.map((s) => s.name), ['web']);
      assert.equal((await call('PUT', '/api/v1/state?dryRun=1', VIEWER, doc)).statusCode, 403);

      const next = { services: [{ ...web, backends: [web.backends[0]] }] };
      const applies = driver.applyCount;
      const dry = await call('PUT', '/api/v1/state?dryRun=1', ADMIN, next);
      assert.equal(dry.statusCode, 200, dry.body);
      const d = dry.json() as StateApplyResult;
      assert.deepEqual(d.diff.changed[0].backends.removed, ['198.18.1.12:8080']);
      assert.ok(d.disruption[0].moved! > 0 && d.disruption[0].moved! <= 1);
      assert.equal(driver.applyCount, applies);
      assert.equal((await call('PUT', '/api/v1/state?dryRun=yes', ADMIN, next)).statusCode, 400, 'dryRun is 0/1/true/false');

      const bulk = await call('PATCH', '/api/v1/state/backends', ADMIN, { changes: [
        { service: 'web', backend: '198.18.1.11:8080', drain: true }, { service: 'web', backend: '198.18.1.12:8080', weight: 3 }] });
      assert.equal(bulk.statusCode, 200, bulk.body);
      assert.equal(driver.applyCount, applies + 1, 'one change');
      assert.deepEqual(controller.getService('web').backends.map((b) => [b.draining, b.weight]), [[true, 1], [false, 3]]);
      assert.equal((await call('PATCH', '/api/v1/state/backends', ADMIN, { changes: [{ service: 'web', backend: '198.18.1.11:8080' }] })).statusCode, 400,
        'a change without weight or drain');
      // A weight the route takes but a backend cannot have: the change that has it is named, nothing changes.
      const heavy = await call('PATCH', '/api/v1/state/backends', ADMIN, { changes: [
        { service: 'web', backend: '198.18.1.12:8080', drain: true }, { service: 'web', backend: '198.18.1.11:8080', weight: 100_000 }] });
      assert.equal(heavy.statusCode, 400, heavy.body);
      assert.equal((heavy.json() as { error: { field?: string } }).error.field, '/changes/1/weight', heavy.body);
      assert.equal(driver.applyCount, applies + 1, 'nothing applied');
      assert.deepEqual(controller.getService('web').backends.map((b) => [b.draining, b.weight]), [[true, 1], [false, 3]]);

      // 2 MiB: refused by size everywhere else, read (and judged on its content) here.
      const padded = JSON.stringify({ services: [{ ...web, name: 'x'.repeat(2 * 1024 * 1024) }] });
      const big = await call('PUT', '/api/v1/state?dryRun=1', ADMIN, padded);
      assert.equal(big.statusCode, 400, big.body);
      assert.match(big.body, /XDPLB_ERR_VALIDATION/);
      assert.equal((await call('PATCH', '/api/v1/state/backends', ADMIN, padded)).statusCode, 413);
    } finally {
      controller.stop();
      await app.close();
    }
  });
});
