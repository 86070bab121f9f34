import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { XdplbError } from '../domain/errors';
import { MAX_JSON_DEPTH, parseStrictJson, yamlNestingError } from './json';
import { parseConfigText } from './config';

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

describe('yamlNestingError (config files)', () => {
  test('ordinary YAML and JSON configs pass, whatever their strings hold', () => {
    const texts = [
      'services:\n  - name: web\n    backends: [{address: 198.18.1.2, port: 80}]\n    healthCheck: {type: http, expectStatus: [200, 399]}\n',
      '{"services": [{"name": "a", "backends": [{"address": "198.18.1.2", "port": 80}]}]}',
      `a: "${'['.repeat(100)}"\nb: '${'{'.repeat(100)}''${'['.repeat(100)}'\n# ${'['.repeat(100)}\nc: x#${'['.repeat(10)}`,
    ];
    for (const text of texts) assert.equal(yamlNestingError(text), null, text);
  });
  test('deep flow nesting and absurd indentation are refused with their position', () => {
    assert.deepEqual(yamlNestingError(`a:\n  b: ${'['.repeat(MAX_JSON_DEPTH + 1)}`), { line: 2, col: 6 + MAX_JSON_DEPTH, reason: `nested deeper than ${MAX_JSON_DEPTH} levels` });
    assert.match(yamlNestingError(`a: don't\n${'{"a":'.repeat(10_000)}`)?.reason ?? '', /nested deeper/, 'a quote inside a plain scalar hides nothing');
    assert.match(yamlNestingError(Array.from({ length: 600 }, (_, i) => `${' '.repeat(i)}a:`).join('\n'))?.reason ?? '', /indented deeper than 512 columns/);
  });
  test('the config loader refuses them as a validation error instead of crashing the process', () => {
    // 8000 nested flow maps used to abort node inside V8's regexp compiler (out of memory).
    for (const text of [`services: ${'['.repeat(100_000)}${']'.repeat(100_000)}`, `{"services": [{"healthCheck": ${'{"a":'.repeat(8000)}1${'}'.repeat(8000)}}]}`]) {
      assert.throws(() => parseConfigText(text, 'x.yaml'), (e: XdplbError) => e.code === 'XDPLB_ERR_VALIDATION' && /^x\.yaml:1:\d+: nested deeper than 32 levels$/.test(e.message));
    }
  });
  test('a duplicate key in a JSON config file is refused (YAML refuses it)', () => {
    assert.throws(() => parseConfigText('{"hashSeed": 1, "hashSeed": 2}', 'x.json'), (e: XdplbError) => e.code === 'XDPLB_ERR_VALIDATION' && /^x\.json:1:\d+: .*unique/.test(e.message));
    assert.throws(() => parseConfigText('{"services": [{"name": "a", "name": "b"}]}', 'x.json'), (e: XdplbError) => /unique/.test(e.message));
  });
});
