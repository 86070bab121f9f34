/** Auth: log in for a session, log out (or revoke an API token), who am I. */
import { Type, type Static } from '@sinclair/typebox';
import { bearerFrom } from '../auth';
import { PUBLIC, READ, errors, type RoutePlugin } from '../route-kit';

const LoginBody = Type.Object({ username: Type.String({ minLength: 1, maxLength: 256 }), password: Type.String({ maxLength: 1024 }) }, { additionalProperties: false });
const User = Type.Object({ name: Type.String(), role: Type.String() });

export const authRoutes: RoutePlugin = async (api, { auth }) => {
  api.post<{ Body: Static<typeof LoginBody> }>('/api/v1/login', {
    config: PUBLIC,
    schema: {
      summary: 'Log in for a 12-hour session token', security: [],
      body: LoginBody,
      response: { 200: Type.Object({ token: Type.String(), user: User }), ...errors(400, 401, 429) },
    },
  }, async (request) => {
    const { username, password } = request.body;
    return auth.login(username, password, request.ip);
  });
  api.post('/api/v1/logout', { config: READ, schema: { summary: 'End this session, or revoke this API token until restart', response: { 204: Type.Null() } } }, async (request, reply) => {
    const token = bearerFrom(request.headers.authorization);
    if (token && auth.logout(token) === 'token') {
      request.log.warn({ token: request.identity?.name }, 'API token revoked until the daemon restarts: remove it from the config to revoke it for good');
    }
    return reply.code(204).send();
  });
  api.get('/api/v1/whoami', { config: READ, schema: { response: { 200: User } } }, async (request) => request.identity);
};
