/**
 * The desired state: one validated Config, changed only through pure, whole-or-nothing
 * methods that build the next state, validate all of it, and return it (or throw, leaving
 * the current state untouched). Checks here are the ones a schema cannot express: they look
 * across fields and across services.
 */
import type { BackendSpec, ServiceSpec, SettingsView } from '../domain/types';
import { XdplbError } from '../domain/errors';
import { canonicalOrSelf, familyOf, joinHostPort, tryParseAddress, tryParseHostPort } from '../domain/address';
import { crossServiceRuleBreaks, isPrime, serviceRuleBreaks } from './rules';
import {
  BackendPatchSchema, BackendSpecSchema, ConfigSchema, ServiceSpecSchema, SettingsPatchSchema,
  MAX_BACKENDS_PER_SERVICE, MAX_REVERSE_ENTRIES, MAX_SERVICES, MAX_TOTAL_BACKENDS, MAX_VIPS, parseListen, validateInput, type Config,
} from './schema';

/** The stable identity of a backend within a service: "address:port", "[v6]:port" for IPv6 (canonical). */
export function backendKey(backend: Pick<BackendSpec, 'address' | 'port'>): string {
  return joinHostPort(backend.address, backend.port);
}

/**
 * A backend key as a user wrote it (URL, CLI: "198.18.1.2:80", "[2001:0002::5]:80") in the
 * canonical form backendKey() gives; a key that does not parse is returned as it is (it then
 * names no backend: 404).
 */
export function canonicalBackendKey(key: string): string {
  const parsed = tryParseHostPort(key);
  return 'error' in parsed ? key : parsed.text;
}

/** The canonical text of an address (RFC 5952 for IPv6); text that does not parse as it is. */
function canonical(text: string): string {
  if (!text.includes(':')) return text;   // IPv4: the schema takes the canonical dotted quad only
  const parsed = tryParseAddress(text);
  return 'error' in parsed ? text : parsed.text;
}

/** `service` (a private copy) with its addresses canonical, in place. */
function canonicalService(service: ServiceSpec): ServiceSpec {
  canonicalizeAddresses([service]);
  return service;
}

/** The canonical text of every address of the services (RFC 5952 for IPv6), in place. */
function canonicalizeAddresses(services: ServiceSpec[]): void {
  for (const service of services) {
    service.vip = canonical(service.vip);
    for (const backend of service.backends) backend.address = canonical(backend.address);
  }
}

/** The Maglev table size a service uses: its own, or the config default. */
export function effectiveTableSize(service: ServiceSpec, config: Pick<Config, 'maglev'>): number {
  return service.tableSize ?? config.maglev.tableSize;
}

function invalid(field: string, reason: string): XdplbError {
  return new XdplbError('XDPLB_ERR_VALIDATION', `${field}: ${reason}`, field);
}
function conflict(field: string, reason: string): XdplbError {
  return new XdplbError('XDPLB_ERR_CONFLICT', `${field}: ${reason}`, field);
}

export interface ValidateOptions {
  /** Index of the service being changed: a clash between two services is blamed on this one. */
  focus?: number;
}

/** Checks one service on its own (fields that depend on each other). */
function serviceErrors(service: ServiceSpec, index: number, config: Config): XdplbError[] {
  const errors: XdplbError[] = [];
  const at = `/services/${index}`;
  const tableSize = effectiveTableSize(service, config);
  const tableField = service.tableSize === undefined ? '/maglev/tableSize' : `${at}/tableSize`;
  for (const broken of serviceRuleBreaks(service, tableSize)) {
    switch (broken.rule) {
      case 'family': {
        const backend = service.backends[broken.backend];
        const [vf, bf] = [familyOf(service.vip), familyOf(backend.address)];
        errors.push(invalid(`${at}/backends/${broken.backend}/address`, `service "${service.name}": backend ${backend.address} is IPv${bf} but the VIP ${service.vip} is IPv${vf}; a service is one family (no NAT64/46)`));
        break;
      }
      case 'table-size-prime':
        errors.push(invalid(tableField, `Maglev table size ${tableSize} must be a prime number`));
        break;
      case 'table-size-backends':
        errors.push(invalid(tableField, `Maglev table size ${tableSize} is smaller than the ${service.backends.length} backends of service "${service.name}"`));
        break;
      case 'nat-port-0':
        errors.push(invalid(`${at}/backends/${broken.backend}/port`, 'a NAT service on every port (port 0) needs backends on port 0: replies could not be mapped back to the client\'s port'));
        break;
      case 'dsr-port':
        errors.push(invalid(`${at}/backends/${broken.backend}/port`, `DSR cannot translate ports: backend port must be 0 or the service port ${service.port}`));
        break;
      case 'duplicate-destination': {
        const backend = service.backends[broken.backend];
        const other = service.backends[broken.first];
        const same = backendKey(other) === backendKey(backend) ? '' : ` (${backendKey(other)}: the same destination in ${service.mode.toUpperCase()} mode)`;
        errors.push(conflict(`${at}/backends/${broken.backend}/address`, `backend ${backendKey(backend)} duplicates /services/${index}/backends/${broken.first}${same} in service "${service.name}"`));
        break;
      }
    }
  }
  const check = service.healthCheck;
  if (check) {
    const hAt = `${at}/healthCheck`;
    if (check.type === 'tcp' && check.path !== undefined) errors.push(invalid(`${hAt}/path`, 'only applies to http checks'));
    if (check.type === 'tcp' && check.expectStatus !== undefined) errors.push(invalid(`${hAt}/expectStatus`, 'only applies to http checks'));
    if (check.type === 'tcp' && check.reuseConnection !== undefined) errors.push(invalid(`${hAt}/reuseConnection`, 'only applies to http checks'));
    if (check.dsrProbe !== undefined && service.mode !== 'dsr') errors.push(invalid(`${hAt}/dsrProbe`, 'only applies to dsr services'));
    if (check.expectStatus && check.expectStatus[0] > check.expectStatus[1]) {
      errors.push(invalid(`${hAt}/expectStatus`, `range [${check.expectStatus.join(', ')}] is empty (low > high)`));
    }
    if (check.timeoutMs > check.intervalMs) errors.push(invalid(`${hAt}/timeoutMs`, `timeout ${check.timeoutMs} ms exceeds the interval ${check.intervalMs} ms`));
    if (check.port === undefined && service.port === 0 && service.backends.some((b) => b.port === 0)) {
      errors.push(invalid(`${hAt}/port`, 'is required when the service and a backend both use port 0 (there is no port to check)'));
    }
  }
  return errors;
}

/** Of two clashing services, the one to blame: the focus if involved, else the later one. */
function blame(a: number, b: number, focus?: number): [number, number] {
  if (focus === b) return [b, a];
  if (focus === a) return [a, b];
  return a > b ? [a, b] : [b, a];
}

/** Checks that look across services: names, listeners, reverse NAT. */
function crossServiceErrors(services: ServiceSpec[], focus?: number): XdplbError[] {
  return crossServiceRuleBreaks(services).map((broken) => {
    const i = broken.service;
    const service = services[i];
    switch (broken.rule) {
      case 'duplicate-name': {
        const [guilty, other] = blame(i, broken.first, focus);
        return conflict(`/services/${guilty}/name`, `service name "${service.name}" is already used by /services/${other}`);
      }
      case 'duplicate-listener': {
        const [guilty, other] = blame(i, broken.first, focus);
        return conflict(`/services/${guilty}/vip`, `${joinHostPort(service.vip, service.port)}/${service.protocol} is already served by "${services[other].name}" (/services/${other})`);
      }
      case 'backend-is-vip': {
        const backend = service.backends[broken.backend];
        return conflict(`/services/${i}/backends/${broken.backend}/address`, `${backend.address} is the VIP of service "${services[broken.owner].name}": packets would loop through the balancer`);
      }
      case 'reverse-clash': {
        const backend = service.backends[broken.backend];
        const [guilty] = blame(i, broken.other, focus);
        const guiltyBackend = guilty === i ? broken.backend : broken.otherBackend;
        const other = guilty === i ? broken.other : i;
        return conflict(`/services/${guilty}/backends/${guiltyBackend}/address`,
          `backend ${joinHostPort(backend.address, backend.port || service.port)}/${service.protocol} is also a NAT backend of "${services[other].name}" ` +
          `(port ${broken.ports}) behind a different VIP:port; stateless reverse NAT could not tell their replies apart`);
      }
    }
  });
}

/** What the data plane's maps can hold (bpf/lb_abi.h sizes). */
function capacityErrors(services: ServiceSpec[]): XdplbError[] {
  const errors: XdplbError[] = [];
  const backends = services.reduce((n, s) => n + s.backends.length, 0);
  if (backends > MAX_TOTAL_BACKENDS) errors.push(invalid('/services', `${backends} backends in all exceed the data plane's ${MAX_TOTAL_BACKENDS}`));
  // IPv4 and IPv6 have a vips and a reverse map each (vips6, reverse6: the same sizes).
  for (const family of [4, 6] as const) {
    const mine = services.filter((s) => familyOf(s.vip) === family);
    const name = family === 4 ? '' : ' IPv6';
    const vips = new Set(mine.map((s) => s.vip)).size;
    if (vips > MAX_VIPS) errors.push(invalid('/services', `${vips} distinct${name} VIPs exceed the data plane's ${MAX_VIPS}`));
    const reverse = mine.filter((s) => s.mode === 'nat').reduce((n, s) => n + s.backends.length, 0);
    if (reverse > MAX_REVERSE_ENTRIES) errors.push(invalid('/services', `${reverse}${name} NAT backends exceed the reverse map's ${MAX_REVERSE_ENTRIES} entries`));
  }
  return errors;
}

/** Checks on users and API tokens. */
function credentialErrors(config: Config): XdplbError[] {
  const errors: XdplbError[] = [];
  const check = (list: Array<{ name: string }>, kind: 'users' | 'tokens', hashField: string, plainField: string) => {
    const names = new Set<string>();
    list.forEach((item, i) => {
      const record = item as unknown as Record<string, unknown>;
      if (names.has(item.name)) errors.push(conflict(`/${kind}/${i}/name`, `${kind === 'users' ? 'user' : 'token'} name "${item.name}" is used twice`));
      names.add(item.name);
      const hasHash = record[hashField] !== undefined;
      const hasPlain = record[plainField] !== undefined;
      if (hasHash === hasPlain) errors.push(invalid(`/${kind}/${i}/${hashField}`, `exactly one of ${hashField} and ${plainField} is required`));
      else if (hasHash && String(record[hashField]).split('$').length !== 6) {
        errors.push(invalid(`/${kind}/${i}/${hashField}`, 'must have the form scrypt$N$r$p$salt$hash'));
      }
    });
  };
  check(config.users, 'users', 'passwordHash', 'password');
  check(config.tokens, 'tokens', 'tokenHash', 'token');
  return errors;
}

/**
 * Every semantic error in a schema-valid config, each naming its field as a JSON pointer.
 * Empty when the config is valid.
 */
export function stateErrors(config: Config, options: ValidateOptions = {}): XdplbError[] {
  const errors: XdplbError[] = [];
  if (!isPrime(config.maglev.tableSize)) errors.push(invalid('/maglev/tableSize', `${config.maglev.tableSize} must be a prime number`));
  const { port } = parseListen(config.api.listen);
  if (!(port >= 1 && port <= 65535)) errors.push(invalid('/api/listen', `port ${port} must be 1..65535`));
  const ifnames = new Set<string>();
  config.interfaces.forEach((iface, i) => {
    if (ifnames.has(iface.name)) errors.push(conflict(`/interfaces/${i}/name`, `interface "${iface.name}" is listed twice`));
    ifnames.add(iface.name);
  });
  // One BGP session per peer address (BIRD refuses two protocols of one name: peer_<address>).
  const peers = new Set<string>();
  config.bgp?.peers.forEach((peer, i) => {
    if (peers.has(peer.address)) errors.push(conflict(`/bgp/peers/${i}/address`, `BGP peer ${peer.address} is listed twice`));
    peers.add(peer.address);
  });
  config.services.forEach((service, i) => errors.push(...serviceErrors(service, i, config)));
  errors.push(...crossServiceErrors(config.services, options.focus));
  errors.push(...capacityErrors(config.services));
  errors.push(...credentialErrors(config));
  // A service-level table error blamed on /maglev/tableSize would repeat per service: keep one.
  const unique = new Map<string, XdplbError>();
  for (const error of errors) if (!unique.has(error.message)) unique.set(error.message, error);
  return [...unique.values()];
}

/**
 * Validates a whole config: the schema first, then the semantic checks.
 * Returns a deep copy with the defaults filled in.
 * @throws XdplbError XDPLB_ERR_VALIDATION (400) or XDPLB_ERR_CONFLICT (409) for the first
 *   problem, with `field` set to its JSON pointer.
 */
export function validateState(input: unknown, options: ValidateOptions = {}): Config {
  const config = validateInput<Config>(ConfigSchema, input ?? {});
  canonicalizeAddresses(config.services);
  // BGP peers too: any text form of an IPv6 peer names one session (src/cluster/bird.ts).
  for (const peer of config.bgp?.peers ?? []) peer.address = canonicalOrSelf(peer.address);
  const errors = stateErrors(config, options);
  if (errors.length > 0) throw errors[0];
  return config;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * Rewrites an error's pointer from the whole config to the input the caller gave (e.g. a
 * POSTed ServiceSpec at /services/3 reports "/backends/0/port"), so that the API names the
 * field in the request body. Errors elsewhere keep their full pointer.
 */
function relativeTo<T>(prefix: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof XdplbError && error.field !== undefined && (error.field === prefix || error.field.startsWith(`${prefix}/`))) {
      const field = error.field.slice(prefix.length);
      const message = error.message.startsWith(`${error.field}:`) ? `${field || '(body)'}:${error.message.slice(error.field.length + 1)}` : error.message;
      throw new XdplbError(error.code, message, field);
    }
    throw error;
  }
}

function notFound(what: string): XdplbError {
  return new XdplbError('XDPLB_ERR_NOT_FOUND', what);
}

/** Backend index by key (backendKey) of a frozen service of a DesiredState: a change names its
 * backend by key, a scan built every key string (1000 at 1000 backends) per change. */
const backendIndexes = new WeakMap<ServiceSpec, Map<string, number>>();

/** An immutable, valid desired state. Every mutation returns a new DesiredState. */
export class DesiredState {
  readonly config: Readonly<Config>;

  /**
   * @throws XdplbError VALIDATION / CONFLICT when the config is invalid (see validateState).
   */
  constructor(config: unknown) {
    this.config = deepFreeze(validateState(config));
  }

  /** A deep, mutable copy of the config (e.g. to save it). */
  toConfig(): Config {
    return structuredClone(this.config) as Config;
  }

  get services(): readonly ServiceSpec[] {
    return this.config.services;
  }

  /** @throws XdplbError NOT_FOUND */
  getService(name: string): ServiceSpec {
    return this.config.services[this.serviceIndex(name)];
  }

  settings(): SettingsView {
    return { fragPolicy: this.config.fragments, sampleRate: this.config.sampling.rate, flowCache: this.config.flowCache };
  }

  /**
   * The spec is validated by its schema, then every rule over the result, which shares the
   * other services (as addBackend; a config at MAX_SERVICES goes the whole way).
   * @throws XdplbError VALIDATION (field relative to the spec), CONFLICT
   */
  createService(spec: unknown): DesiredState {
    const index = this.config.services.length;
    if (index >= MAX_SERVICES) {
      const config = this.toConfig();
      return this.next(`/services/${index}`, () => {
        config.services.push(validateInput<ServiceSpec>(ServiceSpecSchema, spec, `/services/${index}`));
        return validateState(config, { focus: index });
      });
    }
    return this.next(`/services/${index}`, () => this.withService(index, canonicalService(validateInput<ServiceSpec>(ServiceSpecSchema, spec, `/services/${index}`))));
  }

  /** @throws XdplbError NOT_FOUND, VALIDATION (name must match, field relative to the spec), CONFLICT */
  replaceService(name: string, spec: unknown): DesiredState {
    const index = this.serviceIndex(name);
    return this.next(`/services/${index}`, () => {
      const service = validateInput<ServiceSpec>(ServiceSpecSchema, spec, `/services/${index}`);
      if (service.name !== name) throw invalid(`/services/${index}/name`, `must match the service being replaced ("${name}"); delete and create to rename`);
      return this.withService(index, canonicalService(service));
    });
  }

  /**
   * No rule can break by a service less (each forbids something services bring), so the result
   * of a valid state is valid, sharing the other services (state.test compares with validateState).
   * @throws XdplbError NOT_FOUND
   */
  deleteService(name: string): DesiredState {
    const index = this.serviceIndex(name);
    const services = [...this.config.services];
    services.splice(index, 1);
    return DesiredState.fromValid({ ...this.config, services } as Config);
  }

  /**
   * This config with `service` (schema-valid, addresses canonical) at `index` (replaced, or added
   * at the end), if every rule holds over the whole result (stateErrors): the rest is shared, not
   * copied nor validated by the schema again (it was when it was made).
   * @throws XdplbError the first broken rule
   */
  private withService(index: number, service: ServiceSpec): Config {
    const services = [...this.config.services];
    services[index] = service;
    const config = { ...this.config, services } as Config;
    const errors = stateErrors(config, { focus: index });
    if (errors.length > 0) throw errors[0];
    return config;
  }

  /**
   * The new backend is validated by its schema, then every rule (stateErrors) over the whole
   * result, which shares the rest of this (valid, frozen) config: no clone, and no schema pass
   * over what was validated before (state.test compares with validateState of a copy). A
   * service already at MAX_BACKENDS_PER_SERVICE goes the whole way (the schema's error).
   * @throws XdplbError NOT_FOUND, VALIDATION (field relative to the spec), CONFLICT
   */
  addBackend(serviceName: string, spec: unknown): DesiredState {
    const index = this.serviceIndex(serviceName);
    const service = this.config.services[index];
    const at = `/services/${index}/backends/${service.backends.length}`;
    if (service.backends.length >= MAX_BACKENDS_PER_SERVICE) {
      const config = this.toConfig();
      return this.next(at, () => {
        config.services[index].backends.push(validateInput<BackendSpec>(BackendSpecSchema, spec, at));
        return validateState(config, { focus: index });
      });
    }
    return this.next(at, () => {
      const backend = validateInput<BackendSpec>(BackendSpecSchema, spec, at);
      backend.address = canonical(backend.address);
      return this.withService(index, { ...service, backends: [...service.backends, backend] });
    });
  }

  /**
   * A weight or a drain: as patchBackends (only the patch is validated, every rule holds as
   * before; the new config shares all but the backend's service and its list), the field
   * relative to the patch.
   * @throws XdplbError NOT_FOUND (service or backend), VALIDATION
   */
  patchBackend(serviceName: string, key: string, patch: unknown): DesiredState {
    const index = this.serviceIndex(serviceName);
    const b = this.backendIndex(index, key);
    const at = `/services/${index}/backends/${b}`;
    return relativeTo(at, () => this.patchBackends([{ service: index, backend: b, patch, at }]));
  }

  /**
   * Weights and drains of several backends (by service index and backend index), validated and
   * applied together. Nothing else of the config changes, and none of the config's rules
   * (stateErrors, src/config/rules.ts) looks at a weight or a drain, so every patch valid means
   * the whole result valid: only the patches are validated (state.test compares the result with
   * validateState's). The new config shares every untouched (frozen) part with this one, so a
   * change of 100 of 1000 backends copies 100 backends, not the config (a clone and a whole
   * validation cost ~1.5 ms at 1000 backends).
   * @throws XdplbError VALIDATION, its field under the change's `at`
   */
  patchBackends(changes: ReadonlyArray<{ service: number; backend: number; patch: unknown; at: string }>): DesiredState {
    const valid = changes.map((c) => validateInput<{ weight?: number; drain?: boolean }>(BackendPatchSchema, c.patch, c.at));
    const services = [...this.config.services];
    const copied = new Map<number, BackendSpec[]>();
    changes.forEach((c, k) => {
      let backends = copied.get(c.service);
      if (!backends) {
        const service = services[c.service];
        backends = [...service.backends];
        copied.set(c.service, backends);
        services[c.service] = { ...service, backends };
        // The same addresses and ports at the same places: the key index carries over.
        const keys = backendIndexes.get(service);
        if (keys) backendIndexes.set(services[c.service], keys);
      }
      backends[c.backend] = { ...backends[c.backend], ...valid[k] };
    });
    return DesiredState.fromValid({ ...this.config, services } as Config);
  }

  /**
   * No rule of the config (stateErrors, src/config/rules.ts) can break by a backend less (each
   * forbids something backends bring: duplicates, clashes, too many), so the result of a valid
   * state is valid: it shares all but the service and its list (state.test compares with
   * validateState of a copy).
   * @throws XdplbError NOT_FOUND (service or backend)
   */
  deleteBackend(serviceName: string, key: string): DesiredState {
    const index = this.serviceIndex(serviceName);
    const b = this.backendIndex(index, key);
    const services = [...this.config.services];
    const backends = [...services[index].backends];
    backends.splice(b, 1);
    services[index] = { ...services[index], backends };
    return DesiredState.fromValid({ ...this.config, services } as Config);
  }

  /** @throws XdplbError VALIDATION (field relative to the patch) */
  patchSettings(patch: unknown): DesiredState {
    const config = this.toConfig();
    return this.next('', () => {
      const changes = validateInput<Partial<SettingsView>>(SettingsPatchSchema, patch);
      if (changes.fragPolicy !== undefined) config.fragments = changes.fragPolicy;
      if (changes.sampleRate !== undefined) config.sampling.rate = changes.sampleRate;
      if (changes.flowCache !== undefined) config.flowCache = changes.flowCache;
      return validateState(config);
    });
  }

  private next(prefix: string, build: () => Config): DesiredState {
    return DesiredState.fromValid(prefix ? relativeTo(prefix, build) : build());
  }

  /** Wraps a config that validateState has just returned (skips validating it twice). */
  private static fromValid(config: Config): DesiredState {
    const state = Object.create(DesiredState.prototype) as { config: Readonly<Config> };
    state.config = deepFreeze(config);
    return state as DesiredState;
  }

  private serviceIndex(name: string): number {
    const index = this.config.services.findIndex((s) => s.name === name);
    if (index < 0) throw notFound(`service "${name}" does not exist`);
    return index;
  }

  private backendIndex(serviceIndex: number, key: string): number {
    const index = this.findBackend(serviceIndex, canonicalBackendKey(key));
    if (index < 0) throw notFound(`backend "${key}" does not exist in service "${this.config.services[serviceIndex].name}"`);
    return index;
  }

  /** The index of the backend with canonical key `key` (backendKey) in a service, or -1. */
  findBackend(serviceIndex: number, key: string): number {
    const service = this.config.services[serviceIndex];
    let keys = backendIndexes.get(service);
    if (!keys) backendIndexes.set(service, keys = new Map(service.backends.map((b, i) => [backendKey(b), i])));
    return keys.get(key) ?? -1;
  }
}
