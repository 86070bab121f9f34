/** Settings (fragments, sampling, flow cache) and the flow hash seed. */
import { Type, type Static } from '@sinclair/typebox';
import type { SettingsView } from '../../domain/types';
import type { SettingsPatchSchema } from '../../config/schema';
import { XdplbError } from '../../domain/errors';
import { READ, WRITE, errors, ref, type RoutePlugin } from '../route-kit';

// The flow hash seed: shown, and changed only by this explicit call (a reload never changes it).
const HashSeed = Type.Object({ hashSeed: Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'flow hash seed of the running program' }) }, { additionalProperties: false });

export const settingsRoutes: RoutePlugin = async (api, { controller, changed }) => {
  api.get('/api/v1/settings', { config: READ, schema: { response: { 200: ref<SettingsView>('Settings') } } }, async () => controller.getSettings());
  api.patch<{ Body: Static<typeof SettingsPatchSchema> }>('/api/v1/settings', { config: WRITE, schema: { body: ref('SettingsPatch'), response: { 200: ref('Settings'), ...errors(400) } } }, async (request) => {
    const settings = await controller.patchSettings(request.body);
    changed('patch_settings');
    return settings;
  });

  api.get('/api/v1/hash-seed', { config: READ, schema: { response: { 200: HashSeed } } }, async () => {
    if (!controller.hashSeed) throw new XdplbError('XDPLB_ERR_UNAVAILABLE', 'this controller does not know the hash seed');
    return controller.hashSeed();
  });
  api.put<{ Body: Static<typeof HashSeed> }>('/api/v1/hash-seed', { config: WRITE, schema: { body: HashSeed, response: { 200: HashSeed, ...errors(400) } } }, async (request) => {
    if (!controller.setHashSeed) throw new XdplbError('XDPLB_ERR_UNAVAILABLE', 'this controller cannot change the hash seed');
    const result = await controller.setHashSeed(request.body.hashSeed);
    changed('set_hash_seed');
    return result;
  });
};
