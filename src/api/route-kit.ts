/**
 * What every route plugin of src/api/routes/ is handed and may use (docs/architecture.md, "API
 * routes"): the Controller, the AuthStore, the metrics, who may call a route (`config.access`),
 * and the schema helpers. server.ts registers each plugin inside the context that already
 * checks Host/Origin and authenticates, so a plugin declares access and never checks it.
 */
import type { FastifyPluginAsync } from 'fastify';
import { Type, type TUnsafe } from '@sinclair/typebox';
import type { Controller } from '../domain/types';
import type { Identity, AuthStore } from './auth';
import type { ApiMetrics } from './metrics';
import type { StreamOptions } from './stream';

/** Who may call a route: anyone, any authenticated user, admins only, or as config api.metrics says. */
export type Access = 'public' | 'read' | 'write' | 'metrics';

declare module 'fastify' {
  interface FastifyContextConfig { access?: Access; queryToken?: boolean }
  interface FastifyRequest { identity: Identity | null; credentialKey: string | null }
  interface FastifyInstance { xdplbMetrics: ApiMetrics }
}

/** The options every route plugin receives. */
import type { ClusterService } from '../cluster/status';

export interface RouteContext {
  controller: Controller;
  auth: AuthStore;
  metrics: ApiMetrics;
  stream?: StreamOptions;
  /** The cluster view and node drain (file mode: this node alone). */
  cluster: ClusterService;
  /** Counts one successful change (xdplb_api_changes_total{operation}). */
  changed(operation: string): void;
}

/** A resource's routes: `export const fooRoutes: RoutePlugin = async (api, ctx) => { api.get(...) }`. */
export type RoutePlugin = FastifyPluginAsync<RouteContext>;

/** Route configs by access level. */
export const PUBLIC = { access: 'public' } as const;
export const READ = { access: 'read' } as const;
export const WRITE = { access: 'write' } as const;

/**
 * A reference to a named schema of src/config/schema.ts (NAMED_SCHEMAS, registered on the
 * server and published in OpenAPI under its $id), typed as the value it validates into.
 */
export function ref<T = unknown>(id: string): TUnsafe<T> {
  return Type.Unsafe<T>({ $ref: `${id}#` });
}

/** Error responses of a route, by status, for OpenAPI. */
export function errors(...codes: number[]): Record<number, TUnsafe<unknown>> {
  return Object.fromEntries(codes.map((c) => [c, ref('Error')]));
}

/** A response documented as any JSON object. */
export const Any = Type.Object({}, { additionalProperties: true });

/** Path parameters: a service; a backend ("address:port") of a service. */
export const ServiceName = Type.Object({ name: Type.String({ maxLength: 63 }) }, { additionalProperties: false });
export const BackendParams = Type.Object({ name: Type.String({ maxLength: 63 }), backend: Type.String({ maxLength: 64, description: '"address:port", "[v6]:port" for IPv6 (URL-encoded; any text form of the address)' }) }, { additionalProperties: false });
