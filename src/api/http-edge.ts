/**
 * The HTTP edge of the API server (src/api/server.ts): what fastify, its router and Node's
 * HTTP parser refuse before a route runs, mapped into the error catalogue with a message that
 * names the part of the request at fault; strict JSON bodies; the bounded drain that lets a
 * client see its 413.
 */
import * as http from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyRequest } from 'fastify';
import { XdplbError } from '../domain/errors';
import { parseStrictJson } from '../config/json';

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** A fastify or router error (FST_ERR_*) as a catalogue error, or undefined when not one of these. */
export function catalogueErrorFor(e: { code?: string }, request?: FastifyRequest): XdplbError | undefined {
  const contentType = request?.headers['content-type'];
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new XdplbError('XDPLB_ERR_PAYLOAD_TOO_LARGE', `(body): larger than the ${request?.routeOptions.bodyLimit ?? 'allowed'} bytes this server accepts`, '');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new XdplbError('XDPLB_ERR_UNSUPPORTED_MEDIA_TYPE', `content-type: ${contentType ? `"${String(contentType).slice(0, 100)}"` : 'missing'} is not supported; send application/json`);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new XdplbError('XDPLB_ERR_VALIDATION', 'content-length: does not match the length of the body', '');
    case 'FST_ERR_BAD_URL':
      return new XdplbError('XDPLB_ERR_VALIDATION', `(path): ${request?.url.split('?')[0].slice(0, 200) ?? 'the URL'} is not a valid URL (bad percent-encoding)`, '');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new XdplbError('XDPLB_ERR_URI_TOO_LONG', `(path): a path parameter is longer than ${MAX_PARAM_LENGTH} characters`);
  }
  return undefined;
}

/**
 * The application/json body parser: JSON is UTF-8 (RFC 8259), so another charset or bytes that
 * are not UTF-8 are refused rather than decoded into replacement characters; an empty body is
 * "no body" (e.g. POST /logout from a client that always sends the header); the rest is
 * parseStrictJson (duplicate keys, deep nesting, prototype keys refused with a pointer).
 */
export function parseJsonBody(request: FastifyRequest, body: Buffer | string, done: (err: Error | null, body?: unknown) => void): void {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(String(request.headers['content-type']))?.[1];
  if (charset && !/^utf-?8$/i.test(charset)) {
    return done(new XdplbError('XDPLB_ERR_UNSUPPORTED_MEDIA_TYPE', `content-type: charset "${charset.slice(0, 40)}" is not supported; JSON is UTF-8`), undefined);
  }
  let text: string;
  try {
    text = UTF8.decode(body as Buffer);
  } catch {
    return done(new XdplbError('XDPLB_ERR_VALIDATION', '(body): not valid UTF-8', ''), undefined);
  }
  if (text.trim() === '') return done(null, undefined);
  try {
    done(null, parseStrictJson(text, { label: '(body)' }));
  } catch (err) {
    done(err as Error, undefined);
  }
}

/** Longest path parameter the router matches (Node refuses request heads over 16 KiB anyway). */
export const MAX_PARAM_LENGTH = 16 * 1024;
/** How much of a refused (413) body is read and discarded, and for how long, before answering anyway. */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;
const DRAIN_MAX_MS = 10_000;

/**
 * Reads and discards the rest of a request body that was refused as too large; resolves when
 * it has all arrived (or past DRAIN_MAX_BYTES / DRAIN_MAX_MS). Answering first and closing the
 * socket with unread data would reset the connection, and the client (still sending) would
 * never see the 413: that is what a chunked body over the limit used to get.
 */
export function drainRejectedBody(request: FastifyRequest): Promise<void> {
  const raw = request.raw;
  if (raw.complete || raw.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    let drained = 0;
    const done = () => {
      clearTimeout(timer);
      raw.removeListener('data', onData);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > DRAIN_MAX_BYTES) done();
    };
    const timer = setTimeout(done, DRAIN_MAX_MS);
    raw.on('data', onData);
    raw.once('end', done);
    raw.once('close', done);
    raw.once('error', done);
    raw.resume();
  });
}

/**
 * The stream's ?token= (auth runs before the query is validated): a repeated token arrives as
 * an array, which would otherwise reach the token check (500).
 */
export function queryToken(request: FastifyRequest): string | null {
  const token = (request.query as { token?: unknown } | undefined)?.token;
  if (Array.isArray(token)) throw new XdplbError('XDPLB_ERR_VALIDATION', 'querystring /token: is given more than once', '/token');
  return typeof token === 'string' ? token : null;
}

/** Node's HTTP parser errors (before any route runs), answered from the catalogue. */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const mapped = error.code === 'HPE_HEADER_OVERFLOW'
    ? new XdplbError('XDPLB_ERR_HEADERS_TOO_LARGE', `(headers): the request line and headers exceed the ${Math.round(http.maxHeaderSize / 1024)} KiB this server accepts`)
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? new XdplbError('XDPLB_ERR_REQUEST_TIMEOUT', '(request): not received in full in time')
      : new XdplbError('XDPLB_ERR_BAD_REQUEST', `(request): malformed HTTP request (${String(error.code ?? 'parse error')})`);
  const body = JSON.stringify(mapped.toJSON());
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${mapped.statusCode} ${http.STATUS_CODES[mapped.statusCode] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  } else {
    socket.destroy();
  }
}
