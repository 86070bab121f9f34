import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdplbError } from '../api/errors';
import { MAX_JSON_DEPTH, parseStrictJson } from './json';

function refused(text: string, field: string, reason: RegExp): void {
  assert.throws(() => parseStrictJson(text, { label: '(body)' }), (e: XdplbError) => {
    assert.ok(e instanceof XdplbError);
    assert.equal(e.code, 'XDPLB_ERR_VALIDATION');
    assert.equal(e.field, field, e.message);
    assert.match(e.message, reason);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
}

describe('parseStrictJson', () => {
  test('valid JSON parses as JSON.parse does, whatever the strings contain', () => {
    const texts = [
      '{}', '[]', '1', '"x"', 'null', ' {"a": [1, {"b": 2}, {"b": 3}], "c": {"b": 4}} ',
      '{"a": "\\"b\\": 1, \\"a\\": {", "b": "} ] [ {"}', '{"k\\u0061": 1, "ka2": 2}', '[{"a": 1}, {"a": 2}]',
      '{"a": {"x": 1}, "b": {"x": 2}}', '{"\\\\": 1, "\\\\\\\\": 2}',
    ];
    for (const text of texts) assert.deepEqual(parseStrictJson(text), JSON.parse(text), text);
  });

  test('a duplicate key at any depth is refused naming its pointer', () => {
    refused('{"name": "a", "name": "b"}', '/name', /^\/name: the key "name" appears twice in one object/);
    refused('{"backends": [{"address": "198.18.1.2", "port": 1}, {"port": 2, "address": "x", "port": 3}]}', '/backends/1/port', /^\/backends\/1\/port: the key "port" appears twice/);
    refused('{"healthCheck": {"type": "tcp", "x": {"a": [0, {"b": 1, "b": 2}]}}}', '/healthCheck/x/a/1/b', /appears twice/);
    // the same key after decoding escapes is the same key
    refused('{"name": 1, "n\\u0061me": 2}', '/name', /appears twice/);
    // pointer escaping (RFC 6901)
    refused('{"a/b": {"~": 1, "~": 2}}', '/a~1b/~0', /appears twice/);
  });

  test('nesting deeper than the limit is refused without exhausting the stack', () => {
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    assert.deepEqual(parseStrictJson(deep(MAX_JSON_DEPTH)), JSON.parse(deep(MAX_JSON_DEPTH)));
    refused(deep(MAX_JSON_DEPTH + 1), '/0'.repeat(MAX_JSON_DEPTH), new RegExp(`nested deeper than ${MAX_JSON_DEPTH} levels`));
    refused(deep(1_000_000), '/0'.repeat(MAX_JSON_DEPTH), /nested deeper/);
    refused('{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000), '/a'.repeat(MAX_JSON_DEPTH), /nested deeper/);
  });

  test('prototype keys and invalid JSON', () => {
    refused('{"__proto__": {"x": 1}}', '/__proto__', /the key "__proto__" is not allowed/);
    refused('{"a": [{"constructor": 1}]}', '/a/0/constructor', /not allowed/);
    refused('{"a": 1,}', '', /^\(body\): not valid JSON/);
    refused('{"a": 1', '', /^\(body\): not valid JSON/);
  });
});
