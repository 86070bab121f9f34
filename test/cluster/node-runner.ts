/**
 * Test scaffolding for the cluster tests: runs the real daemon (startDaemon) inside a lab node's
 * namespace (started with nsenter) and takes commands on stdin, one per line, answering one
 * JSON line each on stdout:
 *   drain SECONDS | undrain  -> the daemon's onDrain hook (what PUT /api/v1/nodes/NAME/drain calls)
 *   status                   -> NodeStatus.bgp from birdc
 *   stop                     -> the daemon's ordinary stop (withdraw, BIRD down, program stays), exit 0
 * stdin closing stops it too. The first line is {"event":"ready", url, birdPid}.
 */
import readline from 'node:readline';
import pino from 'pino';
import { startDaemon } from '../../src/cli/daemon-process';

function arg(name: string): string {
  const at = process.argv.indexOf(name);
  if (at < 0 || !process.argv[at + 1]) throw new Error(`node-runner: ${name} is required`);
  return process.argv[at + 1];
}

async function main(): Promise<void> {
  const logger = pino({ level: 'info' }, pino.destination({ dest: arg('--log'), sync: false }));
  const daemon = await startDaemon({ configPath: arg('--config'), pinDir: arg('--pin-dir'), birdDir: arg('--bird-dir'), logger, webRoot: undefined });
  const say = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
  say({ event: 'ready', url: daemon.url, birdPid: daemon.bgp?.birdPid ?? 0 });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await daemon.stop();
    say({ event: 'stopped' });
    logger.flush();
    setTimeout(() => process.exit(0), 50);
  };
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, value] = line.trim().split(/\s+/);
    void (async () => {
      if (cmd === 'drain') say({ event: 'drained', status: await daemon.onDrain(true, Number(value ?? 0)) });
      else if (cmd === 'undrain') say({ event: 'undrained', status: await daemon.onDrain(false) });
      else if (cmd === 'status') say({ event: 'status', status: await daemon.bgp?.status() ?? null });
      else if (cmd === 'stop') await stop();
    })().catch((err: Error) => say({ event: 'error', message: err.message }));
  });
  rl.on('close', () => { void stop(); });
}

main().catch((err: Error) => {
  process.stdout.write(JSON.stringify({ event: 'failed', message: err.message }) + '\n');
  process.exit(1);
});
