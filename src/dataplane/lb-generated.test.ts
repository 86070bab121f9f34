/**
 * lb.generated.ts (and native/abi_layout.generated.h) against bpf/lb.o and bpf/lb_abi.h: the
 * generator runs again and its text must equal the checked-in files; a header that drifts from
 * the object is noticed. Needs bpftool and clang (as the build does), no kernel.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { repoRoot } from '../bpf';
import { LB, LB_ACTIONS, LB_GLOBALS, LB_LAYOUTS, LB_MAPS, LB_REASONS } from './lb.generated';
import { REASONS, XDP_ACTIONS } from './types';
import { MAP_NAMES } from './load-options';

const ROOT = repoRoot();
const SCRIPT = path.join(ROOT, 'scripts/gen-abi.mjs');
const HEADER = path.join(ROOT, 'bpf/lb_abi.h');

function gen(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'xdplb-abi-gen-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
/** A copy of lb_abi.h with `edit` applied; the edit must change the text. */
function editedHeader(edit: (text: string) => string): string {
  const text = fs.readFileSync(HEADER, 'utf8');
  const edited = edit(text);
  assert.notEqual(edited, text, 'the edit applies');
  const file = path.join(tmp, `lb_abi_${Math.random().toString(36).slice(2)}.h`);
  fs.writeFileSync(file, edited);
  return file;
}

describe('generated ABI bindings vs bpf/lb.o and bpf/lb_abi.h', () => {
  for (const [which, rel] of [['ts', 'src/dataplane/lb.generated.ts'], ['native', 'native/abi_layout.generated.h']] as const) {
    test(`${rel} is what the generator makes of the built lb.o (run node scripts/gen-abi.mjs)`, () => {
      const r = gen('--print', which);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(fs.readFileSync(path.join(ROOT, rel), 'utf8'), r.stdout, `${rel} is stale`);
    });
  }

  test('--check passes on the checked-in files', () => {
    const r = gen('--check');
    assert.equal(r.status, 0, r.stderr);
  });

  test('a new reason in the header changes the bindings (names and numbers together)', () => {
    const header = editedHeader((t) => t
      .replace('#define LB_REASON_COUNT 20', '#define LB_REASON_PROBE_ONLY 20 /* test */\n#define LB_REASON_COUNT 21'));
    const r = gen('--print', 'ts', '--header', header);
    assert.equal(r.status, 0, r.stderr);
    assert.notEqual(r.stdout, fs.readFileSync(path.join(ROOT, 'src/dataplane/lb.generated.ts'), 'utf8'));
    assert.match(r.stdout, /'probe_only', \/\/ 20: test/);
    assert.match(r.stdout, /REASON_COUNT: 21,/);
  });

  test('a reason count that disagrees with the reasons, or a gap in the numbers, is refused by name', () => {
    let r = gen('--print', 'ts', '--header', editedHeader((t) => t.replace('#define LB_REASON_COUNT 20', '#define LB_REASON_COUNT 19')));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^gen-abi: LB_REASON_COUNT is 19, but 20 LB_REASON_\* are defined$/m);
    r = gen('--print', 'ts', '--header', editedHeader((t) => t.replace('#define LB_REASON_VLAN 5', '#define LB_REASON_VLAN 25')));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^gen-abi: no LB_REASON_\* is 5 \(numbers must be dense from 0\)$/m);
  });

  test('a struct changed in the header but not rebuilt into lb.o is refused; one only the header has changes the bindings', () => {
    // lb_service is in lb.o's BTF: the header now disagrees with the object.
    let r = gen('--print', 'ts', '--header', editedHeader((t) => t.replace('\t__u8 flags;\n\t__u16 pad;\n};', '\t__u8 flags;\n\t__u16 pad;\n\t__u32 extra;\n};')));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^gen-abi: struct lb_service: lb\.o and lb_abi\.h disagree \(rebuild bpf\/lb\.o\)$/m);
    // lb_event reaches user space only through the ring buffer, so its layout comes from the header.
    r = gen('--print', 'ts', '--header', editedHeader((t) => t.replace('\t__u8 reason;        /* LB_REASON_* */\n\t__u8 family;', '\t__u8 reason;        /* LB_REASON_* */\n\t__u8 family;\n\t__u32 extra;')));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /lb_event: \{ cName: 'lb_event', size: 72,/);
    assert.match(r.stdout, /\{ c: 'extra', name: 'extra', kind: 'u32', offset: 64, size: 4 \}/);
    // lb_in6 members are the 'ipv6' kind (16 bytes, 4-aligned).
    assert.match(r.stdout, /\{ c: 'saddr', name: 'saddr', kind: 'ipv6', offset: 24, size: 16 \}/);
  });

  test('a missing object is one line naming it', () => {
    const r = gen('--print', 'ts', '--object', path.join(tmp, 'nope.o'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^gen-abi: cannot read the BTF of .*nope\.o/);
  });
});

describe('what the rest of the code takes from the generated file', () => {
  test('REASONS and XDP_ACTIONS are the generated lists, numbered as the header', () => {
    assert.equal(REASONS, LB_REASONS);
    assert.equal(XDP_ACTIONS, LB_ACTIONS);
    assert.equal(LB_REASONS.length, LB.REASON_COUNT);
    assert.equal(LB_REASONS.indexOf('bad_checksum'), LB.REASON_BAD_CHECKSUM);
    assert.deepEqual([...LB_ACTIONS], ['aborted', 'drop', 'pass', 'tx', 'redirect']);
  });

  test('maps: every pinned map is in lb.o, with its key/value structs; per-CPU and map-in-map as compiled', () => {
    for (const name of MAP_NAMES) assert.ok(name in LB_MAPS, `${name} is a map of lb.o`);
    assert.deepEqual(LB_MAPS.services.key, { kind: 'struct', struct: 'lb_service_key', size: 8 });
    assert.equal(LB_MAPS.service_stats.perCpu, true);
    assert.equal(LB_MAPS.backends.perCpu, false);
    assert.equal(LB_MAPS.maglev.type, 'array_of_maps');
    assert.equal(LB_MAPS.maglev.inner?.maxEntries, LB.MAGLEV_DEFAULT_SIZE);
    assert.equal(LB_MAPS.events.type, 'ringbuf');
    assert.equal(LB_MAPS.flows.maxEntries, LB.MAX_FLOWS / LB.FLOW_WAYS);
    assert.equal(LB_MAPS.flows6.maxEntries, LB.MAX_FLOWS6 / LB.FLOW_WAYS);
    assert.deepEqual(LB_MAPS.vips6.key, { kind: 'ipv6', size: 16 });
    assert.deepEqual(LB_MAPS.services6.key, { kind: 'struct', struct: 'lb_service6_key', size: 20 });
    for (const m of Object.values(LB_MAPS)) {
      for (const slot of [m.key, m.value]) {
        if (slot && slot.kind === 'struct') assert.equal(LB_LAYOUTS[slot.struct as keyof typeof LB_LAYOUTS].size, slot.size);
      }
    }
  });

  test('globals: the ones lbLoadOptions sets, with their sizes', () => {
    assert.deepEqual(LB_GLOBALS.hash_seed, { section: '.rodata', linkage: 'global', kind: 'u32', size: 4 });
    assert.equal(LB_GLOBALS.nexthop_ttl_ns.size, 8);
    assert.equal(LB_GLOBALS.flow_sets_mask.size, 4);
    assert.equal(LB_GLOBALS.flow_sets_mask6.size, 4);
  });
});
