/**
 * Cluster routes (issue 13; contract in docs/api.md): GET /api/v1/cluster (viewer) and
 * PUT /api/v1/nodes/{name}/drain (admin), and on every API answer in etcd mode the headers
 * that say whether this node's state may be stale:
 *   X-Xdplb-Revision: the desired-state revision this node applied
 *   X-Xdplb-Stale: the reason (only while stale: etcd unreachable, or a revision not applied)
 * and a change sent with If-Match: <revision> is applied only on that revision (else 409).
 * Registered by server.ts with one line (not encapsulated: the header hook covers every route).
 */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ClusterService } from '../cluster/status';
import { NODE_NAME_PATTERN } from '../config/schema';
import { XdplbError } from './errors';
import { parseIfMatch, requestRevision } from '../store/precondition';

const NodeParams = Type.Object({ name: Type.String({ pattern: NODE_NAME_PATTERN, maxLength: 63, description: 'node name' }) }, { additionalProperties: false });
const DrainBody = Type.Object({
  drain: Type.Boolean({ description: 'true: withdraw this node\'s VIPs (it keeps forwarding flows that still arrive); false: announce again' }),
  graceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400, description: 'how long the drained node keeps forwarding in-flight flows (default 0)' })),
}, { additionalProperties: false });
const ErrorRef = Type.Unsafe({ $ref: 'Error#' });

export function registerClusterRoutes(app: FastifyInstance, cluster: ClusterService): void {
  if (cluster.store) {
    app.addHook('onSend', async (request, reply, payload) => {
      if (!request.url.startsWith('/api/')) return payload;
      void reply.header('x-xdplb-revision', String(cluster.store!.appliedModRevision));
      const stale = cluster.stale();
      // Header values are one line of visible ASCII.
      if (stale.stale) void reply.header('x-xdplb-stale', (stale.reason ?? 'stale').replace(/[^\x20-\x7e]/g, '?').slice(0, 500));
      return payload;
    });
    // If-Match: <revision> on a change: refused (409) unless the cluster's state is still the
    // one the client read (the store's transaction checks it again, atomically).
    app.addHook('preHandler', async (request) => {
      const header = request.headers['if-match'];
      if (header === undefined || request.method === 'GET' || request.method === 'HEAD') return;
      const revision = typeof header === 'string' ? parseIfMatch(header) : null;
      if (revision === null) throw new XdplbError('XDPLB_ERR_VALIDATION', 'if-match: must be one revision number, as read from X-Xdplb-Revision', 'if-match');
      requestRevision.enterWith(revision);
    });
  }
  app.get('/api/v1/cluster', {
    config: { access: 'read' },
    schema: { summary: 'Every node of the cluster: revision applied, data plane, BGP, health, rates; and where their health views disagree' },
  }, async () => cluster.view());
  app.put('/api/v1/nodes/:name/drain', {
    config: { access: 'write' },
    schema: { summary: 'Drain (withdraw, keep forwarding) or undrain a node', params: NodeParams, body: DrainBody, response: { 404: ErrorRef, 400: ErrorRef, 503: ErrorRef } },
  }, async (request) => {
    const { name } = request.params as { name: string };
    const body = request.body as { drain: boolean; graceSeconds?: number };
    return cluster.setDrain(name, body.drain, body.graceSeconds ?? 0);
  });
}
