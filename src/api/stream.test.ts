import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
import type { FastifyInstance } from 'fastify';
import { AuthStore } from './auth';
import type { StreamMessage } from '../domain/types';
import { MemoryController } from './memory-controller';
import { createApiServer } from './server';

const WEB = { name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', backends: [{ address: '198.18.1.2', port: 8080 }] };

/** Resolves with the next message, or rejects after `ms`. */
function nextMessage(ws: WebSocket, ms = 3000): Promise<StreamMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.off('message', onMessage); reject(new Error(`no message within ${ms} ms`)); }, ms);
    const onMessage = (data: WebSocket.RawData, isBinary: boolean) => {
      clearTimeout(timer);
      assert.equal(isBinary, false, 'JSON text frames');
      resolve(JSON.parse(data.toString()) as StreamMessage);
    };
    ws.once('message', onMessage);
  });
}

/** Resolves when the socket closes, or rejects after `ms`. */
function closed(ws: WebSocket, ms = 5000): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    ws.once('close', () => { clearTimeout(timer); resolve(); });
  });
}

async function waitFor(condition: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('live stream (/api/v1/stream)', () => {
  const controller = new MemoryController({ services: [WEB] });
  const auth = new AuthStore([{ name: 'viewer', role: 'viewer', password: 'viewer-pass' }], []);
  let app: FastifyInstance;
  let base: string;
  let token: string;
  const sockets: WebSocket[] = [];
  const open = (query: string, options: WebSocket.ClientOptions = {}) => {
    const ws = new WebSocket(`${base}/api/v1/stream${query}`, options);
    ws.on('error', () => { /* asserted through events below */ });
    sockets.push(ws);
    return ws;
  };

  before(async () => {
    app = createApiServer(controller, { auth, stream: { pingIntervalMs: 100, maxBufferedBytes: 256 * 1024 } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address() as { port: number };
    base = `ws://127.0.0.1:${address.port}`;
    token = (await auth.login('viewer', 'viewer-pass')).token;
  });
  after(async () => {
    for (const ws of sockets) ws.terminate();
    await app.close();
  });

  test('delivers the current state, then what the controller pushes; unsubscribes on close', async () => {
    const ws = open(`?token=${token}`);
    const first = nextMessage(ws);
    await once(ws, 'open');
    const state = await first;
    assert.equal(state.type, 'state');
    assert.deepEqual(state.type === 'state' && state.data.services.map((s) => s.name), ['web']);
    assert.equal(controller.subscriberCount(), 1);

    const pushed: StreamMessage = { type: 'health', data: { service: 'web', backend: '198.18.1.2:8080', health: 'down' } };
    const received = nextMessage(ws);
    controller.publish(pushed);
    assert.deepEqual(await received, pushed);

    const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${token}` } });
    assert.match(metrics.body, /^xdplb_stream_clients 1$/m);

    ws.close();
    await closed(ws);
    await waitFor(() => controller.subscriberCount() === 0);
  });

  test('a bearer header works too (for non-browser clients)', async () => {
    const ws = open('', { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await nextMessage(ws)).type, 'state');
    ws.close();
    await closed(ws);
  });

  test('a missing or wrong token is refused before the upgrade (401)', async () => {
    for (const query of ['', '?token=deadbeef']) {
      const ws = open(query);
      const [, response] = await once(ws, 'unexpected-response') as [unknown, { statusCode: number }];
      assert.equal(response.statusCode, 401);
      ws.terminate();
    }
    assert.equal(controller.subscriberCount(), 0);
  });

  test('a client that stops answering pings is dropped', async () => {
    const ws = open(`?token=${token}`, { autoPong: false });
    await once(ws, 'open');
    await closed(ws, 3000);
    await waitFor(() => controller.subscriberCount() === 0);
  });

  test('a client that stops reading is dropped rather than buffered without bound', async () => {
    const ws = open(`?token=${token}`);
    await nextMessage(ws);
    // Stop reading: the kernel buffers fill, then the server's send queue grows past the limit.
    (ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const big: StreamMessage = { type: 'state', data: { services: [{ ...controller.listServices()[0], name: 'x'.repeat(256 * 1024) }] } };
    let sent = 0;
    while (controller.subscriberCount() > 0 && sent < 400) {   // at most ~100 MB, normally far less
      controller.publish(big);
      sent++;
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(controller.subscriberCount(), 0, `still subscribed after ${sent} messages`);
    ws.terminate();
  });
});
