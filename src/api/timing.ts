/**
 * Server-Timing for changes (src/domain/timing.ts): a timer starts at a write request's first
 * hook, the handler runs inside it (so the controller and the kernel driver mark their steps),
 * and the answer carries the steps. Reads are not timed.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ChangeTimer, changeTimers } from '../domain/timing';

const timers = new WeakMap<FastifyRequest, ChangeTimer>();

/** Adds the hooks to `api` (its routes and those registered under it). */
export function addChangeTiming(api: FastifyInstance): void {
  api.addHook('onRequest', (request, _reply, done) => {
    if (request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'OPTIONS') timers.set(request, new ChangeTimer());
    done();
  });
  api.addHook('preHandler', (request, _reply, done) => {
    const timer = timers.get(request);
    if (!timer) { done(); return; }
    timer.mark('http');
    // The handler (called from done) and everything it awaits run with the timer.
    changeTimers.run(timer, done);
  });
  api.addHook('onSend', (request, reply, payload, done) => {
    const timer = timers.get(request);
    if (timer) {
      timer.mark('respond');
      void reply.header('server-timing', timer.header());
    }
    done(null, payload);
  });
}
