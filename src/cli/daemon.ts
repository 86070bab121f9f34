/** `xdplb daemon`: runs the balancer's control plane in the foreground (src/daemon). */
import { Command, Option } from 'commander';
import { reportError } from './output';
import { DEFAULT_PIN_DIR } from '../daemon/defaults';


export function registerDaemonCommand(program: Command): void {
  program.command('daemon')
    .description('run the daemon: load or adopt the XDP data plane, attach, health-check, serve the API and dashboard')
    .requiredOption('--config <file>', 'YAML config file (desired state; rewritten atomically on API changes, ending with "# xdplb:end sha256=..."; ' +
      'a file that configures nothing needs "allowEmpty: true"; a half-written file is refused; docs/config.md)')
    .option('--pin-dir <dir>', 'bpffs directory of the pinned program, link and maps', DEFAULT_PIN_DIR)
    .option('--object <file>', 'BPF object file (default: bpf/lb.o of this checkout)')
    .option('--detach-on-exit', 'on SIGTERM/SIGINT detach and unpin (default: keep forwarding)')
    .addOption(new Option('--listen <host:port>', 'override config api.listen'))
    .addOption(new Option('--web-root <dir>', 'dashboard directory (default: web/dist if present)'))
    .addOption(new Option('--bird-dir <dir>', 'with bgp: in the config, where BIRD\'s socket, config, pid file and log go (default /run/xdplb/bird; docs/cluster.md)'))
    .addOption(new Option('--store <url>', 'etcd://HOST:PORT[,HOST:PORT...]/PREFIX: the desired state lives in etcd, the file keeps this node\'s settings (overrides config store; seed with `xdplb store init`)'))
    .addOption(new Option('--node-name <name>', 'this node\'s name in the cluster (overrides config node.name; default the host name)'))
    .action(async (flags: { config: string; pinDir: string; object?: string; detachOnExit?: boolean; listen?: string; webRoot?: string; birdDir?: string; store?: string; nodeName?: string }) => {
      // Loaded lazily: API verbs must not load the native addon.
      const { runDaemon } = await import('./daemon-process');
      try {
        await runDaemon({
          configPath: flags.config, pinDir: flags.pinDir, objectPath: flags.object, detachOnExit: !!flags.detachOnExit,
          listen: flags.listen, webRoot: flags.webRoot, birdDir: flags.birdDir, store: flags.store, nodeName: flags.nodeName,
        });
      } catch (err) {
        process.exitCode = reportError(err);
      }
    });
}
