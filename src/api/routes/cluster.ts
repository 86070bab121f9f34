/**
 * The cluster (issue 13; contract in docs/api.md): GET /api/v1/cluster (viewer): every node with
 * its applied revision, data plane, BGP, health and rates, and where their health views
 * disagree; PUT /api/v1/nodes/{name}/drain (admin): withdraw a node's VIPs (it keeps forwarding
 * what still arrives for graceSeconds) or announce them again; during a Maglev transition a
 * drain needs force (409 otherwise). File mode: this node alone.
 */
import { Type } from '@sinclair/typebox';
import { NODE_NAME_PATTERN } from '../../config/schema';
import { READ, WRITE, type RoutePlugin } from '../route-kit';

const NodeParams = Type.Object({ name: Type.String({ pattern: NODE_NAME_PATTERN, maxLength: 63, description: 'node name' }) }, { additionalProperties: false });
const DrainBody = Type.Object({
  drain: Type.Boolean({ description: 'true: withdraw this node\'s VIPs (it keeps forwarding flows that still arrive); false: announce again' }),
  graceSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400, description: 'how long the drained node keeps forwarding in-flight flows (default 0)' })),
  force: Type.Optional(Type.Boolean({ description: 'drain even during a Maglev transition (409 otherwise): connections only this node remembers may be reset' })),
}, { additionalProperties: false });
const ErrorRef = Type.Unsafe({ $ref: 'Error#' });

export const clusterRoutes: RoutePlugin = async (api, ctx) => {
  const { cluster } = ctx;
  api.get('/api/v1/cluster', {
    config: READ,
    schema: { summary: 'Every node of the cluster: revision applied, data plane, BGP, health, rates; and where their health views disagree' },
  }, async () => cluster.view());
  api.put<{ Params: { name: string }; Body: { drain: boolean; graceSeconds?: number; force?: boolean } }>('/api/v1/nodes/:name/drain', {
    config: WRITE,
    schema: { summary: 'Drain (withdraw, keep forwarding) or undrain a node; a drain during a Maglev transition needs force', params: NodeParams, body: DrainBody, response: { 404: ErrorRef, 400: ErrorRef, 409: ErrorRef, 503: ErrorRef } },
  }, async (request) => cluster.setDrain(request.params.name, request.body.drain, request.body.graceSeconds ?? 0, request.body.force ?? false));
};
