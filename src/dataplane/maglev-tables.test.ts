/**
 * In-place Maglev table writes (issue 16): the bridge's mapped stores and reads
 * (BpfMap.storeWords/readWords) and writeMaglevSlotsFlat() on mmapable tables and, as for a data
 * plane adopted from an older build's pins, on tables that are not (batch updates). Root; maps
 * only (no pins, namespaces or ports).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BpfMap, BPF_F_INNER_MAP, BPF_F_MMAPABLE, repoRoot } from '../bpf';
import { createMaglevTable, InnerTableMappings, MaglevOuterMaps, readMaglevTable, TrackedOuterMap, writeMaglevSlotsFlat, SLOT, SLOT_WORDS } from './maglev-tables';
import { LB, encodeU32 } from './abi';

describe('mapped stores into a BPF_F_MMAPABLE array', () => {
  test('storeWords writes u32 words at entry strides of round_up(value size, 8); readWords reads them back', () => {
    const m = BpfMap.create({ type: 'array', name: 'xlbk_mm', keySize: 4, valueSize: 12, maxEntries: 1000, flags: BPF_F_MMAPABLE });
    try {
      assert.equal(m.mmapable, true);
      assert.equal(m.dataBytes, 16 * 1000);
      m.storeWords(Uint32Array.of(4 * 7, 4 * 7 + 1, 4 * 7 + 2, 4 * 999 + 2), Uint32Array.of(11, 22, 0x0133, 0xffffffff));
      const v = m.lookup(encodeU32(7))!;
      assert.deepEqual([v.readUInt32LE(0), v.readUInt32LE(4), v.readUInt32LE(8)], [11, 22, 0x0133]);
      assert.equal(m.lookup(encodeU32(999))!.readUInt32LE(8), 0xffffffff);
      // And what a syscall wrote is what a mapping reads.
      const w = Buffer.alloc(12); w.writeUInt32LE(5, 0);
      m.update(encodeU32(3), w);
      const words = m.readWords();
      assert.equal(words.length, 4 * 1000);
      assert.equal(words[4 * 3], 5);
      assert.equal(words[4 * 7 + 1], 22);
    } finally { m.close(); }
  });

  test('bad input: a map that is not mmapable, an offset beyond the data, unequal lengths; nothing written', () => {
    const plain = BpfMap.create({ type: 'array', name: 'xlbk_plain', keySize: 4, valueSize: 4, maxEntries: 8 });
    const m = BpfMap.create({ type: 'array', name: 'xlbk_mm2', keySize: 4, valueSize: 4, maxEntries: 8, flags: BPF_F_MMAPABLE });
    try {
      assert.throws(() => plain.storeWords(Uint32Array.of(0), Uint32Array.of(1)), /not a BPF_F_MMAPABLE array/);
      assert.throws(() => plain.readWords(), /not a BPF_F_MMAPABLE array/);
      // 8 entries of 8 bytes: u32 offsets 0..15.
      assert.throws(() => m.storeWords(Uint32Array.of(0, 16), Uint32Array.of(1, 2)), /offset 16 beyond the mapped words/);
      assert.throws(() => m.storeWords(Uint32Array.of(0, 2), Uint32Array.of(1)), /as many offsets as values/);
      assert.ok(m.readWords().every((x) => x === 0), 'a refused store writes nothing');
    } finally { plain.close(); m.close(); }
  });
  test('storeSlots through kept mappings: marks, then ids (moved bit), then unmarks; a slot beyond either table or a closed mapping is refused, nothing written', () => {
    const ids = BpfMap.create({ type: 'array', name: 'xlbk_si', keySize: 4, valueSize: 4, maxEntries: 16, flags: BPF_F_MMAPABLE });
    const marks = BpfMap.create({ type: 'array', name: 'xlbk_sm', keySize: 4, valueSize: 12, maxEntries: 8, flags: BPF_F_MMAPABLE });
    const idWords = ids.mapData();
    const markWords = marks.mapData();
    try {
      // Slot 2 moved (prev 4), slot 3 not (its old mark zeroed); ids every 2 words, marks every 4.
      assert.equal(idWords.storeSlots(markWords, Uint32Array.of(2, 3), Uint32Array.of(7, 4, 9, 0x105, 8, 0, 0, 0), 2, 4, LB.SLOT_MOVED), true);
      assert.equal(ids.lookup(encodeU32(2))!.readUInt32LE(0), (7 | LB.SLOT_MOVED) >>> 0);
      assert.equal(ids.lookup(encodeU32(3))!.readUInt32LE(0), 8);
      const m2 = marks.lookup(encodeU32(2))!;
      assert.deepEqual([m2.readUInt32LE(0), m2.readUInt32LE(4), m2.readUInt32LE(8)], [4, 9, 0x105]);
      const before = [ids.readWords().slice(), marks.readWords().slice()];
      // Slot 8 is inside the ids (16) but beyond the marks (8); slot 16 beyond both.
      assert.throws(() => idWords.storeSlots(markWords, Uint32Array.of(1, 8), Uint32Array.of(1, 0, 0, 0, 2, 0, 0, 0), 2, 4, LB.SLOT_MOVED), /slot 8 beyond the mapped marks/);
      assert.throws(() => idWords.storeSlots(null, Uint32Array.of(1, 16), Uint32Array.of(1, 0, 0, 0, 2, 0, 0, 0), 2, 4, LB.SLOT_MOVED), /slot 16 beyond the mapped table/);
      assert.throws(() => idWords.storeSlots(null, Uint32Array.of(1, 2), Uint32Array.of(1, 0, 0, 0), 2, 4, LB.SLOT_MOVED), /4 words per slot/);
      // A moved slot and no marks: false.
      assert.equal(idWords.storeSlots(null, Uint32Array.of(1), Uint32Array.of(1, 3, 0, 1), 2, 4, LB.SLOT_MOVED), false);
      assert.deepEqual([ids.readWords(), marks.readWords()], before, 'refused stores wrote nothing');
      markWords.close();
      assert.throws(() => idWords.storeSlots(markWords, Uint32Array.of(1), Uint32Array.of(1, 0, 0, 0), 2, 4, LB.SLOT_MOVED), /EBADF|unmapped/);
    } finally {
      idWords.close();
      markWords.close();
      ids.close();
      marks.close();
    }
  });
});

describe('writeMaglevSlotsFlat on installed tables', () => {
  for (const mmapable of [true, false]) {
    test(`${mmapable ? 'mmapable tables (mapped stores)' : 'tables of an older build (batch updates)'}: marks, ids and unmarks land; the tables read back equal`, () => {
      const flags = BPF_F_INNER_MAP | (mmapable ? BPF_F_MMAPABLE : 0);
      const tmplIds = BpfMap.create({ type: 'array', name: 'xlbk_ti', keySize: 4, valueSize: 4, maxEntries: 1, flags });
      const tmplMarks = BpfMap.create({ type: 'array', name: 'xlbk_tm', keySize: 4, valueSize: 12, maxEntries: 1, flags });
      const outer = BpfMap.create({ type: 'array_of_maps', name: 'xlbk_om', keySize: 4, valueSize: 4, maxEntries: 4, innerMapFd: tmplIds.fd });
      const outerMarks = BpfMap.create({ type: 'array_of_maps', name: 'xlbk_omm', keySize: 4, valueSize: 4, maxEntries: 4, innerMapFd: tmplMarks.fd });
      try {
        const size = 251;
        const slots = new Uint32Array(size * SLOT_WORDS);
        for (let i = 0; i < size; i++) slots[i * SLOT_WORDS] = 1 + (i % 3);
        slots[5 * SLOT_WORDS + SLOT.prev] = 2; slots[5 * SLOT_WORDS + SLOT.epoch] = 9; slots[5 * SLOT_WORDS + SLOT.seenFlags] = 0x101;
        const inner = createMaglevTable(slots, true, flags);
        outerMarks.update(encodeU32(1), encodeU32(inner.marksFd!));
        outer.update(encodeU32(1), encodeU32(inner.fd));
        inner.close();
        const ids = outer.lookup(encodeU32(1))!;
        const marks = outerMarks.lookup(encodeU32(1))!;
        assert.deepEqual(readMaglevTable(ids, marks), slots, 'created as given');
        // Slot 7 gets a mark (moved to 3 from 2), slot 5 loses its mark, slot 9 changes backend.
        const next = Uint32Array.from(slots);
        next.set([3, 2, 10, 0x101], 7 * SLOT_WORDS);
        next.set([next[5 * SLOT_WORDS], 0, 0, 0], 5 * SLOT_WORDS);
        next[9 * SLOT_WORDS] = 3;
        const indices = Uint32Array.of(5, 7, 9);
        const words = new Uint32Array(indices.length * SLOT_WORDS);
        indices.forEach((i, k) => words.set(next.subarray(i * SLOT_WORDS, (i + 1) * SLOT_WORDS), k * SLOT_WORDS));
        assert.equal(writeMaglevSlotsFlat(ids, marks, indices, words), true);
        assert.deepEqual(readMaglevTable(ids, marks), next, 'the kernel holds the new slots');
        const raw = BpfMap.fromId(ids.readUInt32LE(0));
        try {
          assert.equal(raw.lookup(encodeU32(7))!.readUInt32LE(0), (3 | LB.SLOT_MOVED) >>> 0, 'a marked slot says moved');
          assert.equal(raw.lookup(encodeU32(5))!.readUInt32LE(0), next[5 * SLOT_WORDS], 'an unmarked slot does not');
        } finally { raw.close(); }
        // A slot that would need a mark, with no marks table: refused, nothing written.
        assert.equal(writeMaglevSlotsFlat(ids, null, Uint32Array.of(11), Uint32Array.of(3, 1, 4, 1)), false);
        assert.deepEqual(readMaglevTable(ids, marks), next);
      } finally {
        for (const m of [outer, outerMarks, tmplIds, tmplMarks]) m.close();
      }
    });
  }
});

describe('which inner tables a data plane takes (meta flags)', () => {
  test('a fresh load pins "mmapable tables"; pins without the flag (an older build) adopt as not mmapable', async () => {
    const { Dataplane } = await import('./dataplane');
    const fs = await import('node:fs');
    const path = await import('node:path');
    const pin = '/sys/fs/bpf/xlbk-mt';
    fs.rmSync(pin, { recursive: true, force: true });
    const dp = Dataplane.load({ hashSeed: 1, maxServices: 8, maxBackends: 32, maxFlows: 256, pinDir: pin });
    try {
      assert.equal(dp.innerTableFlags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
      const adopted = Dataplane.adopt(pin)!;
      assert.equal(adopted.innerTableFlags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
      adopted.close();
      const meta = BpfMap.fromPin(path.join(pin, 'meta'));
      const value = meta.lookup(encodeU32(0))!;
      value.writeUInt32LE(0, 12);
      meta.update(encodeU32(0), value);
      meta.close();
      const older = Dataplane.adopt(pin)!;
      assert.equal(older.innerTableFlags, BPF_F_INNER_MAP);
      older.close();
      // Another object file is asked (a one-entry table at outer index 0, which no service uses).
      const os = await import('node:os');
      const copy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'xlbk-obj-')), 'lb.o');
      fs.copyFileSync(path.join(repoRoot(), 'bpf', 'lb.o'), copy);
      const other = Dataplane.load({ hashSeed: 1, maxServices: 8, maxBackends: 32, maxFlows: 256, objectPath: copy });
      try {
        assert.equal(other.innerTableFlags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
        assert.equal(other.map('maglev').lookup(encodeU32(0)), null, 'the probe table is gone again');
      } finally {
        other.close();
        fs.rmSync(path.dirname(copy), { recursive: true, force: true });
      }
    } finally {
      dp.unpin();
      dp.close();
      fs.rmSync(pin, { recursive: true, force: true });
    }
  });
});

describe('kept mappings of installed tables (InnerTableMappings, issue 16)', () => {
  const mapGone = async (id: number): Promise<boolean> => {
    for (let i = 0; i < 250; i++) {   // freed after an RCU grace period: up to 5 s
      try { BpfMap.fromId(id).close(); } catch { return true; }
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  };
  const slotOf = (id: number, i: number): number => {
    const m = BpfMap.fromId(id);
    try { return m.lookup(encodeU32(i))!.readUInt32LE(0); } finally { m.close(); }
  };
  const one = (i: number, backend: number) => ({ indices: Uint32Array.of(i), words: Uint32Array.of(backend, 0, 0, 0) });

  test('writes go through a kept mapping; after a swap to a new inner table a write goes to the new one, the old mapping is dropped and the old table freed', async () => {
    const flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE;
    const tmplIds = BpfMap.create({ type: 'array', name: 'xlbq_ti', keySize: 4, valueSize: 4, maxEntries: 1, flags });
    const tmplMarks = BpfMap.create({ type: 'array', name: 'xlbq_tm', keySize: 4, valueSize: 12, maxEntries: 1, flags });
    const outer = BpfMap.create({ type: 'array_of_maps', name: 'xlbq_om', keySize: 4, valueSize: 4, maxEntries: 4, innerMapFd: tmplIds.fd });
    const outerMarks = BpfMap.create({ type: 'array_of_maps', name: 'xlbq_omm', keySize: 4, valueSize: 4, maxEntries: 4, innerMapFd: tmplMarks.fd });
    const mappings = new InnerTableMappings();
    const tables = new MaglevOuterMaps(outer, null, mappings);
    const marksMap = new TrackedOuterMap(outerMarks, mappings);
    const key = encodeU32(1);
    const install = (backend: number): number => {
      const slots = new Uint32Array(251 * SLOT_WORDS);
      for (let i = 0; i < 251; i++) slots[i * SLOT_WORDS] = backend;
      const inner = createMaglevTable(slots, true, flags);
      try {
        marksMap.update(key, encodeU32(inner.marksFd!));
        tables.update(key, encodeU32(inner.fd));
      } finally { inner.close(); }
      return tables.lookup(key)!.readUInt32LE(0);
    };
    const write = (i: number, backend: number): boolean => {
      const { indices, words } = one(i, backend);
      return writeMaglevSlotsFlat(tables.lookup(key)!, marksMap.lookup(key), indices, words, mappings);
    };
    try {
      const a = install(1);
      const aMarks = marksMap.lookup(key)!.readUInt32LE(0);
      assert.ok(mappings.has(a) && mappings.has(aMarks), 'mapped when installed (pages populated), before any write');
      assert.equal(write(3, 2), true);
      assert.equal(slotOf(a, 3), 2, 'the store reached the installed table');
      assert.ok(mappings.has(a) && mappings.has(aMarks), 'both tables are mapped, and stay mapped');
      assert.equal(write(4, 2), true);
      assert.equal(slotOf(a, 4), 2);
      // A swap: the next write goes to the new table, never to the old one's mapping.
      const b = install(5);
      assert.notEqual(b, a);
      assert.ok(!mappings.has(a) && !mappings.has(aMarks), 'the swapped-out tables lost their mappings');
      assert.equal(write(6, 7), true);
      assert.equal(slotOf(b, 6), 7, 'written into the new table');
      assert.equal(slotOf(b, 3), 5, 'the new table holds its own slots');
      assert.ok(await mapGone(a), `the old table ${a} is freed (no mapping holds it)`);
      assert.ok(await mapGone(aMarks), `the old marks table ${aMarks} is freed`);
      // A table replaced behind the mappings' back (not through their writers): the outer
      // map's new value is another id, so the write still goes to the table installed now.
      const slots = new Uint32Array(251 * SLOT_WORDS).fill(0);
      for (let i = 0; i < 251; i++) slots[i * SLOT_WORDS] = 9;
      const c = createMaglevTable(slots, false, flags);
      outer.update(key, encodeU32(c.fd));
      c.close();
      const cId = outer.lookup(key)!.readUInt32LE(0);
      assert.equal(write(8, 3), true);
      assert.equal(slotOf(cId, 8), 3, 'the write went to the table the outer map names');
      assert.equal(slotOf(b, 8) & LB.SLOT_ID_MASK, 5, 'not to the stale mapping');
      // Removal through the writer drops the mapping; clear() drops the rest.
      tables.delete(key);
      assert.ok(!mappings.has(cId));
      mappings.clear();
      assert.equal(mappings.size, 0);
      assert.ok(await mapGone(b), 'clear() let the stale table go');
    } finally {
      mappings.clear();
      for (const m of [outer, outerMarks, tmplIds, tmplMarks]) m.close();
    }
  });

  test('the mapped bytes are bounded (least recently used out); reads through the mappings equal reads by syscall', () => {
    const flags = BPF_F_INNER_MAP | BPF_F_MMAPABLE;
    const made: number[] = [];
    const fds: Array<{ fd: number; close(): void }> = [];
    // 251 ids x 8 bytes = 2008 bytes of data per table: a bound of 3 tables.
    const mappings = new InnerTableMappings(3 * 2008);
    try {
      for (let t = 0; t < 5; t++) {
        const slots = new Uint32Array(251 * SLOT_WORDS);
        for (let i = 0; i < 251; i++) slots[i * SLOT_WORDS] = 1 + ((i + t) % 4);
        const inner = createMaglevTable(slots, false, flags);
        fds.push(inner);
        const id = BpfMap.infoOfFd(inner.fd).id;
        made.push(id);
        assert.deepEqual(readMaglevTable(encodeU32(id), null, mappings), readMaglevTable(encodeU32(id), null), `table ${t} reads the same either way`);
      }
      assert.equal(mappings.size, 3);
      assert.deepEqual(made.map((id) => mappings.has(id)), [false, false, true, true, true]);
    } finally {
      mappings.clear();
      for (const f of fds) f.close();
    }
  });

  test('bad input: a mapping refuses an offset beyond the data (nothing stored) and any use after close', () => {
    const m = BpfMap.create({ type: 'array', name: 'xlbq_mw', keySize: 4, valueSize: 4, maxEntries: 8, flags: BPF_F_MMAPABLE });
    const plain = BpfMap.create({ type: 'array', name: 'xlbq_pl', keySize: 4, valueSize: 4, maxEntries: 8 });
    try {
      assert.throws(() => plain.mapData(), /not a BPF_F_MMAPABLE array/);
      const words = m.mapData();
      words.storeWords(Uint32Array.of(2), Uint32Array.of(42));
      assert.equal(m.lookup(encodeU32(1))!.readUInt32LE(0), 42, 'entry 1 starts at word 2');
      assert.throws(() => words.storeWords(Uint32Array.of(4, 16), Uint32Array.of(1, 2)), /offset 16 beyond the mapped words/);
      assert.throws(() => words.storeWords(Uint32Array.of(4), Uint32Array.of(1, 2)), /as many offsets as values/);
      assert.equal(m.lookup(encodeU32(2))!.readUInt32LE(0), 0, 'a refused store wrote nothing');
      words.close();
      words.close();   // idempotent
      assert.throws(() => words.storeWords(Uint32Array.of(0), Uint32Array.of(1)), /EBADF/);
      assert.throws(() => words.readWords(), /EBADF/);
    } finally { m.close(); plain.close(); }
  });
});
