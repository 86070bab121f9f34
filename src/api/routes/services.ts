/** Services: the desired state's services, listed, read, created, replaced and deleted whole. */
import { Type, type Static } from '@sinclair/typebox';
import type { ServiceSpec, ServiceView } from '../../domain/types';
import { XdplbError } from '../../domain/errors';
import { READ, WRITE, ServiceName, errors, ref, type RoutePlugin } from '../route-kit';

type ServiceParams = Static<typeof ServiceName>;

export const servicesRoutes: RoutePlugin = async (api, { controller, changed }) => {
  api.get('/api/v1/services', { config: READ, schema: { response: { 200: Type.Object({ services: Type.Array(ref<ServiceView>('Service')) }) } } }, async () => ({ services: controller.listServices() }));
  api.get<{ Params: ServiceParams }>('/api/v1/services/:name', { config: READ, schema: { params: ServiceName, response: { 200: ref('Service'), ...errors(404) } } }, async (request) => {
    return controller.getService(request.params.name);
  });
  api.post<{ Body: ServiceSpec }>('/api/v1/services', { config: WRITE, schema: { body: ref<ServiceSpec>('ServiceSpec'), response: { 201: ref('Service'), ...errors(400, 409) } } }, async (request, reply) => {
    const view = await controller.createService(request.body);
    changed('create_service');
    return reply.code(201).send(view);
  });
  api.put<{ Params: ServiceParams; Body: ServiceSpec }>('/api/v1/services/:name', { config: WRITE, schema: { params: ServiceName, body: ref<ServiceSpec>('ServiceSpec'), response: { 200: ref('Service'), ...errors(400, 404, 409) } } }, async (request) => {
    const { name } = request.params;
    const spec = request.body;
    if (spec.name !== name) throw new XdplbError('XDPLB_ERR_VALIDATION', `/name: must match the service in the URL ("${name}")`, '/name');
    const view = await controller.replaceService(name, spec);
    changed('replace_service');
    return view;
  });
  api.delete<{ Params: ServiceParams }>('/api/v1/services/:name', { config: WRITE, schema: { params: ServiceName, response: { 204: Type.Null(), ...errors(404) } } }, async (request, reply) => {
    await controller.deleteService(request.params.name);
    changed('delete_service');
    return reply.code(204).send();
  });
};
