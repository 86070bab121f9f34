/**
 * In-place Maglev table writes (issue 16): the bridge's mapped stores and reads
 * (BpfMap.storeWords/readWords) and writeMaglevSlotsFlat() on mmapable tables and, as for a data
 * plane adopted from an older build's pins, on tables that are not (batch updates). Root; maps
 * only (no pins, namespaces or ports).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BpfMap, BPF_F_INNER_MAP, BPF_F_MMAPABLE, repoRoot } from '../bpf';
import { createMaglevTable, readMaglevTable, writeMaglevSlotsFlat, SLOT, SLOT_WORDS } from './maglev-tables';
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
