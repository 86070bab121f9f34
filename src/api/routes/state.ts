/**
 * The desired state as a whole (issue 16): read it, replace it in one transaction (or, dry run,
 * see the diff and the Maglev disruption it would cause), and change several backends' weight
 * or drain in one change.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ServiceSpec, SettingsView, StateDocument } from '../../domain/types';
import { XdplbError } from '../../domain/errors';
import { MAX_SERVICES } from '../../config/schema';
import { READ, WRITE, Any, errors, ref, type RoutePlugin } from '../route-kit';

/**
 * Largest state document: every service full (255 x 1000 backends is ~18 MB of JSON); the
 * server's default (1 MiB) holds ~15 full services. Only admins get this far (authentication
 * runs before the body is read).
 */
export const STATE_BODY_LIMIT = 32 * 1024 * 1024;

/** Largest bulk change (one request): every backend of a full service. */
export const MAX_BULK_CHANGES = 1000;

const StateBody = Type.Object({
  services: Type.Array(ref<ServiceSpec>('ServiceSpec'), { maxItems: MAX_SERVICES, description: 'every service of the desired state (those not listed are deleted)' }),
  settings: Type.Optional(ref<Partial<SettingsView>>('SettingsPatch')),
}, { additionalProperties: false });
const StateQuery = Type.Object({
  dryRun: Type.Optional(Type.Union([Type.Literal('0'), Type.Literal('1'), Type.Literal('false'), Type.Literal('true')],
    { description: '1 (or true): only compute the diff and the disruption; nothing changes' })),
}, { additionalProperties: false });
const BulkBody = Type.Object({
  changes: Type.Array(Type.Object({
    service: Type.String({ maxLength: 63 }),
    backend: Type.String({ maxLength: 64, description: '"address:port", "[v6]:port" for IPv6 (any text form of the address)' }),
    weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    drain: Type.Optional(Type.Boolean()),
  }, { additionalProperties: false, minProperties: 3 }), { minItems: 1, maxItems: MAX_BULK_CHANGES }),
}, { additionalProperties: false });

export const stateRoutes: RoutePlugin = async (api, { controller, changed }) => {
  const unavailable = (what: string) => new XdplbError('XDPLB_ERR_UNAVAILABLE', `this controller cannot ${what}`);
  api.get('/api/v1/state', { config: READ, schema: { response: { 200: Any } } }, async (): Promise<StateDocument> => {
    if (!controller.stateDocument) throw unavailable('show the desired state');
    return controller.stateDocument();
  });
  api.put<{ Body: Static<typeof StateBody>; Querystring: Static<typeof StateQuery> }>('/api/v1/state',
    { config: WRITE, bodyLimit: STATE_BODY_LIMIT, schema: { body: StateBody, querystring: StateQuery, response: { 200: Any, ...errors(400, 409) } } }, async (request) => {
      if (!controller.applyStateDocument) throw unavailable('apply a whole state');
      const dryRun = request.query.dryRun === '1' || request.query.dryRun === 'true';
      const result = await controller.applyStateDocument(request.body, { dryRun });
      if (result.applied) changed('apply_state');
      return result;
    });
  api.patch<{ Body: Static<typeof BulkBody> }>('/api/v1/state/backends',
    { config: WRITE, schema: { body: BulkBody, response: { 200: Any, ...errors(400, 404) } } }, async (request) => {
      if (!controller.patchBackends) throw unavailable('change several backends at once');
      const result = await controller.patchBackends(request.body.changes);
      changed('patch_backends');
      return result;
    });
};
