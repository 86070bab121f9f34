/**
 * The config file as the daemon reads it (issue 10, "Config file and reload"): a config that
 * removes everything, half-written files, and error messages that never quote a file that is
 * not a config (a symlink to /etc/shadow). Temporary files under os.tmpdir()/xlbt-cf-*.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHook } from 'node:async_hooks';
import YAML from 'yaml';
import { XdplbError } from '../domain/errors';
import {
  CONFIG_HEADER, END_MARKER, checkComplete, formatConfig, loadConfigFile, parseConfigText, prepareConfigFile, saveConfigFile,
} from './config';

function caught(fn: () => unknown): XdplbError {
  try { fn(); } catch (error) { if (error instanceof XdplbError) return error; throw error; }
  assert.fail('expected an XdplbError');
}

const TOKEN = 'xlbt-cf-token-0123456789abcdef';

/** A realistic config: a 91-backend service, a DSR service, interfaces, users and tokens. */
function realistic(): string {
  const backends = Array.from({ length: 91 }, (_, i) => ({ address: `198.18.${1 + (i >> 6)}.${10 + (i & 63)}`, port: 8080, weight: 1 + (i % 3) }));
  return YAML.stringify({
    interfaces: [{ name: 'eth0', mode: 'native' }, { name: 'eth1', mode: 'generic' }],
    hashSeed: 7,
    sampling: { rate: 100 },
    users: [{ name: 'admin', role: 'admin', passwordHash: 'scrypt$16384$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g' }],
    tokens: [{ name: 'ci', role: 'admin', tokenHash: 'scrypt$16384$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g' }],
    services: [
      { name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 8209,
        healthCheck: { type: 'http', path: '/health', intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 2 }, backends },
      { name: 'dns', vip: '198.18.100.2', port: 53, protocol: 'udp', mode: 'dsr', tableSize: 251,
        backends: [{ address: '198.18.3.10', port: 0 }, { address: '198.18.3.11', port: 0 }] },
    ],
  });
}

function withTempDir(fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-cf-'));
  try { fn(dir); } finally { fs.rmSync(dir, { recursive: true, force: true }); }
}

describe('a config that removes everything', () => {
  const nothing: Array<[string, string]> = [
    ['an empty file', ''],
    ['a blank file', '\n \n\t\n'],
    ['a comment-only file', '# the new config\n# (work in progress)\n'],
    ['a YAML null document (~)', '~\n'],
    ['null', 'null\n'],
    ['a bare document start', '---\n'],
    ['an empty mapping', '{}\n'],
    ['empty lists', 'services: []\ninterfaces: []\nusers: []\ntokens: []\n'],
    ['settings only', 'hashSeed: 0\nfragments: drop\napi: {listen: "127.0.0.1:8720"}\n'],
    ['allowEmpty: false', 'allowEmpty: false\nservices: []\n'],
  ];
  for (const [name, text] of nothing) {
    test(`${name} is refused with one line naming the way out (allowEmpty)`, () => {
      const error = caught(() => parseConfigText(text, 'c.yaml'));
      assert.equal(error.code, 'XDPLB_ERR_VALIDATION');
      assert.match(error.message, /^c\.yaml: .*allowEmpty: true/);
      assert.equal(error.message.split('\n').length, 1);
    });
  }

  test('allowEmpty: true says it is intended', () => {
    const config = parseConfigText('allowEmpty: true\nservices: []\n', 'c.yaml');
    assert.equal(config.services.length, 0);
    assert.equal(config.allowEmpty, true);
  });

  test('a token, a user, an interface or a service is not "nothing"', () => {
    assert.equal(parseConfigText(`tokens: [{name: ci, role: admin, token: ${TOKEN}}]\n`).tokens.length, 1);
    assert.equal(parseConfigText('interfaces: [{name: eth0}]\n').interfaces.length, 1);
    assert.equal(parseConfigText('users: [{name: a, role: viewer, password: x}]\n').users.length, 1);
    assert.equal(parseConfigText('services: [{name: w, vip: 198.18.100.1, port: 80, protocol: tcp, mode: nat, backends: []}]\n').services.length, 1);
  });

  test('what xdplb writes for an emptied config (an API change) loads again', () => {
    const text = formatConfig(parseConfigText('allowEmpty: true'));
    assert.match(text, /^allowEmpty: true$/m);
    const emptied = parseConfigText(`tokens: [{name: ci, role: admin, token: ${TOKEN}}]\n`);
    emptied.tokens = [];
    assert.equal(parseConfigText(formatConfig(emptied)).allowEmpty, true);
  });
});

describe('half-written files are never applied', () => {
  test('xdplb writes a header, and an end line with the checksum of what precedes it', () => {
    const text = formatConfig(parseConfigText(realistic()));
    assert.ok(text.startsWith(`${CONFIG_HEADER}\n`));
    assert.match(text, new RegExp(`\\n${END_MARKER} sha256=[0-9a-f]{64}\\n$`));
    assert.deepEqual(parseConfigText(text), parseConfigText(realistic()));
  });

  test('a file xdplb wrote, cut at EVERY byte offset, is refused; a plain YAML cut often parses (why a marker)', () => {
    const full = formatConfig(parseConfigText(realistic()));
    const bytes = Buffer.from(full);
    assert.ok(bytes.length > 5000, `realistic size (${bytes.length} bytes)`);
    for (let cut = 0; cut < bytes.length; cut++) {
      const text = bytes.subarray(0, cut).toString('utf8');
      let applied = false;
      try { parseConfigText(text, 'c.yaml'); applied = true; } catch (error) {
        assert.ok(error instanceof XdplbError, `cut at ${cut}: ${String(error)}`);
        assert.equal(error.message.split('\n').length, 1);
      }
      assert.equal(applied, false, `the file cut at byte ${cut} of ${bytes.length} was accepted`);
    }
    assert.doesNotThrow(() => parseConfigText(full));
    // Without the marker, YAML alone accepts many cuts (a list cut between two items): the
    // 91-backend service silently shrinks. This is what the old loader applied.
    const plain = realistic();
    let parsedCuts = 0;
    let shrunk = 0;
    for (let cut = 0; cut < plain.length; cut += 7) {
      try {
        const c = parseConfigText(plain.slice(0, cut));
        parsedCuts++;
        if ((c.services[0]?.backends.length ?? 0) < 91) shrunk++;
      } catch { /* refused */ }
    }
    assert.ok(parsedCuts > 10 && shrunk > 10, `plain YAML cuts that parse: ${parsedCuts}, with fewer backends: ${shrunk}`);
  });

  test('a shorter file written over a longer one in place (no truncation) is refused', () => {
    const long = formatConfig(parseConfigText(realistic()));
    const short = parseConfigText(realistic());
    short.services[0].backends = short.services[0].backends.slice(0, 5);
    const newText = formatConfig(short);
    // Complete new content over the old tail, and a half-written new content over the old tail.
    const overwritten = newText + long.slice(newText.length);
    assert.match(caught(() => parseConfigText(overwritten, 'c.yaml')).message, /incomplete config file|checksum/);
    let firstDiff = 0;
    while (newText[firstDiff] === long[firstDiff]) firstDiff++;
    // Cut anywhere after the first byte that differs (before it, the result is the old file).
    for (let cut = firstDiff + 1; cut < newText.length; cut += 13) {
      const partial = newText.slice(0, cut) + long.slice(cut);
      assert.match(caught(() => parseConfigText(partial, 'c.yaml')).message, /incomplete config file|checksum|YAML syntax/, `cut ${cut}`);
    }
  });

  test('hand-written files may opt in with a plain end line; content after it, or two of them, is refused', () => {
    const text = `${realistic()}${END_MARKER}\n`;
    assert.equal(parseConfigText(text).services[0].backends.length, 91);
    assert.doesNotThrow(() => checkComplete(`${realistic()}${END_MARKER}`), 'no newline needed when hand-written');
    const lines = realistic().split('\n');
    const cutAtItem = lines.findIndex((l) => l.includes('198.18.1.11'));
    // A hand-written file with the marker, cut between two backends: the marker is gone.
    assert.equal(parseConfigText(lines.slice(0, cutAtItem).join('\n')).services[0].backends.length < 91, true, 'a plain cut parses');
    assert.match(caught(() => parseConfigText(`${realistic()}${END_MARKER}\nservices: []\n`, 'c.yaml')).message, /content after/);
    assert.match(caught(() => parseConfigText(`${END_MARKER}\n${realistic()}${END_MARKER}\n`, 'c.yaml')).message, /appears 2 times/);
  });

  test('a hand-written comment that merely starts like the header does not opt in', () => {
    assert.equal(parseConfigText(`# xdplb config for prod\n${realistic()}`).services.length, 2);
  });

  test('an edit after xdplb wrote the file: the checksum names the fix; without the checksum it loads', () => {
    const text = formatConfig(parseConfigText(realistic())).replace('weight: 1', 'weight: 5');
    const error = caught(() => parseConfigText(text, 'c.yaml'));
    assert.match(error.message, /^c\.yaml:\d+: the file does not match the checksum in its end line.*delete " sha256=\.\.\." from the last line/);
    const edited = text.replace(/ sha256=[0-9a-f]{64}/, '');
    assert.equal(parseConfigText(edited).services[0].backends[0].weight, 5);
  });

  test("the daemon's own write: temporary file, fsync, rename; abort leaves the old file; a failed write changes nothing", () => {
    withTempDir((dir) => {
      const file = path.join(dir, 'xdplb.yaml');
      saveConfigFile(file, parseConfigText(realistic()));
      const before = fs.readFileSync(file, 'utf8');
      const changed = parseConfigText(realistic());
      changed.services.pop();
      const pending = prepareConfigFile(file, changed);
      assert.ok(fs.existsSync(pending.temp) && path.dirname(pending.temp) === dir, 'temporary file in the same directory');
      assert.equal(fs.readFileSync(file, 'utf8'), before, 'not in place before commit');
      pending.abort();
      assert.deepEqual(fs.readdirSync(dir), ['xdplb.yaml']);
      assert.equal(fs.readFileSync(file, 'utf8'), before);
      const second = prepareConfigFile(file, changed);
      second.commit();
      assert.deepEqual(fs.readdirSync(dir), ['xdplb.yaml']);
      assert.equal(loadConfigFile(file).services.length, 1);
    });
  });
});

test("the daemon's write of a DesiredState's config (validated: not validated again) is the file a validating write makes", async () => {
  const { DesiredState } = await import('./state');
  withTempDir((dir) => {
    const state = new DesiredState(parseConfigText(realistic()));
    const checked = path.join(dir, 'checked.yaml');
    const trusted = path.join(dir, 'trusted.yaml');
    prepareConfigFile(checked, state.toConfig()).commit();
    prepareConfigFile(trusted, state.toConfig(), { validated: true }).commit();
    assert.equal(fs.readFileSync(trusted, 'utf8'), fs.readFileSync(checked, 'utf8'));
    assert.deepEqual(loadConfigFile(trusted), state.toConfig());
    // Without the option a config is still validated first: nothing written for a bad one.
    const bad = state.toConfig();
    bad.services[0].backends[0].weight = -1;
    assert.throws(() => prepareConfigFile(path.join(dir, 'bad.yaml'), bad), XdplbError);
    assert.equal(fs.existsSync(path.join(dir, 'bad.yaml')), false);
  });
});

describe('a config path that is not a config never leaks its content', () => {
  const secretFiles: string[] = [
    'root:$6$SECRETSALT$SECRETHASHSECRETHASH:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n',
    'api_key: SECRETVALUE\n',
    'SECRETLINE\n',
    '%YAML SECRET\n---\na: 1\n',
    '*SECRETALIAS\n',
    '!SECRETTAG x\n',
    'a: !SECRETTAG x\n',
    '[SECRET, "SECRET\n',
    'services: SECRETVALUE\n',
    'services:\n  - SECRETVALUE\n',
    '{"SECRETKEY": 1, "SECRETKEY": 2}\n',
    '"SECRET\\q"\n',
  ];
  for (const [i, content] of secretFiles.entries()) {
    test(`through a symlink: the error names the position, never the content (${i})`, () => {
      withTempDir((dir) => {
        const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-cf-outside-'));
        try {
          const target = path.join(outside, 'shadow');
          fs.writeFileSync(target, content, { mode: 0o600 });
          const link = path.join(dir, 'xdplb.yaml');
          fs.symlinkSync(target, link);
          const error = caught(() => loadConfigFile(link));
          assert.doesNotMatch(error.message, /SECRET|root|daemon|19000/, error.message);
          assert.doesNotMatch(error.field ?? '', /SECRET|root/);
          assert.match(error.message, /^\S+xdplb\.yaml(:\d+:\d+)?: /);
          assert.equal(error.message.split('\n').length, 1);
        } finally {
          fs.rmSync(outside, { recursive: true, force: true });
        }
      });
    });
  }

  test('a write never goes through the symlink: the link is replaced, its target untouched', () => {
    withTempDir((dir) => {
      const target = path.join(dir, 'target.yaml');
      fs.writeFileSync(target, 'allowEmpty: true\n');
      const link = path.join(dir, 'xdplb.yaml');
      fs.symlinkSync(target, link);
      saveConfigFile(link, parseConfigText(realistic()));
      assert.equal(fs.readFileSync(target, 'utf8'), 'allowEmpty: true\n');
      assert.equal(fs.lstatSync(link).isSymbolicLink(), false);
      assert.equal(loadConfigFile(link).services.length, 2);
    });
  });

  test('a typo in a field name is still shown', () => {
    const error = caught(() => parseConfigText('servces: []\n', 'c.yaml'));
    assert.match(error.message, /^c\.yaml:1:\d+: \/servces: is not a known field/);
    assert.equal(error.field, '/servces');
  });

  test('symlinks are followed to a regular file; a device, FIFO or directory is refused unread', () => {
    withTempDir((dir) => {
      const real = path.join(dir, 'real.yaml');
      fs.writeFileSync(real, 'allowEmpty: true\n');
      fs.symlinkSync(real, path.join(dir, 'link.yaml'));
      assert.equal(loadConfigFile(path.join(dir, 'link.yaml')).allowEmpty, true);
      fs.symlinkSync('/dev/zero', path.join(dir, 'zero.yaml'));
      assert.match(caught(() => loadConfigFile(path.join(dir, 'zero.yaml'))).message, /not a regular file/);
      fs.mkdirSync(path.join(dir, 'dir.yaml'));
      assert.match(caught(() => loadConfigFile(path.join(dir, 'dir.yaml'))).message, /not a regular file/);
      const fifo = path.join(dir, 'fifo.yaml');
      execFileSync('mkfifo', [fifo]);
      assert.match(caught(() => loadConfigFile(fifo)).message, /not a regular file/);
      const big = path.join(dir, 'big.yaml');
      fs.writeFileSync(big, '');
      fs.truncateSync(big, 5 * 1024 * 1024);
      assert.match(caught(() => loadConfigFile(big)).message, /larger than/);
    });
  });
});


describe('background writes: the directory handle', () => {
  const dirFds = (dir: string) => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try { return fs.readlinkSync(`/proc/self/fd/${fd}`) === dir; } catch { return false; }
  }).length;

  test('before the commit (while the kernel takes the change) the one thread-pool job is the fsync: no directory handle yet', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbp-pool-'));
    const file = path.join(dir, 'xdplb.yaml');
    const config = parseConfigText(realistic());
    saveConfigFile(file, config);
    const jobs: string[] = [];
    // Every libuv file-system request started while prepareConfigFile runs and until its fsync is done.
    const hook = createHook({ init(_id, type) { if (type.startsWith('FSREQ') || type === 'FILEHANDLE') jobs.push(type); } });
    try {
      hook.enable();
      const pending = prepareConfigFile(file, { ...config, hashSeed: 4 }, { background: true });
      await pending.durable;
      hook.disable();
      assert.deepEqual(jobs, ['FSREQCALLBACK'], 'one request (the fsync), no open of the directory on the thread pool');
      assert.equal(dirFds(dir), 0, 'the directory is not open before the commit');
      await pending.commit();
      assert.equal(loadConfigFile(file).hashSeed, 4);
      assert.equal(dirFds(dir), 0, 'nor after it');
    } finally {
      hook.disable();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('opened for one write only: closed after the commit and after an abort (the file system is never held busy)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbt-dirsync-'));
    const file = path.join(dir, 'xdplb.yaml');
    const config = parseConfigText(realistic());
    const settle = async () => { for (let i = 0; i < 50 && dirFds(dir) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10)); };
    try {
      for (let i = 0; i < 3; i++) await prepareConfigFile(file, { ...config, hashSeed: i }, { background: true }).commit();
      await settle();
      assert.equal(dirFds(dir), 0, 'no handle of the directory left after commits');
      assert.equal(loadConfigFile(file).hashSeed, 2);
      const pending = prepareConfigFile(file, { ...config, hashSeed: 9 }, { background: true });
      await pending.durable;
      pending.abort();
      await settle();
      assert.equal(dirFds(dir), 0, 'none after an abort');
      assert.equal(loadConfigFile(file).hashSeed, 2, 'the aborted write changed nothing');
      assert.deepEqual(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
