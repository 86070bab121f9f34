/**
 * The live stream: GET /api/v1/stream upgraded to a WebSocket that forwards the controller's
 * messages as JSON text frames. Auth happens before the upgrade (server.ts onRequest hook),
 * with ?token= because browsers cannot set headers on WebSockets. A stream lives no longer than
 * its credential: it closes (1008) as soon as the session or token is revoked (onRevoke) and
 * within a second of the session expiring.
 */
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import type { Controller, StreamMessage } from '../domain/types';
import type { ApiMetrics } from './metrics';
import { XdplbError } from '../domain/errors';
import type { AuthStore } from './auth';

export interface StreamOptions {
  /** Ping every this many ms; a client that has not answered the previous ping is dropped. Default 15000. */
  pingIntervalMs?: number;
  /** A client whose unsent data exceeds this many bytes is dropped rather than buffered. Default 4 MiB. */
  maxBufferedBytes?: number;
}

/** How often a stream re-checks that its session has not expired. */
const CREDENTIAL_CHECK_MS = 1000;

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
export function registerStream(app: FastifyInstance, controller: Controller, metrics: ApiMetrics, options: StreamOptions = {}, auth?: AuthStore): void {
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

    // The credential (its key, set by server.ts) must stay valid for as long as the stream is open.
    const key = request.credentialKey;
    const checkCredential = () => {
      if (closed || !auth || key === null || auth.isCurrent(key)) return;
      closed = true;
      request.log.info('stream closed: its session or token was revoked or expired');
      socket.close(1008, 'session ended');
      // A client that does not answer the closing handshake is cut off.
      setTimeout(() => socket.terminate(), 1000).unref();
    };
    const stopRevokeWatch = auth?.onRevoke(checkCredential) ?? (() => {});
    const credentialCheck = setInterval(checkCredential, CREDENTIAL_CHECK_MS);
    credentialCheck.unref();

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
      clearInterval(credentialCheck);
      stopRevokeWatch();
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
