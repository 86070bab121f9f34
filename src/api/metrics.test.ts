/**
 * /metrics across a backend's counter restart: a backend removed and added back gets a new
 * data-plane id and counters from 0; its series carry that id (backend_id), so the restart is
 * a new series for Prometheus, never a negative or a missed delta of the old one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from './metrics';
import { MemoryController } from './memory-controller';

const WEB = {
  name: 'web', vip: '198.18.100.1', port: 80, protocol: 'tcp', mode: 'nat',
  backends: [{ address: '198.18.1.2', port: 8080, weight: 1 }, { address: '198.18.1.3', port: 8080, weight: 1 }],
};
const flow = (fwd: number, rev: number) => ({ fwdPackets: fwd, fwdBytes: fwd * 100, revPackets: rev, revBytes: rev * 60 });
const backendLines = (text: string, backend: string): string[] =>
  text.split('\n').filter((l) => l.startsWith('xdplb_backend_packets_total{') && l.includes(`backend="${backend}"`));

test('backend counters carry the data-plane id they belong to; a removed and re-added backend is a new series from 0', async () => {
  const controller = new MemoryController({ services: [WEB] });
  const metrics = createMetrics(controller);
  controller.snapshot.services.web = flow(1500, 900);
  controller.snapshot.backends.web = { '198.18.1.2:8080': flow(1000, 600), '198.18.1.3:8080': flow(500, 300) };
  controller.snapshot.backendIds = { web: { '198.18.1.2:8080': 3, '198.18.1.3:8080': 4 } };
  const first = await metrics.render();
  assert.deepEqual(backendLines(first, '198.18.1.2:8080'), [
    'xdplb_backend_packets_total{service="web",backend="198.18.1.2:8080",direction="fwd",backend_id="3"} 1000',
    'xdplb_backend_packets_total{service="web",backend="198.18.1.2:8080",direction="rev",backend_id="3"} 600',
  ]);

  // 1.2 is removed and added back: id 9, and since then it already counted more than before.
  controller.snapshot.services.web = flow(2800, 1500);
  controller.snapshot.backends.web = { '198.18.1.2:8080': flow(1200, 650), '198.18.1.3:8080': flow(1600, 850) };
  controller.snapshot.backendIds = { web: { '198.18.1.2:8080': 9, '198.18.1.3:8080': 4 } };
  const second = await metrics.render();
  assert.deepEqual(backendLines(second, '198.18.1.2:8080'), [
    'xdplb_backend_packets_total{service="web",backend="198.18.1.2:8080",direction="fwd",backend_id="9"} 1200',
    'xdplb_backend_packets_total{service="web",backend="198.18.1.2:8080",direction="rev",backend_id="9"} 650',
  ], 'the old id\'s series is gone, the new one starts with what the new counters hold');
  assert.ok(backendLines(second, '198.18.1.3:8080').every((l) => l.includes('backend_id="4"')), 'an untouched backend keeps its series');
  assert.match(second, /xdplb_backend_bytes_total\{service="web",backend="198\.18\.1\.2:8080",direction="fwd",backend_id="9"\} 120000/);
});

test('without data-plane ids the API view\'s backend id labels the series', async () => {
  const controller = new MemoryController({ services: [WEB] });
  const metrics = createMetrics(controller);
  controller.snapshot.backends.web = { '198.18.1.3:8080': flow(5, 2) };
  const ids = controller.listServices()[0].backends.map((b) => b.id);
  const text = await metrics.render();
  assert.ok(backendLines(text, '198.18.1.3:8080').every((l) => l.includes(`backend_id="${ids[1]}"`)), text);
});
