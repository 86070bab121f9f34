/**
 * Server-Timing of changes (src/api/timing.ts, src/domain/timing.ts): the daemon's steps of one
 * change reach the answer, over the real controller (MemoryDriver for the kernel, which marks
 * nothing itself: the kernel driver's build/maps steps are covered by `xdplb bench control`).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { createApiServer } from './server';
import { AuthStore } from './auth';
import { DaemonController } from '../daemon/controller';
import { MemoryDriver } from '../daemon/memory-driver';
import { HealthMonitor } from '../health/monitor';
import { DesiredState } from '../config/state';
import { ChangeTimer, parseServerTiming, changeTimers } from '../domain/timing';

const TOKEN = 'timing-test-admin-token-0123456789';

describe('Server-Timing of changes', () => {
  test('a change answers with its steps (queue, validate, persist, commit, respond...) and its arrival; a read has none', async () => {
    const driver = new MemoryDriver();
    const apply = driver.applyState.bind(driver);
    // Stands in for the kernel driver: marks build and maps as it does.
    driver.applyState = (state) => {
      const t = changeTimers.getStore();
      const r = apply(state);
      t?.split('build', 0, 'maps');
      t?.inKernel();
      return r;
    };
    const controller = new DaemonController({
      state: new DesiredState({ services: [{ name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 13,
        backends: [{ address: '198.18.1.11', port: 8080, weight: 1 }] }] }),
      driver, health: new HealthMonitor(), logger: pino({ level: 'silent' }),
      persist: () => ({ commit: () => undefined, abort: () => undefined }),
    });
    await controller.start();
    const app = createApiServer(controller, { auth: new AuthStore([], [{ name: 'ci', role: 'admin', token: TOKEN }]) });
    try {
      const before = performance.timeOrigin + performance.now();
      const res = await app.inject({ method: 'PATCH', url: '/api/v1/services/web/backends/198.18.1.11:8080',
        headers: { authorization: `Bearer ${TOKEN}` }, payload: { drain: true } });
      assert.equal(res.statusCode, 200, res.body);
      const timing = parseServerTiming(String(res.headers['server-timing']));
      for (const step of ['http', 'queue', 'validate', 'persist', 'build', 'maps', 'commit', 'respond'] as const) {
        assert.ok(typeof timing.steps[step] === 'number' && timing.steps[step]! >= 0, `${step} in ${res.headers['server-timing']}`);
      }
      assert.ok(timing.kernelMs !== null && timing.kernelMs >= 0);
      assert.ok(timing.arrivalEpochMs !== null && timing.arrivalEpochMs >= before - 1 && timing.arrivalEpochMs <= performance.timeOrigin + performance.now());
      const read = await app.inject({ method: 'GET', url: '/api/v1/services', headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(read.headers['server-timing'], undefined);
      const refused = await app.inject({ method: 'PATCH', url: '/api/v1/services/web/backends/198.18.1.99:8080',
        headers: { authorization: `Bearer ${TOKEN}` }, payload: { drain: true } });
      assert.equal(refused.statusCode, 404);
      assert.ok(!('persist' in parseServerTiming(String(refused.headers['server-timing'])).steps), 'a refused change wrote nothing');
    } finally {
      controller.stop();
      await app.close();
    }
  });

  test('ChangeTimer: marks add up to the elapsed time; the header parses back', () => {
    const t = new ChangeTimer(100);
    t.mark('http', 101.5);
    t.mark('queue', 102);
    t.split('build', 2, 'maps', 107);
    t.inKernel(107);
    t.mark('respond', 108);
    const parsed = parseServerTiming(t.header());
    assert.deepEqual(parsed.steps, { http: 1.5, queue: 0.5, build: 2, maps: 3, respond: 1 });
    assert.equal(parsed.kernelMs, 7);
    assert.equal(Math.round(parsed.arrivalEpochMs!), Math.round(performance.timeOrigin + 100));
  });
});
