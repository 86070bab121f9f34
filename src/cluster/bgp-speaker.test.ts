import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { BgpSpeaker } from './bgp-speaker';

test('a BIRD that cannot start fails the start with one line naming the binary, and leaves nothing running', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'xlbg-speaker-'));
  try {
    const speaker = new BgpSpeaker({
      bgp: { localAs: 65001, peers: [{ address: '198.18.10.1', as: 65000 }], bfd: true, holdTime: 3, birdBinary: path.join(dir, 'no-such-bird') },
      birdDir: dir, logger: pino({ level: 'silent' }), services: () => [], attached: () => true, storeFresh: () => true,
    });
    await assert.rejects(speaker.start(), (err: Error) => {
      assert.match(err.message, /cannot start BIRD \(.*no-such-bird\)/);
      assert.equal(err.message.includes('\n'), false);
      return true;
    });
    // The config it would have run is there for the operator to read (nothing announced: no services).
    assert.match(readFileSync(path.join(dir, 'bird.conf'), 'utf8'), /protocol static xdplb_vips \{\n {2}ipv4;\n\}/);
    assert.equal(existsSync(path.join(dir, 'bird.pid')), false);
    await speaker.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
