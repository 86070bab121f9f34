/**
 * Transitions: the moved Maglev slots of each service (docs/decisions.md "Stateless steady
 * state"), read-only. A moved slot's packets consult the flow cache until a sweep finds it quiet.
 */
import { Type } from '@sinclair/typebox';
import type { Controller, TransitionsView } from '../../domain/types';
import { XdplbError } from '../../domain/errors';
import { READ, ServiceName, errors, type RoutePlugin } from '../route-kit';

const Ms = Type.Union([Type.Integer({ description: 'ms since the epoch' }), Type.Null()]);
const ServiceTransition = Type.Object({
  service: Type.String(),
  tableSize: Type.Integer({ description: 'slots of the installed table (0: none)' }),
  movedSlots: Type.Integer({ description: 'slots marked moved: their packets consult the flow cache' }),
  movedShare: Type.Number({ description: 'movedSlots / tableSize' }),
  seenSlots: Type.Integer({ description: 'moved slots whose earlier backends\' flows were seen since the last sweep' }),
  youngSlots: Type.Integer({ description: 'moved slots in the first period of their transition (UDP misses go to the previous backend)' }),
  since: Type.Union([Type.Number({ description: 'when the oldest running transition began, ms since the epoch' }), Type.Null()]),
});
const Transitions = Type.Object({
  transitionSeconds: Type.Number({ description: 'the sweep period; a mark lasts at least two' }),
  nextSweepAt: Ms,
  flowCache: Type.Boolean({ description: 'false: marks are kept but the program ignores them' }),
  services: Type.Array(ServiceTransition),
});

/** The controller's view, or (a controller without a data plane) every service at rest. */
function transitionsOf(controller: Controller): TransitionsView {
  if (controller.transitions) return controller.transitions();
  return {
    transitionSeconds: 60, nextSweepAt: null, flowCache: controller.getSettings().flowCache,
    services: controller.listServices().map((s) => ({ service: s.name, tableSize: s.tableSize ?? 0, movedSlots: 0, movedShare: 0, seenSlots: 0, youngSlots: 0, since: null })),
  };
}

export const transitionsRoutes: RoutePlugin = async (api, { controller }) => {
  api.get('/api/v1/transitions', { config: READ, schema: { summary: 'Moved Maglev slots of every service and the sweep schedule', response: { 200: Transitions } } },
    async () => transitionsOf(controller));
  api.get<{ Params: { name: string } }>('/api/v1/transitions/:name', {
    config: READ,
    schema: { summary: 'Moved Maglev slots of one service', params: ServiceName, response: { 200: Type.Composite([Type.Omit(Transitions, ['services']), ServiceTransition]), ...errors(404) } },
  }, async (request) => {
    const { services, ...rest } = transitionsOf(controller);
    const one = services.find((s) => s.service === request.params.name);
    if (!one) throw new XdplbError('XDPLB_ERR_NOT_FOUND', `service "${request.params.name}" does not exist`);
    return { ...rest, ...one };
  });
};
