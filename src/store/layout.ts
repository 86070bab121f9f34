/**
 * What lives in the cluster store and what stays in each node's file (docs/decisions.md,
 * "etcd layout"), and the URL that names the store.
 *
 *   etcd://HOST:PORT[,HOST:PORT...]/PREFIX
 *   PREFIX/desired      JSON of the cluster part of the config (CLUSTER_FIELDS), one key: every
 *                       change is one transaction, guarded by this key's mod_revision
 *   PREFIX/nodes/NAME   NodeStatus JSON, under the node's lease (gone when the node is)
 *   PREFIX/drain/NAME   {drain, graceSeconds, at}: desired drain of a node
 */
import { XdplbError } from '../domain/errors';
import { STORE_URL_PATTERN, type Config } from '../config/schema';

/** Fields of the config that are the cluster's (in etcd); every other field is node-local. */
export const CLUSTER_FIELDS = ['maglev', 'hashSeed', 'fragments', 'sampling', 'flowCache', 'transitionSeconds', 'reverseGraceSeconds', 'users', 'tokens', 'services'] as const;
export type ClusterField = typeof CLUSTER_FIELDS[number];
/** Fields that stay in each node's file. Every Config field is in exactly one of the two lists (checked below and in a test). */
export const LOCAL_FIELDS = ['interfaces', 'api', 'allowEmpty', 'store', 'node', 'bgp'] as const;
// Compile time: a new Config field that is neither cluster nor local fails the build here, so
// a data-plane setting can never silently become node-local (nodes would disagree).
type Unclassified = Exclude<keyof Config, ClusterField | typeof LOCAL_FIELDS[number]>;
const everyFieldClassified: [Unclassified] extends [never] ? true : Unclassified = true;
void everyFieldClassified;
export type ClusterState = Partial<Pick<Config, ClusterField>>;

export interface StoreUrl {
  /** As given (shown in views and messages). */
  url: string;
  /** host:port of each etcd endpoint. */
  hosts: string[];
  /** "/xdplb" (leading slash, no trailing one). */
  prefix: string;
}

/**
 * Parses etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
 * @throws XdplbError XDPLB_ERR_VALIDATION naming what is wrong (field /store)
 */
export function parseStoreUrl(url: string): StoreUrl {
  if (typeof url !== 'string' || !new RegExp(STORE_URL_PATTERN).test(url)) {
    throw new XdplbError('XDPLB_ERR_VALIDATION', `/store: "${String(url).slice(0, 200)}" is not a store URL: expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX ` +
      '(PREFIX: 1..8 segments of letters, digits, "_", "." and "-")', '/store');
  }
  const rest = url.slice('etcd://'.length);
  const slash = rest.indexOf('/');
  const hosts = rest.slice(0, slash).split(',');
  for (const h of hosts) {
    const port = Number(h.slice(h.lastIndexOf(':') + 1));
    if (!(port >= 1 && port <= 65535)) throw new XdplbError('XDPLB_ERR_VALIDATION', `/store: port ${port} of ${h} is not in 1..65535`, '/store');
  }
  const prefix = rest.slice(slash).replace(/\/+$/, '');
  if (prefix.split('/').some((seg, i) => i > 0 && (seg === '.' || seg === '..'))) {
    throw new XdplbError('XDPLB_ERR_VALIDATION', '/store: the prefix may not contain "." or ".." segments', '/store');
  }
  return { url, hosts, prefix };
}

export function storeKeys(prefix: string) {
  return {
    desired: `${prefix}/desired`,
    nodesPrefix: `${prefix}/nodes/`,
    node: (name: string) => `${prefix}/nodes/${name}`,
    drainPrefix: `${prefix}/drain/`,
    drain: (name: string) => `${prefix}/drain/${name}`,
  };
}

/** The cluster part of a config (what goes to PREFIX/desired). */
export function clusterPart(config: Readonly<Config>): ClusterState {
  const out: Record<string, unknown> = {};
  for (const f of CLUSTER_FIELDS) if (config[f] !== undefined) out[f] = structuredClone(config[f]);
  return out as ClusterState;
}

/** The node-local part of a config (everything else: interfaces, api, store, node, bgp...). */
export function localPart(config: Readonly<Config>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) if (!(CLUSTER_FIELDS as readonly string[]).includes(k) && v !== undefined) out[k] = structuredClone(v);
  return out;
}

/** The config a node runs: its own local fields with the cluster's state (validated by the caller). */
export function mergeConfig(local: Readonly<Config>, cluster: ClusterState): Record<string, unknown> {
  // allowEmpty: a cluster with no service yet is a state, not a mistake of this node's file.
  return { ...localPart(local), ...structuredClone(cluster), allowEmpty: true };
}

/** One line per difference between two cluster states ("service web changed", "settings changed"...). */
export function describeChanges(before: ClusterState, after: ClusterState): string[] {
  const out: string[] = [];
  const byName = (s: ClusterState) => new Map((s.services ?? []).map((svc) => [svc.name, JSON.stringify(svc)]));
  const a = byName(before);
  const b = byName(after);
  for (const [name, spec] of b) {
    if (!a.has(name)) out.push(`service ${name} added`);
    else if (a.get(name) !== spec) out.push(`service ${name} changed`);
  }
  for (const name of a.keys()) if (!b.has(name)) out.push(`service ${name} removed`);
  const same = (f: ClusterField) => JSON.stringify(before[f]) === JSON.stringify(after[f]);
  if (!same('hashSeed')) out.push('hashSeed changed');
  if (!same('users') || !same('tokens')) out.push('users or tokens changed');
  if (!(['maglev', 'fragments', 'sampling', 'flowCache', 'transitionSeconds', 'reverseGraceSeconds'] as const).every(same)) out.push('settings changed');
  return out;
}
