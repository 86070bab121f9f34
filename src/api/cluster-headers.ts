/**
 * In etcd mode, on every API answer, the headers that say whether this node's state may be stale:
 *   X-Xdplb-Revision: the desired-state revision this node applied
 *   X-Xdplb-Stale: the reason (only while stale: etcd unreachable, or a revision not applied)
 * and a change sent with If-Match: <revision> is applied only on that revision (else 409).
 * Hooks on the whole API (not a route plugin: a plugin's hooks cover only its own routes).
 */
import type { FastifyInstance } from 'fastify';
import type { ClusterService } from '../cluster/status';
import { XdplbError } from '../domain/errors';
import { parseIfMatch, requestRevision } from '../store/precondition';

export function clusterHeaders(app: FastifyInstance, cluster: ClusterService): void {
  const store = cluster.store;
  if (!store) return;
  app.addHook('onSend', async (request, reply, payload) => {
    if (!request.url.startsWith('/api/')) return payload;
    void reply.header('x-xdplb-revision', String(store.appliedModRevision));
    const stale = cluster.stale();
    // Header values are one line of visible ASCII.
    if (stale.stale) void reply.header('x-xdplb-stale', (stale.reason ?? 'stale').replace(/[^\x20-\x7e]/g, '?').slice(0, 500));
    return payload;
  });
  // If-Match: <revision> on a change: refused (409) unless the cluster's state is still the one
  // the client read (the store's transaction checks it again, atomically).
  app.addHook('preHandler', async (request) => {
    const header = request.headers['if-match'];
    if (header === undefined || request.method === 'GET' || request.method === 'HEAD') return;
    const revision = typeof header === 'string' ? parseIfMatch(header) : null;
    if (revision === null) throw new XdplbError('XDPLB_ERR_VALIDATION', 'if-match: must be one revision number, as read from X-Xdplb-Revision', 'if-match');
    requestRevision.enterWith(revision);
  });
}
