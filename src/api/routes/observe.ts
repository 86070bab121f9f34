/**
 * Observing the data plane (read-only but for BPF stats): Prometheus metrics, the host's BPF
 * programs, the balancer's maps, the attached interfaces, stats and their history, and the
 * live stream of stats, trace events, health and state (stream.ts).
 */
import { Type, type Static } from '@sinclair/typebox';
import { MapPageQuerySchema } from '../../config/schema';
import { registerStream } from '../stream';
import { READ, WRITE, Any, errors, type RoutePlugin } from '../route-kit';

const ProgramStatsBody = Type.Object({ enabled: Type.Boolean() }, { additionalProperties: false });
const MapParams = Type.Object({ name: Type.String({ maxLength: 64 }) }, { additionalProperties: false });
const HistoryQuery = Type.Object({ seconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 300, default: 300 })) }, { additionalProperties: false });

export const observeRoutes: RoutePlugin = async (api, { controller, auth, metrics, stream, changed }) => {
  api.get('/metrics', { config: { access: 'metrics' }, schema: { summary: 'Prometheus metrics (who may read them: config api.metrics)' } }, async (_request, reply) => {
    const text = await metrics.render();
    return reply.type(metrics.registry.contentType).send(text);
  });

  // Kernel views
  api.get('/api/v1/programs', { config: READ, schema: { summary: 'BPF programs on the host', response: { 200: Any } } }, async () => controller.programs());
  api.post<{ Body: Static<typeof ProgramStatsBody> }>('/api/v1/programs/stats', {
    config: WRITE,
    schema: { summary: 'Turn BPF_ENABLE_STATS on or off', body: ProgramStatsBody, response: { 200: Type.Object({ statsEnabled: Type.Boolean() }) } },
  }, async (request) => {
    controller.setProgramStats(request.body.enabled);
    changed('program_stats');
    return { statsEnabled: controller.programs().statsEnabled };
  });
  api.get('/api/v1/maps', { config: READ, schema: { summary: 'The balancer\'s BPF maps', response: { 200: Any } } }, async () => ({ maps: controller.maps() }));
  // Every query field has a default (Ajv fills it in), so the validated query is Required<>.
  api.get<{ Params: Static<typeof MapParams>; Querystring: Required<Static<typeof MapPageQuerySchema>> }>('/api/v1/maps/:name', {
    config: READ,
    schema: { summary: 'Decoded entries of one map', params: MapParams, querystring: MapPageQuerySchema, response: { 200: Any, ...errors(404) } },
  }, async (request) => {
    const { offset, limit } = request.query;
    return controller.mapEntries(request.params.name, offset, limit);
  });
  api.get('/api/v1/interfaces', { config: READ, schema: { summary: 'Interfaces where xdplb is attached', response: { 200: Any } } }, async () => ({ interfaces: controller.interfaces() }));

  // Stats
  api.get('/api/v1/stats', { config: READ, schema: { summary: 'Current rates and counters (StatsView)', response: { 200: Any } } }, async () => controller.stats());
  api.get<{ Querystring: Required<Static<typeof HistoryQuery>> }>('/api/v1/stats/history', {
    config: READ,
    schema: { summary: 'The last N seconds of StatsView samples (1 Hz)', querystring: HistoryQuery, response: { 200: Any } },
  }, async (request) => ({ samples: controller.statsHistory(request.query.seconds) }));

  registerStream(api, controller, metrics, stream, auth);
};
