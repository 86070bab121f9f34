/** Benchmarks: the newest results saved by `xdplb bench` (the dashboard's Bench page). */
import { READ, Any, type RoutePlugin } from '../route-kit';

export const benchRoutes: RoutePlugin = async (api, { controller }) => {
  api.get('/api/v1/bench/latest', { config: READ, schema: { summary: 'The newest saved benchmark results', response: { 200: Any } } }, async () => ({ results: controller.latestBench() }));
};
