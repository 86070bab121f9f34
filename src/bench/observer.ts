/**
 * The live-observability load of `bench control`, run as its own process (as the daemon would
 * be): adopts the pinned data plane, reads its counters once a second and consumes the event
 * ring. Usage: observer <pinDir> <seconds>. Prints "ready" once reading, and on SIGTERM or after
 * <seconds> one JSON line {statsReads, events} and exits.
 */
import { Dataplane } from '../dataplane/dataplane';
import { DataplaneInspector } from '../dataplane/inspect';
import { TraceEvents } from '../dataplane/events';
import { Balancer } from '../balancer/balancer';

/** The argv that runs this module with this node (tsx for the TypeScript, plain node for dist/). */
export function observerCommand(pinDir: string, seconds: number): string[] {
  const script = __filename;
  return script.endsWith('.ts')
    ? [process.execPath, '--import', 'tsx', script, pinDir, String(seconds)]
    : [process.execPath, script, pinDir, String(seconds)];
}

function main(): void {
  const [pinDir, secondsText] = process.argv.slice(2);
  const seconds = Number(secondsText);
  if (!pinDir || !(seconds > 0 && seconds <= 600)) {
    process.stderr.write('usage: observer <pinDir> <seconds in (0, 600]>\n');
    process.exit(2);
  }
  const dp = Dataplane.adopt(pinDir);
  if (!dp) {
    process.stderr.write(`observer: nothing pinned at ${pinDir}\n`);
    process.exit(1);
  }
  // As the daemon would: the ids recovered from the maps name the counters and events.
  const names = new Balancer(dp).reconciler;
  const inspector = new DataplaneInspector(dp, names);
  const ring = new TraceEvents(dp, names);
  let statsReads = 0;
  let events = 0;
  const unsubscribe = ring.subscribe(() => { events++; });
  const timer = setInterval(() => { inspector.readStats(); statsReads++; }, 1000);
  const finish = () => {
    clearInterval(timer);
    ring.drainEvents();
    unsubscribe();
    ring.close();
    process.stdout.write(JSON.stringify({ statsReads, events }) + '\n');
    // Pinned links stay attached when this process closes its handles.
    dp.close();
    process.exit(0);
  };
  process.on('SIGTERM', finish);
  setTimeout(finish, seconds * 1000);
  inspector.readStats();
  statsReads++;
  process.stdout.write('ready\n');
}

if (require.main === module) main();
