/**
 * The config watcher and the daemon's own writes (issue 16): the file event of an API change's
 * write is recognised by its bytes and not parsed again, while an operator's edit, even one made
 * right after an API write, and a file put back to older bytes are still reloaded. Also: the
 * start-up's full garbage collection before the daemon says ready.
 *
 * Names (prefix xlbq): pins /sys/fs/bpf/xlbq-ow, temporary dirs os.tmpdir()/xlbq-ow-*, API port
 * 28810. Removed by name in after(), also on failure.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import YAML from 'yaml';
import pino from 'pino';
import { startDaemon, type RunningDaemon } from '../src/cli/daemon-process';
import { ApiClient } from '../src/cli/client';
import { kernelTestSkip } from './support/kernel-env';

const PIN = '/sys/fs/bpf/xlbq-ow';
const PORT = 28810;
const TOKEN = 'xlbq-ow-admin-token-0123456789';
const skipReason = kernelTestSkip('the config watcher kernel test');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const config = (weights: number[]) => ({
  tokens: [{ name: 'test', role: 'admin', token: TOKEN }],
  hashSeed: 5,
  services: [{
    name: 'web', vip: '198.18.110.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: 251,
    backends: weights.map((weight, i) => ({ address: `198.18.111.${10 + i}`, port: 8080, weight })),
  }],
});

interface LogLine { msg?: string; reason?: string; [key: string]: unknown }
const OWN = "config file holds the running state (the daemon's own write): not re-read";

let daemon: RunningDaemon | null = null;
let dir = '';
const cleanup = async (): Promise<void> => {
  await daemon?.stop({ detach: true }).catch(() => {});
  daemon = null;
  fs.rmSync(PIN, { recursive: true, force: true });
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
};

async function waitFor(logs: LogLine[], from: number, match: (l: LogLine) => boolean, timeoutMs = 5000): Promise<LogLine> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const found = logs.slice(from).find(match);
    if (found) return found;
    await sleep(10);
  }
  throw new Error(`no matching log line in ${timeoutMs} ms; last: ${JSON.stringify(logs.slice(-3))}`);
}

describe('config watcher: own writes and operator edits (kernel, in process)', { skip: skipReason, concurrency: false }, () => {
  before(cleanup);
  after(cleanup);

  test("an API change's own write is not re-read; an operator's edit right after an API write is applied; restored older bytes are applied", async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbq-ow-'));
    const file = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(file, YAML.stringify(config([1, 1, 1])));
    const logs: LogLine[] = [];
    const sink = new Writable({ write(chunk, _enc, done) { for (const l of String(chunk).split('\n')) if (l.trim()) logs.push(JSON.parse(l) as LogLine); done(); } });
    daemon = await startDaemon({ configPath: file, pinDir: PIN, listen: `127.0.0.1:${PORT}`, logger: pino({ level: 'debug' }, sink), reloadDebounceMs: 50 });
    const api = new ApiClient({ baseUrl: daemon.url, token: TOKEN });
    // Start-up's garbage was collected before the daemon said ready (not during its first changes).
    const ready = logs.find((l) => l.msg === 'xdplb daemon ready');
    assert.equal(typeof ready?.gcMs, 'number', 'a full collection ran at the end of start-up');
    const weights = async () => (await api.getService('web')).backends.map((b) => b.weight);

    // 1. An API change: the watcher sees the daemon's write and leaves it (no reload of any kind).
    let mark = logs.length;
    await api.patchBackend('web', '198.18.111.10:8080', { weight: 4 });
    const ownBytes = fs.readFileSync(file, 'utf8');
    await waitFor(logs, mark, (l) => l.msg === OWN);
    await sleep(150);   // any later echo of the same write would be logged by now
    assert.deepEqual(logs.slice(mark).filter((l) => /^config (reloaded|file invalid|reload refused)/.test(l.msg ?? '')), [], 'nothing was reloaded');
    assert.deepEqual(await weights(), [4, 1, 1]);

    // 2. An operator's edit right after an API write (before the watcher's echo of it): applied.
    mark = logs.length;
    await api.patchBackend('web', '198.18.111.11:8080', { weight: 2 });
    const edited = YAML.parse(fs.readFileSync(file, 'utf8')) as ReturnType<typeof config>;
    edited.services[0].backends[2].weight = 7;
    fs.writeFileSync(file, YAML.stringify(edited));
    await waitFor(logs, mark, (l) => l.msg === 'config reloaded');
    assert.deepEqual(await weights(), [4, 2, 7], "the operator's edit is in effect");

    // 3. The bytes of an earlier own write put back: not the running state, so applied.
    mark = logs.length;
    fs.writeFileSync(file, ownBytes);
    await waitFor(logs, mark, (l) => l.msg === 'config reloaded');
    assert.deepEqual(await weights(), [4, 1, 1], 'the restored file is in effect');

    // 4. The same bytes written again (touched, no change): recognised, nothing re-read.
    mark = logs.length;
    fs.writeFileSync(file, ownBytes);
    await waitFor(logs, mark, (l) => l.msg === OWN);
    // An explicit reload (SIGHUP) always reads and compares the file.
    assert.equal(await daemon.reload('SIGHUP'), 'unchanged');
    assert.ok(!logs.slice(mark).some((l) => l.msg === OWN && l.reason === 'SIGHUP'), 'SIGHUP is not short-cut');
    await cleanup();
  });
});
