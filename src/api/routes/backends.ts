/** Backends of a service: added, patched (weight, drain) and deleted one at a time. */
import { Type, type Static } from '@sinclair/typebox';
import type { BackendSpec } from '../../domain/types';
import type { BackendPatchSchema } from '../../config/schema';
import { WRITE, BackendParams, ServiceName, errors, ref, type RoutePlugin } from '../route-kit';

export const backendsRoutes: RoutePlugin = async (api, { controller, changed }) => {
  api.post<{ Params: Static<typeof ServiceName>; Body: BackendSpec }>('/api/v1/services/:name/backends', { config: WRITE, schema: { params: ServiceName, body: ref<BackendSpec>('BackendSpec'), response: { 201: ref('Service'), ...errors(400, 404, 409) } } }, async (request, reply) => {
    const view = await controller.addBackend(request.params.name, request.body);
    changed('add_backend');
    return reply.code(201).send(view);
  });
  api.patch<{ Params: Static<typeof BackendParams>; Body: Static<typeof BackendPatchSchema> }>('/api/v1/services/:name/backends/:backend', { config: WRITE, schema: { params: BackendParams, body: ref('BackendPatch'), response: { 200: ref('Service'), ...errors(400, 404) } } }, async (request) => {
    const { name, backend } = request.params;
    const view = await controller.patchBackend(name, backend, request.body);
    changed('patch_backend');
    return view;
  });
  api.delete<{ Params: Static<typeof BackendParams> }>('/api/v1/services/:name/backends/:backend', { config: WRITE, schema: { params: BackendParams, response: { 204: Type.Null(), ...errors(404) } } }, async (request, reply) => {
    const { name, backend } = request.params;
    await controller.deleteBackend(name, backend);
    changed('delete_backend');
    return reply.code(204).send();
  });
};
