/**
 * Glue between the cluster store (src/store/etcd.ts) and the daemon's controller: the desired
 * state a node starts from, and every later change applied through the controller's queue
 * (replaceConfig: atomic, one at a time, like a file reload; the store's hashSeed is taken too).
 */
import type { Logger } from 'pino';
import { XdplbError } from '../domain/errors';
import { DesiredState } from '../config/state';
import type { Config } from '../config/schema';
import type { DaemonController } from '../daemon/controller';
import type { DesiredRead, EtcdStore } from './etcd';
import { mergeConfig, type ClusterState } from './layout';

/**
 * The state a node in etcd mode starts with: its file's local part and the store's desired state.
 * @throws XdplbError UNAVAILABLE (etcd unreachable), VALIDATION (nothing seeded, or the store's
 *   state is invalid: named with the store key)
 */
export async function readInitialState(store: EtcdStore, local: Readonly<Config>): Promise<{ state: DesiredState; read: DesiredRead & { cluster: ClusterState } }> {
  const read = await store.read();
  if (!read.cluster) {
    throw new XdplbError('XDPLB_ERR_VALIDATION', `${store.keys.desired} holds no desired state: seed it once with ` +
      `\`xdplb store init --store ${store.url.url} -f FILE\` (docs/cli.md)`, '/store');
  }
  return { state: desiredFrom(store, local, read.cluster, read.modRevision), read: { ...read, cluster: read.cluster } };
}

function desiredFrom(store: EtcdStore, local: Readonly<Config>, cluster: ClusterState, modRevision: number): DesiredState {
  try {
    return new DesiredState(mergeConfig(local, cluster));
  } catch (err) {
    if (!(err instanceof XdplbError)) throw err;
    throw new XdplbError(err.code, `${store.keys.desired} (revision ${modRevision}): ${err.message}`, err.field, { cause: err });
  }
}

export interface StoreFollower {
  /** The node-local part changed (file reload): the config to run with the applied cluster state. */
  merged(local: Readonly<Config>): Record<string, unknown>;
  /** Resolves when every queued store change has been applied (or refused). */
  idle(): Promise<void>;
}

/**
 * Applies the store's changes from `read.revision` on (after controller.start()). The state
 * `read` describes is applied first with its seed (an adopted data plane may hash with another).
 */
export async function followStore(opts: {
  store: EtcdStore; controller: DaemonController; local: () => Readonly<Config>; read: DesiredRead & { cluster: ClusterState };
  logger: Logger; onApplied?: (config: Readonly<Config>) => void;
}): Promise<StoreFollower> {
  const { store, controller, logger } = opts;
  let chain: Promise<void> = Promise.resolve();
  const apply = (cluster: ClusterState, modRevision: number): Promise<void> => {
    chain = chain.then(async () => {
      if (modRevision <= store.appliedModRevision) return;
      try {
        await controller.replaceConfig(() => mergeConfig(opts.local(), cluster), {
          seed: 'apply', onApplied: () => store.markApplied(cluster, modRevision),
        });
        logger.info({ revision: modRevision }, 'store revision applied');
        opts.onApplied?.(controller.state.config);
      } catch (err) {
        store.markApplyFailed(modRevision, err);
        logger.error({ revision: modRevision, err: (err as Error).message }, 'store revision refused on this node: keeping the last applied state');
      }
    });
    return chain;
  };
  await controller.replaceConfig(() => mergeConfig(opts.local(), opts.read.cluster), {
    seed: 'apply', onApplied: () => store.markApplied(opts.read.cluster, opts.read.modRevision),
  });
  await store.follow(opts.read.revision, (cluster, modRevision) => { void apply(cluster, modRevision); });
  return {
    merged: (local) => mergeConfig(local, store.appliedCluster),
    idle: () => chain,
  };
}
