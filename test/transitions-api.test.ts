/**
 * Transitions made visible (issue 14): an in-process daemon on bpf/lb.o (pins under
 * /sys/fs/bpf/xlbq-tr, no interface attached: the marks live in the maps alone). A drain moves
 * Maglev slots; GET /api/v1/transitions, /metrics and `xdplb transitions` report as many moved
 * slots as the kernel's tables hold (read back through the pins with readMaglevTable), and all
 * of them report 0 once the sweeps (transitionSeconds: 4: the checks right after the drain, CLI
 * start-ups included, fit in the first period even under load) found the slots quiet. Everything
 * created here is removed by name in after(), also on failure.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import YAML from 'yaml';
import pino from 'pino';
import { startDaemon, type RunningDaemon } from '../src/cli/daemon-process';
import { ApiClient } from '../src/cli/client';
import { BpfMap } from '../src/bpf';
import { encodeU32 } from '../src/dataplane/abi';
import { pinnedTableOuterValue, readMaglevTable, SLOT, SLOT_WORDS } from '../src/dataplane/maglev-tables';
import { repoPath } from '../src/paths';
import { waitFor } from '../src/lab/wait';
import type { TransitionsView } from '../src/domain/types';
import { kernelTestSkip } from './support/kernel-env';

const PIN_DIR = '/sys/fs/bpf/xlbq-tr';
const TOKEN = 'xlbq-tr-admin-token-0123456789';
const TABLE = 4099;
const PERIOD_S = 4;
const BACKENDS = ['198.18.41.11', '198.18.41.12', '198.18.41.13', '198.18.41.14'];

const skipReason = kernelTestSkip('the transitions API kernel test');

/** The kernel's moved slots of service `id` (its maglev and maglev_marks entries, through the pins). */
/** The kernel's table of service `id`: its slots, the moved ones, and the slots whose mark is not
 * all zero (a marks table lives as long as its table, zeroed at rest: docs/decisions.md). */
function kernelMoved(id: number): { slots: number; moved: number; marked: number } {
  const maglev = BpfMap.fromPin(path.join(PIN_DIR, 'maps', 'maglev'));
  const marks = BpfMap.fromPin(path.join(PIN_DIR, 'maps', 'maglev_marks'));
  try {
    const outer = pinnedTableOuterValue(path.join(PIN_DIR, 'maps'), id);
    const marksOuter = marks.lookup(encodeU32(id));
    assert.ok(outer, `service ${id} has a maglev table`);
    const table = readMaglevTable(outer, marksOuter);
    assert.ok(table, 'the installed table reads back');
    let moved = 0;
    let marked = 0;
    for (let at = 0; at < table.length; at += SLOT_WORDS) {
      if (table[at + SLOT.prev] !== 0) moved++;
      if (table[at + SLOT.prev] !== 0 || table[at + SLOT.epoch] !== 0 || table[at + SLOT.seenFlags] !== 0) marked++;
    }
    return { slots: table.length / SLOT_WORDS, moved, marked };
  } finally {
    maglev.close();
    marks.close();
  }
}

describe('transitions API (kernel maps)', { skip: skipReason, concurrency: false }, () => {
  let dir = '';
  let daemon: RunningDaemon | null = null;
  let api: ApiClient;

  const cleanup = async (): Promise<void> => {
    await daemon?.stop({ detach: true }).catch(() => {});
    daemon = null;
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  };

  before(async () => {
    fs.rmSync(PIN_DIR, { recursive: true, force: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xlbq-tr-'));
    const configPath = path.join(dir, 'xdplb.yaml');
    fs.writeFileSync(configPath, YAML.stringify({
      transitionSeconds: PERIOD_S,
      tokens: [{ name: 'test', role: 'admin', token: TOKEN }],
      services: [
        { name: 'web', vip: '198.18.41.1', port: 80, protocol: 'tcp', mode: 'nat', tableSize: TABLE,
          backends: BACKENDS.map((address) => ({ address, port: 8080, weight: 1 })) },
        { name: 'quiet', vip: '198.18.41.2', port: 53, protocol: 'udp', mode: 'nat', tableSize: 13,
          backends: [{ address: '198.18.41.21', port: 53, weight: 1 }] },
      ],
    }));
    daemon = await startDaemon({ configPath, pinDir: PIN_DIR, listen: '127.0.0.1:0', logger: pino({ level: 'silent' }) });
    api = new ApiClient({ baseUrl: daemon.url, token: TOKEN });
  });
  after(cleanup);

  const metricsMoved = async (service: string): Promise<number | null> => {
    const res = await fetch(`${daemon!.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    const m = new RegExp(`^xdplb_service_moved_slots\\{service="${service}"\\} (\\d+)$`, 'm').exec(await res.text());
    return m ? Number(m[1]) : null;
  };
  // Asynchronously: the daemon runs in this process and must answer while the CLI waits.
  const cli = (...args: string[]) => new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [repoPath('dist/src/cli.js'), ...args, '--api', daemon!.url, '--token', TOKEN], { encoding: 'utf8', timeout: 30_000 },
      (err, stdout, stderr) => resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });

  test('at rest: no moved slots anywhere, no sweep scheduled', async () => {
    const view = await api.transitions();
    assert.equal(view.transitionSeconds, PERIOD_S);
    assert.equal(view.nextSweepAt, null);
    assert.deepEqual(view.services.map((s) => [s.service, s.tableSize, s.movedSlots]), [['web', TABLE, 0], ['quiet', 13, 0]]);
    const web = await api.getService('web');
    assert.equal(kernelMoved(web.id).moved, 0);
    assert.equal(kernelMoved(web.id).marked, 0, 'no slot carries a mark');
    assert.equal(await metricsMoved('web'), 0);
  });

  test('a drain moves slots: the API, /metrics and the CLI count what the kernel holds; the sweeps bring them to 0', async () => {
    const t0 = Date.now();
    // When a cluster node publishes its status at once (ClusterService): each change of the
    // moved-slot count, here with the count it changed to.
    const told: number[] = [];
    const unsubscribe = daemon!.controller.onTransitionsChange(() => {
      told.push(daemon!.controller.transitions().services.find((s) => s.service === 'web')!.movedSlots);
    });
    const web = await api.patchBackend('web', `${BACKENDS[1]}:8080`, { drain: true });
    const kernel = kernelMoved(web.id);
    const drained = web.backends.find((b) => b.draining)!;
    // The drained backend's slots (about a quarter) moved, and nothing else.
    assert.ok(kernel.moved > TABLE / 8 && kernel.moved < TABLE / 2, `moved ${kernel.moved} of ${TABLE}`);
    assert.equal(kernel.slots, TABLE);
    assert.equal(drained.tableShare, 0);

    const view: TransitionsView = await api.transitions();
    const row = view.services.find((s) => s.service === 'web')!;
    assert.equal(row.movedSlots, kernel.moved, 'the API counts the kernel\'s moved slots');
    assert.equal(row.movedShare, kernel.moved / TABLE);
    assert.equal(row.youngSlots, kernel.moved, 'every moved slot is in its first period');
    assert.ok(row.since !== null && row.since >= Math.floor(t0 / 1000) * 1000 - 1000 && row.since <= Date.now() + 1000, `since ${row.since}`);
    assert.ok(view.nextSweepAt !== null && view.nextSweepAt > t0 && view.nextSweepAt <= Date.now() + PERIOD_S * 1000 + 500, `next sweep ${view.nextSweepAt}`);
    assert.equal(view.services.find((s) => s.service === 'quiet')!.movedSlots, 0);
    const one = await api.transition('web');
    assert.equal(one.movedSlots, kernel.moved);
    await assert.rejects(api.transition('nope'), /service "nope" does not exist/);

    const metric = await metricsMoved('web');
    assert.equal(metric, kernel.moved, '/metrics xdplb_service_moved_slots');
    const shown = await cli('transitions');
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`^web\\s+${TABLE}\\s+${kernel.moved}\\s`, 'm'));
    const show = await cli('service', 'show', 'web');
    assert.equal(show.status, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^transition: ${kernel.moved} of ${TABLE} slots moved`, 'm'));

    // No traffic: the first sweep ends the young period, the next finds the slots unseen.
    await waitFor('the sweeps to unmark every moved slot', 6 * PERIOD_S * 1000, () => kernelMoved(web.id).moved === 0, 100);
    const after = await api.transitions();
    assert.equal(after.services.find((s) => s.service === 'web')!.movedSlots, 0);
    assert.equal(after.nextSweepAt, null);
    assert.equal(kernelMoved(web.id).marked, 0, 'every mark was zeroed with the last sweep');
    assert.equal(await metricsMoved('web'), 0);
    unsubscribe();
    assert.ok(told.length >= 2 && told[0] === kernel.moved && told.at(-1) === 0,
      `the listener saw ${JSON.stringify(told)}: first the drain's ${kernel.moved}, last 0`);
    const cleared = await cli('service', 'show', 'web');
    assert.match(cleared.stdout, /^transition: none \(steady state\)$/m);
  });
});
