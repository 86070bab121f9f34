import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { XdplbError } from '../domain/errors';
import { hashSecret, loadConfigFile, parseConfigText, saveConfigFile, verifySecret } from './config';
import { DesiredState } from './state';
import { repoRoot } from '../paths';


function exampleFromDocs(): string {
  const doc = fs.readFileSync(path.join(repoRoot(), 'docs', 'config.md'), 'utf8');
  const match = /## Example\s+```yaml\n([\s\S]*?)```/.exec(doc);
  assert.ok(match, 'docs/config.md has a yaml example');
  return match[1];
}

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-api-'));
}

function caught(fn: () => unknown): XdplbError {
  try { fn(); } catch (error) { if (error instanceof XdplbError) return error; throw error; }
  assert.fail('expected an XdplbError');
}

describe('config file', () => {
  test('the example in docs/config.md loads, with secrets hashed', () => {
    const config = parseConfigText(exampleFromDocs(), 'example.yaml');
    assert.deepEqual(config.services.map((s) => s.name), ['web', 'dns']);
    assert.equal(config.services[1].tableSize, 251);
    assert.equal(config.users[0].password, undefined);
    assert.ok(verifySecret('change-me', config.users[0].passwordHash!));
    assert.ok(verifySecret('ci-token-0123456789abcdef', config.tokens[0].tokenHash!));
    assert.equal(new DesiredState(config).services.length, 2);
  });

  test('a config with nothing in it is valid only with allowEmpty: true (defaults filled in)', () => {
    const config = parseConfigText('allowEmpty: true\n', 'empty.yaml');
    assert.deepEqual(config.services, []);
    assert.equal(config.api.listen, '127.0.0.1:8720');
  });

  test('a YAML syntax error names line and column', () => {
    const error = caught(() => parseConfigText('services:\n  - name: web\n    vip: [198.18.100.1\n', 'bad.yaml'));
    assert.equal(error.code, 'XDPLB_ERR_VALIDATION');
    assert.match(error.message, /^bad\.yaml:\d+:\d+: YAML syntax error/);
  });

  test('a duplicate key is a syntax error with its position', () => {
    const error = caught(() => parseConfigText('hashSeed: 1\nhashSeed: 2\n', 'dup.yaml'));
    assert.match(error.message, /^dup\.yaml:2:1: YAML syntax error/);
  });

  test('a schema error names the pointer and the line of the node', () => {
    const text = 'services:\n  - name: web\n    vip: 198.18.100.1\n    port: 99999\n    protocol: tcp\n    mode: nat\n    backends: []\n';
    const error = caught(() => parseConfigText(text, 'c.yaml'));
    assert.equal(error.field, '/services/0/port');
    assert.match(error.message, /^c\.yaml:4:11: \/services\/0\/port: must be <= 65535/);
  });

  test('reverseGraceSeconds: absent by default (300 s applies), an integer 0..86400, else refused naming it', () => {
    // allowEmpty: these files configure nothing else (a file that removes everything is refused).
    assert.equal(parseConfigText('allowEmpty: true\n', 'c.yaml').reverseGraceSeconds, undefined);
    assert.equal(parseConfigText('reverseGraceSeconds: 0\nallowEmpty: true\n', 'c.yaml').reverseGraceSeconds, 0);
    assert.equal(parseConfigText('reverseGraceSeconds: 86400\nallowEmpty: true\n', 'c.yaml').reverseGraceSeconds, 86400);
    for (const bad of ['-1', '86401', '1.5', 'soon']) {
      const error = caught(() => parseConfigText(`reverseGraceSeconds: ${bad}\nallowEmpty: true\n`, 'c.yaml'));
      assert.equal(error.field, '/reverseGraceSeconds', bad);
      assert.match(error.message, /^c\.yaml:1:\d+: \/reverseGraceSeconds: /, bad);
    }
  });

  test('a semantic error names the pointer and the line', () => {
    const svc = (name: string) => `  - {name: ${name}, vip: 198.18.100.1, port: 80, protocol: tcp, mode: nat, backends: []}\n`;
    const error = caught(() => parseConfigText(`services:\n${svc('a')}${svc('b')}`, 'c.yaml'));
    assert.equal(error.code, 'XDPLB_ERR_CONFLICT');
    assert.equal(error.field, '/services/1/vip');
    assert.match(error.message, /^c\.yaml:3:\d+: /);
  });

  test('an unreadable file is XDPLB_ERR_CONFIG_FILE', () => {
    const error = caught(() => loadConfigFile(path.join(os.tmpdir(), 'xlbt-api-does-not-exist.yaml')));
    assert.equal(error.code, 'XDPLB_ERR_CONFIG_FILE');
  });

  test('save is atomic: no temporary file left, content round-trips, mode kept private', () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, 'xdplb.yaml');
      const config = parseConfigText(exampleFromDocs());
      saveConfigFile(file, config);
      assert.deepEqual(fs.readdirSync(dir), ['xdplb.yaml']);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(loadConfigFile(file), config);
      const text = fs.readFileSync(file, 'utf8');
      assert.doesNotMatch(text, /change-me|ci-token-0123/, 'no plain secrets on disk');
      assert.deepEqual(text.split('\n').filter((l) => /^[a-z]/i.test(l)).map((l) => l.split(':')[0]),
        ['interfaces', 'maglev', 'hashSeed', 'fragments', 'sampling', 'flowCache', 'api', 'users', 'tokens', 'services'], 'schema order');
      const changed = new DesiredState(config).deleteService('dns').toConfig();
      saveConfigFile(file, changed);
      assert.deepEqual(fs.readdirSync(dir), ['xdplb.yaml']);
      assert.deepEqual(loadConfigFile(file).services.map((s) => s.name), ['web']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('save refuses an invalid config and leaves the file alone', () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, 'xdplb.yaml');
      const config = parseConfigText(exampleFromDocs());
      saveConfigFile(file, config);
      const before = fs.readFileSync(file, 'utf8');
      const bad = structuredClone(config);
      bad.services[1].name = 'web';
      assert.equal(caught(() => saveConfigFile(file, bad)).code, 'XDPLB_ERR_CONFLICT');
      assert.equal(fs.readFileSync(file, 'utf8'), before);
      assert.deepEqual(fs.readdirSync(dir), ['xdplb.yaml']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('save into a missing directory fails cleanly', () => {
    const error = caught(() => saveConfigFile(path.join(os.tmpdir(), 'xlbt-api-missing-dir', 'x.yaml'), parseConfigText('allowEmpty: true')));
    assert.equal(error.code, 'XDPLB_ERR_STORAGE');
  });
});

describe('secrets', () => {
  test('hash and verify', () => {
    const stored = hashSecret('s3cret');
    assert.match(stored, /^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    assert.notEqual(hashSecret('s3cret'), stored, 'salted');
    assert.equal(verifySecret('s3cret', stored), true);
    assert.equal(verifySecret('s3cret ', stored), false);
    assert.equal(verifySecret('', stored), false);
  });

  test('malformed or abusive hashes never match', () => {
    assert.equal(verifySecret('x', 'plain'), false);
    assert.equal(verifySecret('x', 'scrypt$16384$8$1$$'), false);
    const [, , r, p, salt, hash] = hashSecret('x').split('$');
    assert.equal(verifySecret('x', ['scrypt', 2 ** 24, r, p, salt, hash].join('$')), false, 'N too large');
    assert.equal(verifySecret('x', ['scrypt', 1000, r, p, salt, hash].join('$')), false, 'N not a power of two');
  });
});
