import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ERRORS, XdplbError, codeForStatus, type ErrorCode } from './errors';

test('every catalogue key equals its code, and the catalogue is frozen', () => {
  for (const [key, entry] of Object.entries(ERRORS)) {
    assert.equal(entry.code, key);
    assert.match(key, /^XDPLB_ERR_[A-Z_]+$/);
    assert.ok(entry.message.length > 0);
    assert.ok(Object.isFrozen(entry));
  }
  assert.ok(Object.isFrozen(ERRORS));
});

test('every status is right', () => {
  const expected: Record<ErrorCode, number> = {
    XDPLB_ERR_VALIDATION: 400, XDPLB_ERR_UNAUTHENTICATED: 401, XDPLB_ERR_FORBIDDEN: 403,
    XDPLB_ERR_NOT_FOUND: 404, XDPLB_ERR_METHOD_NOT_ALLOWED: 405, XDPLB_ERR_CONFLICT: 409,
    XDPLB_ERR_PAYLOAD_TOO_LARGE: 413, XDPLB_ERR_UNSUPPORTED_MEDIA_TYPE: 415, XDPLB_ERR_RATE_LIMITED: 429,
    XDPLB_ERR_CONFIG_FILE: 500, XDPLB_ERR_DATAPLANE: 500, XDPLB_ERR_INTERNAL: 500, XDPLB_ERR_UNAVAILABLE: 503,
    XDPLB_ERR_BAD_REQUEST: 400, XDPLB_ERR_REQUEST_TIMEOUT: 408, XDPLB_ERR_URI_TOO_LONG: 414, XDPLB_ERR_UPGRADE_REQUIRED: 426, XDPLB_ERR_HEADERS_TOO_LARGE: 431, XDPLB_ERR_STORAGE: 507,
  };
  assert.deepEqual(Object.fromEntries(Object.entries(ERRORS).map(([k, v]) => [k, v.statusCode])), expected);
});

test('XdplbError carries code, status, field and serialises to the API body', () => {
  const error = new XdplbError('XDPLB_ERR_CONFLICT', '/vip: taken', '/vip');
  assert.ok(error instanceof Error);
  assert.equal(error.statusCode, 409);
  assert.deepEqual(error.toJSON(), { error: { code: 'XDPLB_ERR_CONFLICT', message: '/vip: taken', field: '/vip' } });
  assert.deepEqual(new XdplbError('XDPLB_ERR_NOT_FOUND').toJSON(), { error: { code: 'XDPLB_ERR_NOT_FOUND', message: 'not found' } });
});

test('codeForStatus maps foreign HTTP errors into the catalogue', () => {
  assert.equal(codeForStatus(404), 'XDPLB_ERR_NOT_FOUND');
  assert.equal(codeForStatus(413), 'XDPLB_ERR_PAYLOAD_TOO_LARGE');
  assert.equal(codeForStatus(418), 'XDPLB_ERR_VALIDATION');
  assert.equal(codeForStatus(500), 'XDPLB_ERR_INTERNAL');
  assert.equal(codeForStatus(502), 'XDPLB_ERR_INTERNAL');
});
