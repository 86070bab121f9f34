#!/usr/bin/env node
// gen-abi.mjs: generates the TypeScript bindings of bpf/lb.o from its BTF and bpf/lb_abi.h.
//
//   node scripts/gen-abi.mjs           write src/dataplane/lb.generated.ts and
//                                      native/abi_layout.generated.h (only when they change)
//   node scripts/gen-abi.mjs --check   exit 1, naming the file, when a checked-in file differs
//   node scripts/gen-abi.mjs --print ts|native   the text on stdout (the drift test compares it)
//   --object FILE / --header FILE      another object / header than bpf/lb.o / bpf/lb_abi.h
//
// Inputs: the BTF of bpf/lb.o (`bpftool -j btf dump file bpf/lb.o format raw`): the layout of
// every struct, the .maps section (map name, type, key/value, max_entries, flags, inner map) and
// the data sections (.rodata/.bss/.data globals); and bpf/lb_abi.h: the LB_* #defines, which
// structs form the ABI (every `struct lb_* {` of the header) and their order. A header struct the
// program uses only through a pointer (lb_event, written into the ring buffer) has no BTF in
// lb.o: its layout comes from a probe object compiled from lb_abi.h by the same clang with the
// same flags (bpf/Makefile), and a struct in both must agree.
// Field kinds come from the member's C type: __be32 = 'ipv4' (a network-order IPv4 address),
// __be16 = 'be16', lb_in6 = 'ipv6' (16 network-order bytes, canonical RFC 5952 text in TS),
// __u8/__u16/__u32/__u64 = host order, a member named pad* = 'pad', a struct member = 'struct',
// an array = its element's kind with `count`.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OUTPUTS = {
  ts: 'src/dataplane/lb.generated.ts',
  native: 'native/abi_layout.generated.h',
};

class GenError extends Error {}
const fail = (msg) => { throw new GenError(`gen-abi: ${msg}`); };

/** Raw BTF of an object as bpftool prints it (types indexed by id). */
/** bpftool: $BPFTOOL, else on PATH, else /usr/sbin or /sbin (not on a Debian user's PATH). */
function bpftool() {
  if (process.env.BPFTOOL) return process.env.BPFTOOL;
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/sbin'];
  for (const d of dirs) if (fs.existsSync(path.join(d, 'bpftool'))) return path.join(d, 'bpftool');
  return 'bpftool';
}

function readBtf(objectPath) {
  let out;
  try {
    out = execFileSync(bpftool(), ['-j', 'btf', 'dump', 'file', objectPath, 'format', 'raw'], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    fail(`cannot read the BTF of ${objectPath} (bpftool: ${String(err.stderr || err.message).trim().split('\n')[0]})`);
  }
  const types = [null];
  for (const t of JSON.parse(out).types) types[t.id] = t;
  return types;
}

/** The `#define LB_NAME value` lines of the header, in order, values evaluated. */
function headerConstants(text) {
  const noComments = text.replace(/\/\*[\s\S]*?\*\//g, '');
  const out = [];
  const known = new Map();
  for (const m of noComments.matchAll(/^#define\s+LB_(\w+)\s+(.+?)\s*$/gm)) {
    const expr = m[2].replace(/\bLB_(\w+)\b/g, (_, n) => {
      if (!known.has(n)) fail(`LB_${m[1]}: LB_${n} is not defined above it`);
      return `(${known.get(n)})`;
    });
    if (!/^[\d\s()<>|+*-]+$/.test(expr)) fail(`LB_${m[1]}: cannot evaluate "${m[2]}" (integers, + - * | << >> and earlier LB_ constants only)`);
    const value = Function(`"use strict"; return (${expr});`)();
    if (!Number.isSafeInteger(value)) fail(`LB_${m[1]} = ${value} is not an integer`);
    known.set(m[1], value);
    out.push({ name: m[1], value, comment: firstComment(text, m[1]) });
  }
  return out;
}

/** The comment on the `#define LB_name` line, first line of it only ('' when none). */
function firstComment(text, name) {
  const m = text.match(new RegExp(`^#define\\s+LB_${name}\\s+[^\\n]*?/\\*\\s*(.*?)\\s*(\\*/|$)`, 'm'));
  if (!m) return '';
  return m[1].replace(/\s+/g, ' ') + (m[2] === '*/' ? '' : ' ...');
}

const camel = (c) => c.replace(/_([a-z0-9])/g, (_, ch) => ch.toUpperCase());
const pascal = (c) => camel(c).replace(/^[a-z]/, (ch) => ch.toUpperCase());
const SCALARS = { __u8: 'u8', __u16: 'u16', __u32: 'u32', __u64: 'u64', __be16: 'be16', __be32: 'ipv4', lb_in6: 'ipv6' };
const KIND_SIZE = { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, ipv4: 4, ipv6: 16 };
/** C alignment of a scalar kind (lb_in6 is four __be32 words). */
const KIND_ALIGN = { ...KIND_SIZE, ipv6: 4 };
const MAP_TYPES = {
  1: 'hash', 2: 'array', 3: 'prog_array', 4: 'perf_event_array', 5: 'percpu_hash', 6: 'percpu_array',
  9: 'lru_hash', 10: 'lru_percpu_hash', 11: 'lpm_trie', 12: 'array_of_maps', 13: 'hash_of_maps',
  14: 'devmap', 17: 'cpumap', 25: 'devmap_hash', 27: 'ringbuf',
};

/** Skips const/volatile/restrict. */
function unqualified(types, id) {
  let t = types[id];
  while (t && ['CONST', 'VOLATILE', 'RESTRICT'].includes(t.kind)) t = types[t.type_id];
  return t;
}

/** A type as a field kind: {kind, size, count?, struct?}. @throws for what the ABI does not use */
function kindOf(types, id, where) {
  let t = unqualified(types, id);
  if (t.kind === 'ARRAY') {
    const elem = kindOf(types, t.type_id, where);
    if (elem.count !== undefined) fail(`${where}: arrays of arrays are not supported`);
    return { ...elem, count: t.nr_elems, size: elem.size * t.nr_elems };
  }
  while (t.kind === 'TYPEDEF') {
    if (SCALARS[t.name]) return { kind: SCALARS[t.name], size: KIND_SIZE[SCALARS[t.name]] };
    t = unqualified(types, t.type_id);
  }
  if (t.kind === 'STRUCT') return { kind: 'struct', struct: t.name, size: t.size };
  if (t.kind === 'INT' && t.encoding !== 'SIGNED' && [1, 2, 4, 8].includes(t.size)) {
    const kind = { 1: 'u8', 2: 'u16', 4: 'u32', 8: 'u64' }[t.size];
    return { kind, size: t.size };
  }
  return fail(`${where}: unsupported member type ${t.kind} '${t.name}' (use __u8/__u16/__u32/__u64/__be16/__be32/lb_in6 or a struct)`);
}

function findStruct(types, name) {
  return types.find((t) => t && t.kind === 'STRUCT' && t.name === name) ?? null;
}

/** The comment just above `struct name {` in the header, on one line ('' when none). */
function structComment(text, name) {
  const m = text.match(new RegExp(`/\\*((?:(?!\\*/)[\\s\\S])*)\\*/\\s*\\nstruct\\s+${name}\\s*\\{`));
  return m ? m[1].replace(/\n\s*\*?/g, ' ').replace(/\s+/g, ' ').trim() : '';
}

/** member name -> the comment on its line in `struct name { ... }` (first line, '' when none). */
function memberComments(text, name) {
  const body = text.match(new RegExp(`^struct\\s+${name}\\s*\\{([\\s\\S]*?)^\\};`, 'm'));
  const out = new Map();
  if (!body) return out;
  for (const m of body[1].matchAll(/^\s*[\w ]+?\s+(\w+)(?:\[[^\]]*\])?;[ \t]*\/\*\s*(.*?)\s*(\*\/|$)/gm)) {
    out.set(m[1], m[2].replace(/\s+/g, ' ') + (m[3] === '*/' ? '' : ' ...'));
  }
  return out;
}

/** The layout of struct `name` from one BTF. */
function structLayout(types, t) {
  const fields = t.members.map((m) => {
    const where = `struct ${t.name}.${m.name}`;
    if (m.bitfield_size) fail(`${where}: bitfields are not supported in the ABI`);
    if (m.bits_offset % 8) fail(`${where}: not byte aligned`);
    const k = kindOf(types, m.type_id, where);
    const offset = m.bits_offset / 8;
    if (/^pad\d*$/.test(m.name)) return { c: m.name, name: '', kind: 'pad', offset, size: k.size };
    return { c: m.name, name: camel(m.name), kind: k.kind, offset, size: k.size, ...(k.count !== undefined ? { count: k.count } : {}), ...(k.struct ? { struct: k.struct } : {}) };
  });
  return { cName: t.name, size: t.size, fields };
}

function compileProbe(header, names) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xdplb-gen-abi-'));
  try {
    const source = path.join(dir, 'probe.bpf.c');
    fs.writeFileSync(source, `#include <linux/types.h>\n#include ${JSON.stringify(path.resolve(header))}\n${names.map((n) => `struct ${n} probe_${n};`).join('\n')}\n`);
    const object = path.join(dir, 'probe.o');
    const triple = `${{ x64: 'x86_64', arm64: 'aarch64' }[process.arch] ?? process.arch}-linux-gnu`;
    try {
      execFileSync(process.env.CLANG || 'clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${triple}`, '-I', path.dirname(header), '-c', source, '-o', object], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      fail(`cannot compile ${path.relative(ROOT, header)} for its BTF: ${String(err.stderr || err.message).trim().split('\n')[0]}`);
    }
    return readBtf(object);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The generated texts for an object and its header: { ts, native }. @throws GenError */
export function generate(objectPath = path.join(ROOT, 'bpf/lb.o'), headerPath = path.join(ROOT, 'bpf/lb_abi.h')) {
  const headerText = fs.readFileSync(headerPath, 'utf8');
  const types = readBtf(objectPath);
  const constants = headerConstants(headerText);
  const constant = new Map(constants.map((c) => [c.name, c.value]));

  // Reasons and actions: names and numbers together, dense from 0.
  const enumOf = (prefix, skip) => {
    const rows = constants.filter((c) => c.name.startsWith(prefix) && !skip.includes(c.name));
    const names = [];
    for (const r of rows) {
      if (names[r.value] !== undefined) fail(`LB_${r.name} = ${r.value} repeats LB_${prefix}${names[r.value].toUpperCase()}`);
      names[r.value] = r.name.slice(prefix.length).toLowerCase();
    }
    for (let i = 0; i < names.length; i++) if (names[i] === undefined) fail(`no LB_${prefix}* is ${i} (numbers must be dense from 0)`);
    return rows.slice().sort((a, b) => a.value - b.value).map((r) => ({ name: r.name.slice(prefix.length).toLowerCase(), value: r.value, comment: r.comment }));
  };
  const reasons = enumOf('REASON_', ['REASON_COUNT', 'REASON_SLOTS']);
  const actions = enumOf('ACTION_', ['ACTION_SLOTS']);
  if (constant.get('REASON_COUNT') !== reasons.length) fail(`LB_REASON_COUNT is ${constant.get('REASON_COUNT')}, but ${reasons.length} LB_REASON_* are defined`);
  if (reasons.length > constant.get('REASON_SLOTS')) fail('more reasons than LB_REASON_SLOTS');
  if (actions.length > constant.get('ACTION_SLOTS')) fail('more actions than LB_ACTION_SLOTS');

  // Structs of the header, in header order; layouts from lb.o, else from the probe.
  const names = [...headerText.matchAll(/^struct\s+(\w+)\s*\{/gm)].map((m) => m[1]);
  const missing = names.filter((n) => !findStruct(types, n));
  const probe = missing.length ? compileProbe(headerPath, names) : null;
  const layouts = names.map((n) => {
    const t = findStruct(types, n) ?? findStruct(probe, n);
    if (!t) fail(`struct ${n} is in the header but in no BTF`);
    const layout = { ...structLayout(types.includes(t) ? types : probe, t), btf: types.includes(t) ? 'lb.o' : 'lb_abi.h' };
    if (probe && findStruct(probe, n) && layout.btf === 'lb.o') {
      const again = structLayout(probe, findStruct(probe, n));
      if (JSON.stringify(again) !== JSON.stringify(structLayout(types, t))) fail(`struct ${n}: lb.o and lb_abi.h disagree (rebuild bpf/lb.o)`);
    }
    return { ...layout, comment: structComment(headerText, n), memberComments: memberComments(headerText, n) };
  });
  const byName = new Map(layouts.map((l) => [l.cName, l]));
  for (const l of layouts) {
    for (const f of l.fields) if (f.kind === 'struct' && !byName.has(f.struct)) fail(`struct ${l.cName}.${f.c}: struct ${f.struct} is not declared in the header`);
    l.align = Math.max(1, ...l.fields.map((f) => (f.kind === 'pad' ? 1 : f.kind === 'struct' ? byName.get(f.struct).align : KIND_ALIGN[f.kind])));
  }

  // Maps (.maps) and globals (.rodata / .bss / .data).
  const datasec = (name) => types.find((t) => t && t.kind === 'DATASEC' && t.name === name);
  const mapsSec = datasec('.maps');
  if (!mapsSec) fail(`${objectPath} has no .maps section in its BTF`);
  const slot = (def, member) => {
    const m = def.members.find((x) => x.name === member);
    if (!m) return undefined;
    const ptr = types[m.type_id];
    return ptr.kind === 'PTR' ? unqualified(types, ptr.type_id) : ptr;
  };
  const number = (def, member) => {
    const t = slot(def, member);
    return t === undefined ? undefined : t.nr_elems;
  };
  const keyValue = (def, member, where) => {
    const t = slot(def, member);
    if (t === undefined) {
      const size = number(def, `${member}_size`);
      return size === undefined ? null : { kind: 'bytes', size };
    }
    const k = kindOf(types, types.indexOf(t), where);
    if (k.kind === 'struct' && !byName.has(k.struct)) return { kind: 'bytes', size: k.size, struct: k.struct };
    return k;
  };
  const mapDef = (def, name) => {
    const typeNo = number(def, 'type');
    const type = MAP_TYPES[typeNo] ?? fail(`map ${name}: unknown map type ${typeNo}`);
    const values = def.members.find((m) => m.name === 'values');
    let inner = null;
    if (values) {
      const arr = types[values.type_id];
      const innerDef = unqualified(types, types[arr.type_id].type_id);
      inner = mapDef(innerDef, `${name} (inner)`);
    }
    return {
      type, perCpu: type.includes('percpu'),
      key: keyValue(def, 'key', `map ${name} key`),
      value: values ? { kind: 'u32', size: 4 } : keyValue(def, 'value', `map ${name} value`),
      maxEntries: number(def, 'max_entries') ?? 0,
      flags: number(def, 'map_flags') ?? 0,
      inner,
    };
  };
  const maps = mapsSec.vars.map((v) => {
    const variable = types[v.type_id];
    return { name: variable.name, ...mapDef(unqualified(types, variable.type_id), variable.name) };
  });
  const globals = [];
  for (const sec of ['.rodata', '.data', '.bss']) {
    const s = datasec(sec);
    if (!s) continue;
    for (const v of s.vars) {
      const variable = types[v.type_id];
      const k = kindOf(types, variable.type_id, `global ${variable.name}`);
      globals.push({ name: variable.name, section: sec, linkage: variable.linkage, ...k });
    }
  }
  return { ts: renderTs({ constants, reasons, actions, layouts, maps, globals }), native: renderNative(layouts) };
}

const q = (s) => `'${s}'`;
const obj = (o) => `{ ${Object.entries(o).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}: ${typeof v === 'string' ? q(v) : v === null ? 'null' : typeof v === 'object' ? obj(v) : v}`).join(', ')} }`;
const HEAD = 'Generated by scripts/gen-abi.mjs from the BTF of bpf/lb.o and bpf/lb_abi.h: do not edit.\n' +
  'Change bpf/lb_abi.h (or bpf/maps.h, bpf/lb.bpf.c), then run `bash scripts/build.sh` (or `node scripts/gen-abi.mjs` after `make -C bpf`).';

function tsType(f, byName) {
  const one = f.kind === 'ipv4' || f.kind === 'ipv6' ? 'string' : f.kind === 'struct' ? pascal(f.struct) : 'number';
  return f.count !== undefined ? `${one}[]` : one;
}

function renderTs({ constants, reasons, actions, layouts, maps, globals }) {
  const L = [];
  L.push(`/*\n * ${HEAD.replace(/\n/g, '\n * ')}\n */`, '');
  L.push('/** The LB_* #defines of bpf/lb_abi.h. */', 'export const LB = {');
  for (const c of constants) L.push(`  ${c.name}: ${c.value},${c.comment ? ` // ${c.comment}` : ''}`);
  L.push('} as const;', '');
  L.push('/** Verdict reasons by number (LB_REASON_*): lb_event.reason and the verdict_stats row. */', 'export const LB_REASONS = [');
  for (const r of reasons) L.push(`  '${r.name}', // ${r.value}${r.comment ? `: ${r.comment}` : ''}`);
  L.push('] as const;', '');
  L.push('/** XDP actions by number (LB_ACTION_*, the kernel\'s enum xdp_action): lb_event.action and the verdict_stats column. */', 'export const LB_ACTIONS = [');
  for (const a of actions) L.push(`  '${a.name}', // ${a.value}`);
  L.push('] as const;', '');
  L.push('/** How a field\'s bytes map to a JS value: `ipv4` is a network-order __be32 address (dotted quad),',
    ' * `ipv6` a 16-byte lb_in6 address (canonical RFC 5952 text), `be16` a network-order __be16, u8..u64',
    ' * host order, `struct` a nested struct (or an array of them). */',
    "export type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'ipv4' | 'ipv6' | 'pad' | 'struct';", '');
  L.push('export interface FieldLayout {',
    '  /** member name in lb_abi.h */', '  readonly c: string;',
    "  /** property name in the decoded object ('' for padding) */", '  readonly name: string;',
    '  readonly kind: FieldKind;', '  readonly offset: number;', '  /** bytes, the whole array for an array */', '  readonly size: number;',
    '  /** element count when the member is an array */', '  readonly count?: number;',
    "  /** kind 'struct': the member's struct */", '  readonly struct?: string;', '}', '');
  L.push('export interface StructLayout {', '  readonly cName: string;', '  readonly size: number;',
    '  /** C alignment (the widest scalar member) */', '  readonly align: number;',
    "  /** where the layout was read: lb.o's BTF, or (a struct lb.o uses only through a pointer) the header's */",
    "  readonly btf: 'lb.o' | 'lb_abi.h';", '  readonly fields: readonly FieldLayout[];', '}', '');
  for (const l of layouts) {
    if (l.comment) L.push(`/** struct ${l.cName}: ${l.comment.replace(/\*\//g, '* /')} */`);
    L.push(`export interface ${pascal(l.cName)} {`);
    for (const f of l.fields) {
      if (f.kind === 'pad') continue;
      const doc = l.memberComments.get(f.c);
      if (doc) L.push(`  /** ${doc.replace(/\*\//g, '* /')} */`);
      L.push(`  ${f.name}: ${tsType(f)};`);
    }
    L.push('}');
  }
  L.push('');
  L.push('/** Every struct of bpf/lb_abi.h in header order, as the compiler laid it out. */', 'export const LB_LAYOUTS = {');
  for (const l of layouts) {
    L.push(`  ${l.cName}: { cName: '${l.cName}', size: ${l.size}, align: ${l.align}, btf: '${l.btf}', fields: [`);
    for (const f of l.fields) L.push(`    ${obj(f)},`);
    L.push('  ] },');
  }
  L.push('} as const satisfies Record<string, StructLayout>;', 'export type LbStructName = keyof typeof LB_LAYOUTS;', '');
  L.push('/** The struct types by C name. */', 'export interface LbStructs {');
  for (const l of layouts) L.push(`  ${l.cName}: ${pascal(l.cName)};`);
  L.push('}', '');
  L.push("/** A map's key or value: a struct of the header, a scalar, or bytes the ABI does not describe. */",
    "export type MapSlot = { readonly kind: FieldKind | 'bytes'; readonly size: number; readonly struct?: string; readonly count?: number };",
    'export interface MapLayout {', '  readonly type: string;', '  readonly perCpu: boolean;',
    '  readonly key: MapSlot | null;', '  readonly value: MapSlot | null;',
    '  /** as compiled (user space may resize before load) */', '  readonly maxEntries: number;', '  readonly flags: number;',
    '  /** map-in-map: the inner map template */', '  readonly inner: MapLayout | null;', '}', '');
  L.push('/** Every map of bpf/lb.o (its .maps section). */', 'export const LB_MAPS = {');
  for (const m of maps) {
    const { name, ...rest } = m;
    L.push(`  ${name}: ${obj(rest)},`);
  }
  L.push('} as const satisfies Record<string, MapLayout>;', 'export type LbMapName = keyof typeof LB_MAPS;', '');
  const slotType = (s) => (s === null ? 'never' : s.kind === 'bytes' ? 'Uint8Array' : tsType(s));
  L.push('/** Key and value types of every map (Uint8Array: bytes the ABI does not describe; never: no key/value). */', 'export interface LbMapTypes {');
  for (const m of maps) L.push(`  ${m.name}: { key: ${slotType(m.key)}; value: ${slotType(m.value)} };`);
  L.push('}', '');
  L.push('/** Every global variable of bpf/lb.o (.rodata, .data, .bss): set before load by name. */', 'export const LB_GLOBALS = {');
  for (const g of globals) {
    const { name, ...rest } = g;
    L.push(`  ${name}: ${obj(rest)},`);
  }
  L.push('} as const;', 'export type LbGlobalName = keyof typeof LB_GLOBALS;', '');
  return L.join('\n');
}

function renderNative(layouts) {
  const L = [`// ${HEAD.replace(/\n/g, '\n// ')}`, '// Included by abi_asserts.cc: the host compiler must lay lb_abi.h out as clang did for BPF.', ''];
  for (const l of layouts) {
    L.push(`static_assert(sizeof(struct ${l.cName}) == ${l.size}, "${l.cName} size");`);
    for (const f of l.fields) L.push(`ABI_FIELD(${l.cName}, ${f.c}, ${f.offset}, ${f.size});`);
    L.push('');
  }
  return L.join('\n');
}

function main(args) {
  const option = (name) => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const value = args[i + 1];
    if (value === undefined) fail(`${name} wants a path`);
    args.splice(i, 2);
    return path.resolve(value);
  };
  const object = option('--object');
  const header = option('--header');
  const argv = args;
  if (argv.length && !['--print', '--check'].includes(argv[0])) fail(`unknown argument ${argv[0]} (--check, --print ts|native, --object FILE, --header FILE)`);
  const out = generate(object, header);
  if (argv[0] === '--print') {
    if (!(argv[1] in OUTPUTS)) fail(`--print wants one of ${Object.keys(OUTPUTS).join(', ')}`);
    process.stdout.write(out[argv[1]]);
    return 0;
  }
  let stale = 0;
  for (const [which, rel] of Object.entries(OUTPUTS)) {
    const file = path.join(ROOT, rel);
    const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (current === out[which]) continue;
    if (argv[0] === '--check') {
      console.error(`gen-abi: ${rel} does not match bpf/lb.o and bpf/lb_abi.h: run node scripts/gen-abi.mjs`);
      stale++;
    } else {
      fs.writeFileSync(file, out[which]);
      console.error(`gen-abi: wrote ${rel}`);
    }
  }
  return stale ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof GenError)) throw err;
    console.error(err.message);
    process.exitCode = 2;
  }
}
