/**
 * The one schema: the config file, the API bodies and the CLI input are validated by these
 * TypeBox schemas, and the same schemas document the API (OpenAPI). Shapes mirror
 * src/domain/types.ts and docs/api.md; a compile-time check below keeps the keys identical.
 *
 * Input schemas mark fields with defaults optional; after validation (Ajv `useDefaults`) the
 * value has every default filled in and has the normalised type (ServiceSpec, Config...).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import type { BackendSpec, HealthCheckSpec, Role, ServiceSpec, SettingsView } from '../domain/types';
import { XdplbError } from '../domain/errors';
import { forbiddenAddressReason, isForbiddenVip } from '../domain/address';
import { LB } from '../dataplane/abi';
import { DEFAULT_REVERSE_GRACE_SECONDS } from '../dataplane/types';

// ---------------------------------------------------------------------------------------------
// Building blocks

/** A string enum as JSON Schema `enum` (clearer errors than TypeBox's anyOf of literals). */
function StringEnum<T extends string[]>(values: [...T], options: { description?: string; default?: T[number] } = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: values, ...options });
}

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';

/**
 * The one rule for addresses that can never be a VIP or a backend: each class with its CIDR
 * (for the reason), and the regex prefix that refuses it in UNICAST_IPV4_PATTERN (so the
 * schema that validates API bodies, config files and CLI input, and documents them in
 * OpenAPI, carries the rule). 198.18.0.0/15 (the lab's benchmarking range) stays usable.
 */
export const UNUSABLE_IPV4_CLASSES: ReadonlyArray<{ cidr: string; what: string; regex: string }> = [
  { cidr: '0.0.0.0/8', what: 'a "this network" address (with the unspecified 0.0.0.0)', regex: '0\\.' },
  { cidr: '127.0.0.0/8', what: 'a loopback address', regex: '127\\.' },
  { cidr: '169.254.0.0/16', what: 'a link-local address', regex: '169\\.254\\.' },
  { cidr: '224.0.0.0/4', what: 'a multicast address', regex: '(22[4-9]|23[0-9])\\.' },
  { cidr: '255.255.255.255/32', what: 'the limited broadcast address', regex: '255\\.255\\.255\\.255$' },
  { cidr: '240.0.0.0/4', what: 'a reserved (class E) address', regex: '(24[0-9]|25[0-5])\\.' },
];

/** Any IPv4 dotted quad, strictly (four decimal octets, no leading zeros). */
export const IPV4_PATTERN = `^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`;
/** A unicast IPv4 address usable as a VIP or backend: a dotted quad outside UNUSABLE_IPV4_CLASSES. */
export const UNICAST_IPV4_PATTERN = `^(?!${UNUSABLE_IPV4_CLASSES.map((c) => c.regex).join('|')})${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`;

function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

/** The CIDR test behind UNUSABLE_IPV4_CLASSES (the regex above must agree; see schema.test). */
export function inCidr(address: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4ToNumber(address) / size) === Math.floor(ipv4ToNumber(base) / size);
}

/**
 * Why a dotted-quad address can never be a VIP or backend ("127.0.0.1 is a loopback
 * address (127.0.0.0/8) and ..."), or null when it is usable (or not a dotted quad at all: that is the
 * pattern's business).
 */
export function unusableAddressReason(address: string): string | null {
  if (new RegExp(IPV4_PATTERN).test(address)) {
    const found = UNUSABLE_IPV4_CLASSES.find((c) => inCidr(address, c.cidr));
    return found ? `${address} is ${found.what} (${found.cidr}) and can never be a VIP or backend` : null;
  }
  // IPv6 (and anything else): src/domain/address.ts decides (null for text that is no address).
  return address.includes(':') ? forbiddenAddressReason(address) : null;
}

/**
 * The Ajv format of a VIP or backend address (either family): src/domain/address.ts parses any
 * RFC 4291 text form of IPv6 and a strict dotted quad, and refuses the forbidden classes of
 * both families. The state keeps (and every output shows) the canonical text (RFC 5952).
 */
export const UNICAST_ADDRESS_FORMAT = 'xdplb-unicast-address';

export const NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';

/** A VIP or backend address of either family (a service is one family: src/config/rules.ts). */
export const UnicastAddress = Type.String({
  format: UNICAST_ADDRESS_FORMAT, minLength: 2, maxLength: 45,
  description: 'a unicast IPv4 address (dotted quad without leading zeros; not 0.0.0.0/8, loopback 127/8, link-local 169.254/16, multicast 224/4, reserved 240/4 or broadcast) or IPv6 address (any RFC 4291 text form, no zone id; not ::, ::1, link-local fe80::/10, multicast ff00::/8 or IPv4-mapped ::ffff:0:0/96); answered in canonical form (RFC 5952)',
});
export const Name = Type.String({
  pattern: NAME_PATTERN, maxLength: 63,
  description: 'a name of 1..63 characters: lower-case letters, digits, "_" and "-", starting with a letter or digit',
});
const Port = (description: string) => Type.Integer({ minimum: 0, maximum: 65535, description });

export const MIN_TABLE_SIZE = 13;
/**
 * Largest per-service Maglev table: 2^20 - 3, the largest prime under 2^20 (an inner table of
 * at most 4 MiB, u32 per slot). Big enough for M >= N^2 at the 1000-backend limit (M = 1000003),
 * which keeps a one-backend change to about 2/N of the flows (src/balancer/maglev.ts). The daemon
 * loads the data plane to take tables up to this size.
 */
export const MAX_SERVICE_TABLE_SIZE = 1048573;
/** Largest default (`maglev.tableSize`): it applies to every service, so large tables stay a per-service choice. */
export const MAX_TABLE_SIZE = 131071;
export const DEFAULT_TABLE_SIZE = 65537;
export const MAX_BACKENDS_PER_SERVICE = 1000;
/** Data-plane capacity (bpf/lb_abi.h defaults); id 0 is never used for services or backends. */
export const MAX_SERVICES = LB.MAX_SERVICES - 1;
export const MAX_TOTAL_BACKENDS = LB.MAX_BACKENDS - 1;
export const MAX_VIPS = LB.MAX_VIPS;
export const MAX_REVERSE_ENTRIES = LB.MAX_REVERSE;
export const MAX_WEIGHT = 1000;
export const U32_MAX = 0xffffffff;

// ---------------------------------------------------------------------------------------------
// Services, backends, health checks (the API's ServiceSpec / BackendSpec / HealthCheckSpec)

export const HealthCheckSpecSchema = Type.Object({
  type: StringEnum(['tcp', 'http'], { description: 'tcp: connect; http: GET path, status within expectStatus' }),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'port to check; default the backend port (or the service port when the backend port is 0)' })),
  path: Type.Optional(Type.String({ pattern: '^/[\\x21-\\x7e]*$', maxLength: 1024, description: 'an absolute HTTP path of printable ASCII without spaces (http only; default "/")' })),
  expectStatus: Type.Optional(Type.Tuple([
    Type.Integer({ minimum: 100, maximum: 599 }), Type.Integer({ minimum: 100, maximum: 599 }),
  ], { description: 'inclusive range of healthy HTTP status codes (http only; default [200, 399])' })),
  intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60000, default: 1000 })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 50, maximum: 60000, default: 500 })),
  rise: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 2, description: 'consecutive successes to mark up' })),
  fall: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 2, description: 'consecutive failures to mark down' })),
  initialState: Type.Optional(StringEnum(['up', 'down'], { description: 'a backend before its first verdict: down (default; "checking", enters the table after rise successes) or up (enters at once)' })),
  flap: Type.Optional(Type.Object({
    maxFlips: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'up/down changes allowed within windowMs (default 4)' })),
    windowMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 86400000, description: 'default 60000' })),
    holdMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400000, description: 'how long a flapping backend is held down (default 60000; 0 = no damping)' })),
  }, { additionalProperties: false, description: 'flap damping: a backend changing state more than maxFlips times within windowMs is held down for holdMs' })),
  slowStart: Type.Optional(Type.Object({
    durationMs: Type.Integer({ minimum: 1000, maximum: 3600000, description: 'time to reach the full weight' }),
    steps: Type.Optional(Type.Integer({ minimum: 2, maximum: 20, description: 'weight steps, each one table swap (default 4)' })),
  }, { additionalProperties: false, description: 'off by default: a backend coming up ramps its weight over durationMs' })),
  dsrProbe: Type.Optional(StringEnum(['vip', 'address'], { description: 'DSR services: vip (default) probes VIP:port through each backend (proves the VIP is served); address probes the backend\'s own address' })),
  reuseConnection: Type.Optional(Type.Boolean({ description: 'http only (default true): keep each backend\'s connection open between probes (HTTP/1.1 keep-alive; a new one when the server closes it) instead of a new connection per probe: far less CPU per probe, but a server that stops accepting new connections while serving the kept one stays up; false: a new connection per probe' })),
}, { $id: 'HealthCheckSpec', additionalProperties: false });

export const BackendSpecSchema = Type.Object({
  address: UnicastAddress,
  port: Port('backend port; 0 = keep the client\'s destination port'),
  weight: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_WEIGHT, default: 1, description: 'relative share of the Maglev table; 0 = no new flows' })),
  drain: Type.Optional(Type.Boolean({ description: 'true = no new flows, existing flows stay' })),
}, { $id: 'BackendSpec', additionalProperties: false });

export const ServiceSpecSchema = Type.Object({
  name: Name,
  vip: UnicastAddress,
  port: Port('service port; 0 = every port of the protocol'),
  protocol: StringEnum(['tcp', 'udp']),
  mode: StringEnum(['nat', 'dsr'], { description: 'nat: rewrite destination address (and port); dsr: rewrite MAC only' }),
  tableSize: Type.Optional(Type.Integer({ minimum: MIN_TABLE_SIZE, maximum: MAX_SERVICE_TABLE_SIZE, description: 'Maglev table size (prime); default maglev.tableSize' })),
  backends: Type.Array(BackendSpecSchema, { maxItems: MAX_BACKENDS_PER_SERVICE }),
  healthCheck: Type.Optional(HealthCheckSpecSchema),
}, { $id: 'ServiceSpec', additionalProperties: false });

export const BackendPatchSchema = Type.Object({
  weight: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_WEIGHT })),
  drain: Type.Optional(Type.Boolean()),
}, { $id: 'BackendPatch', additionalProperties: false });

export const SettingsSchema = Type.Object({
  fragPolicy: StringEnum(['drop', 'pass'], { description: 'what to do with IPv4 and IPv6 fragments addressed to a VIP' }),
  sampleRate: Type.Integer({ minimum: 0, maximum: U32_MAX, description: '1 in N packets to the trace log; 0 = off' }),
  flowCache: Type.Boolean(),
}, { $id: 'Settings', additionalProperties: false });

export const SettingsPatchSchema = Type.Partial(SettingsSchema, { $id: 'SettingsPatch', additionalProperties: false });

/** GET /api/v1/maps/:name?offset=&limit= (the CLI's `maps --limit` takes its bounds from here). */
export const MapPageQuerySchema = Type.Object({
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'entries per page' })),
}, { additionalProperties: false });

// ---------------------------------------------------------------------------------------------
// Views returned by the API (documentation and response serialisation)

export const BackendViewSchema = Type.Object({
  address: Type.String(), port: Type.Integer(), weight: Type.Integer(), drain: Type.Optional(Type.Boolean()),
  id: Type.Integer(), key: Type.String({ description: '"address:port" ("[v6]:port" for IPv6), canonical: the backend\'s name in URLs (URL-encoded) and the CLI' }),
  health: StringEnum(['up', 'down', 'checking', 'unchecked'], { description: 'checking: no verdict yet (not in the table); unchecked: the service has no health check' }),
  draining: Type.Boolean(), inTable: Type.Boolean(),
  tableShare: Type.Number({ description: '0..1 of the Maglev slots' }),
  healthReason: Type.Optional(Type.String({ description: 'why the backend is held down (flap damping)' })),
  heldUntil: Type.Optional(Type.Integer({ description: 'end of the hold, ms since the epoch' })),
  rampWeight: Type.Optional(Type.Number({ description: 'slow start: the weight taken now while ramping' })),
}, { $id: 'Backend' });

export const ServiceViewSchema = Type.Object({
  id: Type.Integer(), name: Type.String(), vip: Type.String(), port: Type.Integer(),
  protocol: StringEnum(['tcp', 'udp']), mode: StringEnum(['nat', 'dsr']),
  tableSize: Type.Optional(Type.Integer()),
  healthCheck: Type.Optional(Type.Ref(HealthCheckSpecSchema)),
  backends: Type.Array(Type.Ref(BackendViewSchema)),
}, { $id: 'Service' });

export const ErrorBodySchema = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'XDPLB_ERR_* (src/domain/errors.ts)' }),
    message: Type.String(),
    field: Type.Optional(Type.String({ description: 'JSON pointer of the offending field' })),
  }),
}, { $id: 'Error' });

// ---------------------------------------------------------------------------------------------
// Config file

export const UserSchema = Type.Object({
  name: Name,
  role: StringEnum(['viewer', 'admin']),
  passwordHash: Type.Optional(Type.String({ pattern: '^scrypt\\$', maxLength: 512, description: 'from `xdplb hash-password` (scrypt$N$r$p$salt$hash)' })),
  password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'plain text, development only: hashed at load' })),
}, { additionalProperties: false });

export const TokenSchema = Type.Object({
  name: Name,
  role: StringEnum(['viewer', 'admin']),
  tokenHash: Type.Optional(Type.String({ pattern: '^scrypt\\$', maxLength: 512 })),
  token: Type.Optional(Type.String({ minLength: 16, maxLength: 1024, description: 'plain text, development only: hashed at load' })),
}, { additionalProperties: false });

export const InterfaceSchema = Type.Object({
  name: Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,15}$', description: 'a Linux interface name (1..15 characters)' }),
  mode: Type.Optional(StringEnum(['native', 'generic'], { default: 'native' })),
}, { additionalProperties: false });

/** A DNS name: dot-separated labels of letters, digits and inner hyphens. */
export const HOST_NAME_PATTERN = '^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\\.?$';
/** The longest reverseGraceSeconds (the default, 300 s, is DEFAULT_REVERSE_GRACE_SECONDS). */
export const MAX_REVERSE_GRACE_SECONDS = 86400;

export const LISTEN_PATTERN = '^(\\[[0-9A-Fa-f:.]{2,45}\\]|[A-Za-z0-9.-]{1,253}):[0-9]{1,5}$';
/** etcd://HOST:PORT[,HOST:PORT...]/PREFIX (src/store/url.ts; the cluster's desired state). */
export const STORE_URL_PATTERN = '^etcd://(\\[[0-9A-Fa-f:.]{2,45}\\]|[A-Za-z0-9.-]{1,253}):[0-9]{1,5}(,(\\[[0-9A-Fa-f:.]{2,45}\\]|[A-Za-z0-9.-]{1,253}):[0-9]{1,5}){0,8}(/[A-Za-z0-9_.-]{1,64}){1,8}$';
/** A cluster node's name (default: the host name). */
export const NODE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$';

/** BGP through a local BIRD 2 (src/cluster/bgp-speaker.ts, docs/cluster.md): announce the VIPs (IPv4 /32s to IPv4 peers, IPv6 /128s to IPv6 peers). */
export const BgpPeerSchema = Type.Object({
  address: Type.String({ format: UNICAST_ADDRESS_FORMAT, maxLength: 45, description: 'the peer (router) address, on a directly connected network; an IPv4 peer gets the IPv4 VIPs, an IPv6 peer the IPv6 VIPs' }),
  as: Type.Integer({ minimum: 1, maximum: U32_MAX, description: 'the peer\'s AS number' }),
}, { additionalProperties: false });
export const BgpSchema = Type.Object({
  localAs: Type.Integer({ minimum: 1, maximum: U32_MAX, description: 'this node\'s AS number (the same on every node)' }),
  peers: Type.Array(BgpPeerSchema, { minItems: 1, maxItems: 16 }),
  routerId: Type.Optional(Type.String({ pattern: IPV4_PATTERN, maxLength: 15, description: 'BIRD router id (default: BIRD picks the lowest address of an interface)' })),
  bfd: Type.Optional(Type.Boolean({ default: true, description: 'BFD with every peer (100 ms x 3): a dead node leaves the ECMP set in about 0.3 s' })),
  holdTime: Type.Optional(Type.Integer({ minimum: 3, maximum: 65535, default: 3, description: 'BGP hold time in seconds (keepalive: a third of it)' })),
  birdBinary: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, default: '/usr/sbin/bird', description: 'the bird executable (birdc is looked up beside it)' })),
  socket: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'BIRD control socket (default: bird.ctl in the daemon\'s --bird-dir); bird.conf and bird.pid go beside it' })),
}, { additionalProperties: false });

export const ConfigSchema = Type.Object({
  interfaces: Type.Optional(Type.Array(InterfaceSchema, { maxItems: 64, default: [] })),
  maglev: Type.Optional(Type.Object({
    tableSize: Type.Optional(Type.Integer({ minimum: MIN_TABLE_SIZE, maximum: MAX_TABLE_SIZE, default: DEFAULT_TABLE_SIZE, description: 'default Maglev table size (prime)' })),
  }, { additionalProperties: false, default: {} })),
  hashSeed: Type.Optional(Type.Integer({ minimum: 0, maximum: U32_MAX, default: 0, description: 'flow hash seed; the same on every node behind ECMP' })),
  fragments: Type.Optional(StringEnum(['drop', 'pass'], { default: 'drop' })),
  sampling: Type.Optional(Type.Object({
    rate: Type.Optional(Type.Integer({ minimum: 0, maximum: U32_MAX, default: 0, description: '1 in N packets to the trace log; 0 = off' })),
  }, { additionalProperties: false, default: {} })),
  flowCache: Type.Optional(Type.Boolean({ default: true })),
  transitionSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, description: 'how long a moved Maglev slot is a transition (its packets consult the flow cache): the sweep period; a mark lasts >= 2 periods and until no flow on an earlier backend was seen for one; default 60' })),
  reverseGraceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_REVERSE_GRACE_SECONDS, description: `how long a removed NAT backend's replies are still translated (its connections close from the VIP); default ${DEFAULT_REVERSE_GRACE_SECONDS}, 0 = none` })),
  api: Type.Optional(Type.Object({
    listen: Type.Optional(Type.String({ pattern: LISTEN_PATTERN, maxLength: 260, default: '127.0.0.1:8720', description: 'host:port' })),
    allowedHosts: Type.Optional(Type.Array(Type.String({ pattern: HOST_NAME_PATTERN, maxLength: 253, description: 'a DNS name' }), {
      maxItems: 32, description: 'extra Host header names the API answers to (IP addresses, localhost and the listen host always work)',
    })),
    metrics: Type.Optional(StringEnum(['auth', 'public', 'loopback'], { description: 'who may read /metrics: auth (default, any user or token), public, or loopback clients only' })),
  }, { additionalProperties: false, default: {} })),
  users: Type.Optional(Type.Array(UserSchema, { maxItems: 100, default: [] })),
  tokens: Type.Optional(Type.Array(TokenSchema, { maxItems: 100, default: [] })),
  services: Type.Optional(Type.Array(Type.Ref(ServiceSpecSchema), { maxItems: MAX_SERVICES, default: [] })),
  allowEmpty: Type.Optional(Type.Boolean({ description: 'true: a config with no services, interfaces, users or tokens is intended (otherwise refused)' })),
  bgp: Type.Optional(BgpSchema),
  store: Type.Optional(Type.String({ pattern: STORE_URL_PATTERN, maxLength: 1024, description: 'etcd://HOST:PORT[,HOST:PORT...]/PREFIX: the desired state lives in etcd under PREFIX (docs/config.md); absent = this file' })),
  node: Type.Optional(Type.Object({
    name: Type.Optional(Type.String({ pattern: NODE_NAME_PATTERN, maxLength: 63, description: 'this node\'s name in the cluster (default: the host name)' })),
  }, { additionalProperties: false })),
}, { $id: 'Config', additionalProperties: false });

/** What a config file may contain (defaults omitted). */
export type ConfigInput = Static<typeof ConfigSchema>;

/** Who may read /metrics (config api.metrics). */
export type MetricsExposure = 'auth' | 'public' | 'loopback';

export interface UserEntry { name: string; role: Role; passwordHash?: string; password?: string }
export interface TokenEntry { name: string; role: Role; tokenHash?: string; token?: string }

/** A validated config with every default filled in. */
export interface Config {
  interfaces: Array<{ name: string; mode: 'native' | 'generic' }>;
  maglev: { tableSize: number };
  hashSeed: number;
  fragments: 'drop' | 'pass';
  sampling: { rate: number };
  flowCache: boolean;
  /** Absent = DEFAULT_REVERSE_GRACE_SECONDS. */
  reverseGraceSeconds?: number;
  /** Absent = 60 (DEFAULT_TRANSITION_SECONDS). */
  transitionSeconds?: number;
  api: { listen: string; allowedHosts?: string[]; metrics?: MetricsExposure };
  users: UserEntry[];
  tokens: TokenEntry[];
  services: ServiceSpec[];
  /** Set: configuring nothing at all is intended (docs/config.md). */
  allowEmpty?: boolean;
  /** BGP announcement of the VIPs through BIRD (absent: no BGP). */
  bgp?: BgpConfig;
  /** etcd://HOST:PORT/PREFIX: the desired state lives in etcd (src/store/); absent = file mode. */
  store?: string;
  /** Node-local: this node's name in the cluster (default: the host name). */
  node?: { name?: string };
}

/** A validated bgp: section (defaults filled in). */
export interface BgpConfig {
  localAs: number;
  peers: Array<{ address: string; as: number }>;
  routerId?: string;
  bfd: boolean;
  holdTime: number;
  birdBinary: string;
  socket?: string;
}

// Compile-time: the schemas have exactly the keys of the contract types (src/domain/types.ts).
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false;
const keysMatch: [
  SameKeys<Static<typeof ServiceSpecSchema>, ServiceSpec>,
  SameKeys<Static<typeof BackendSpecSchema>, BackendSpec>,
  SameKeys<Static<typeof HealthCheckSpecSchema>, HealthCheckSpec>,
  SameKeys<Static<typeof SettingsSchema>, SettingsView>,
  SameKeys<ConfigInput, Config>,
] = [true, true, true, true, true];
void keysMatch;

/** Every named schema, registered with the validators and published in OpenAPI components. */
export const NAMED_SCHEMAS: TSchema[] = [
  HealthCheckSpecSchema, BackendSpecSchema, ServiceSpecSchema, BackendPatchSchema, SettingsSchema,
  SettingsPatchSchema, BackendViewSchema, ServiceViewSchema, ErrorBodySchema, ConfigSchema,
];

// ---------------------------------------------------------------------------------------------
// Validation

function makeAjv(coerceTypes: boolean): Ajv {
  // verbose: errors carry parentSchema, whose description makes pattern errors readable.
  const ajv = new Ajv({ allErrors: false, useDefaults: true, coerceTypes, removeAdditional: false, verbose: true, strict: true });
  ajv.addFormat(UNICAST_ADDRESS_FORMAT, { type: 'string', validate: (text: string) => isForbiddenVip(text) === null });
  for (const schema of NAMED_SCHEMAS) ajv.addSchema(schema);
  return ajv;
}

/** Strict validator for documents and bodies: no type coercion, unknown fields are errors. */
export const bodyAjv = makeAjv(false);
/** Validator for query strings and path parameters, where every value arrives as a string. */
export const queryAjv = makeAjv(true);

/** Turns one Ajv error into a JSON pointer and a reason a person can act on. */
export function describeAjvError(error: ErrorObject, basePointer = ''): { field: string; reason: string } {
  const at = basePointer + error.instancePath;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return { field: `${at}/${String(params.missingProperty)}`, reason: 'is required' };
    case 'additionalProperties': {
      const allowed = Object.keys((error.parentSchema as { properties?: object })?.properties ?? {});
      return { field: `${at}/${String(params.additionalProperty)}`, reason: `is not a known field${allowed.length ? ` (known: ${allowed.join(', ')})` : ''}` };
    }
    case 'enum':
      return { field: at, reason: `must be one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}` };
    case 'pattern': {
      const unusable = params.pattern === UNICAST_IPV4_PATTERN && typeof error.data === 'string' ? unusableAddressReason(error.data) : null;
      if (unusable) return { field: at, reason: unusable };
      const description = (error.parentSchema as { description?: string })?.description;
      return { field: at, reason: description ? `must be ${description}` : `must match ${String(params.pattern)}` };
    }
    case 'format':
      if (params.format === UNICAST_ADDRESS_FORMAT && typeof error.data === 'string') return { field: at, reason: isForbiddenVip(error.data) ?? 'is not a usable address' };
      return { field: at, reason: error.message ?? 'is invalid' };
    case 'type':
      return { field: at, reason: `must be ${params.type === 'integer' ? 'an integer' : `of type ${String(params.type)}`}` };
    default:
      return { field: at, reason: error.message ?? 'is invalid' };
  }
}

/** Builds the catalogue's validation error from the first Ajv error. */
export function validationErrorFrom(errors: ErrorObject[] | null | undefined, basePointer = '', rootLabel = '(document)'): XdplbError {
  const first = errors?.[0];
  if (!first) return new XdplbError('XDPLB_ERR_VALIDATION', 'invalid input', basePointer || undefined);
  const { field, reason } = describeAjvError(first, basePointer);
  return new XdplbError('XDPLB_ERR_VALIDATION', `${field || rootLabel}: ${reason}`, field || '');
}

const compiled = new WeakMap<TSchema, ValidateFunction>();
function compile(schema: TSchema): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = (schema.$id ? bodyAjv.getSchema(schema.$id) : undefined) ?? bodyAjv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

/**
 * Validates `value` against `schema` (without changing it) and returns a deep copy with the
 * defaults filled in. `basePointer` prefixes error fields (e.g. "/services/2").
 * @throws XdplbError XDPLB_ERR_VALIDATION naming the first wrong field as a JSON pointer.
 */
export function validateInput<T>(schema: TSchema, value: unknown, basePointer = ''): T {
  const copy = value === undefined ? undefined : structuredClone(value);
  const validate = compile(schema);
  if (!validate(copy)) throw validationErrorFrom(validate.errors, basePointer);
  return copy as T;
}

/** Parses an api.listen value ("host:port", "[v6]:port") into host and port. */
export function parseListen(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  let host = listen.slice(0, at);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(listen.slice(at + 1)) };
}
