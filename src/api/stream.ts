/**
 * The live stream: GET /api/v1/stream upgraded to a WebSocket that forwards the controller's
 * messages as JSON text frames. Auth happens before the upgrade (server.ts onRequest hook),
 * with ?token= because browsers cannot set headers on WebSockets.
 */
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import type { Controller, StreamMessage } from './controller';
import type { ApiMetrics } from './metrics';
import { XdplbError } from './errors';

export interface StreamOptions {
  /** Ping every this many ms; a client that has not answered the previous ping is dropped. Default 15000. */
  pingIntervalMs?: number;
  /** A client whose unsent data exceeds this many bytes is dropped rather than buffered. Default 4 MiB. */
  maxBufferedBytes?: number;
}

const OPEN = 1;

/** Each message is encoded once however many clients receive it. */
const encoded = new WeakMap<StreamMessage, string>();
function encode(msg: StreamMessage): string {
  let text = encoded.get(msg);
  if (text === undefined) {
    text = JSON.stringify(msg);
    encoded.set(msg, text);
  }
  return text;
}

/** Registers the stream route on `app` (which must have @fastify/websocket registered). */
export function registerStream(app: FastifyInstance, controller: Controller, metrics: ApiMetrics, options: StreamOptions = {}): void {
  const pingIntervalMs = options.pingIntervalMs ?? 15_000;
  const maxBufferedBytes = options.maxBufferedBytes ?? 4 * 1024 * 1024;

  app.route({
    method: 'GET',
    url: '/api/v1/stream',
    config: { access: 'read', queryToken: true },
    schema: {
      summary: 'Live stream (WebSocket): stats every second, kernel trace events, health transitions, state changes',
      hide: true,
      querystring: { type: 'object', properties: { token: { type: 'string', maxLength: 1024 } }, additionalProperties: false },
    },
    // A plain HTTP request (no Upgrade) gets a catalogue error, not an empty 404.
    handler: async (request) => {
      throw new XdplbError('XDPLB_ERR_UPGRADE_REQUIRED', `(headers): ${request.url.split('?')[0]} is a WebSocket: connect with "Upgrade: websocket"`);
    },
    wsHandler: (socket: WebSocket, request) => {
    metrics.streamClients.inc();
    let answered = true;
    let closed = false;

    const drop = (reason: string) => {
      if (closed) return;
      request.log.warn({ reason }, 'stream client dropped');
      socket.terminate();
    };
    const send = (msg: StreamMessage) => {
      if (closed || socket.readyState !== OPEN) return;
      // A client that does not read must not make us buffer without bound.
      if (socket.bufferedAmount > maxBufferedBytes) return drop(`more than ${maxBufferedBytes} bytes unsent`);
      socket.send(encode(msg));
    };

    const unsubscribe = controller.subscribe(send);
    const ping = setInterval(() => {
      if (!answered) return drop('no pong to the last ping');
      answered = false;
      socket.ping();
    }, pingIntervalMs);
    ping.unref();

    socket.on('pong', () => { answered = true; });
    socket.on('message', () => { /* the stream is one-way; client frames are ignored */ });
    socket.on('error', (err) => request.log.debug({ err: err.message }, 'stream socket error'));
    socket.on('close', () => {
      closed = true;
      clearInterval(ping);
      unsubscribe();
      metrics.streamClients.dec();
    });

    // Start with the current state so a new client needs no separate fetch.
    try {
      send({ type: 'state', data: { services: controller.listServices() } });
    } catch (err) {
      request.log.error({ err }, 'stream: could not list services');
    }
    },
  });
}
