import type { FastifyRequest } from 'fastify';
import type { SecureContext } from 'node:tls';
import { JOIN_SERVER_NAME, JoinClusterInfo, JoinRequest, JoinResponse } from '../cluster/join-protocol';
import type { JoinHandler } from '../cluster/join-service';
import { HttpError } from './errors';
import { NoQuery } from './schemas';
import type { ApiServer } from './server';
import type { AuthFailures } from './auth-failures';

export type { JoinHandler } from '../cluster/join-service';

/**
 * The TLS server-name callback: a joining node asks for JOIN_SERVER_NAME and gets a
 * certificate from the cluster CA, which its token pins, whatever certificate was uploaded
 * for browsers. Every other name gets the server's default (uploaded or generated) one.
 */
export function joinSniCallback(handler: JoinHandler) {
  return (servername: string, callback: (error: Error | null, context?: SecureContext) => void): void => {
    if (servername !== JOIN_SERVER_NAME) {
      callback(null);
      return;
    }
    handler.sniContext(servername).then(
      (context) => callback(null, context ?? undefined),
      // No cluster CA to hand: the default certificate, and the joiner says what it saw.
      () => callback(null),
    );
  };
}

function bearer(request: FastifyRequest): string | null {
  return /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1] ?? null;
}

/**
 * GET /v1/join/cluster and POST /v1/join, authenticated by a join token (never by an API
 * token, and a join token opens nothing else). Public to bearerAuth: the check is here,
 * in onRequest, so the body is not read for a caller without a valid join token.
 */
export function registerJoinRoutes(app: ApiServer, handler: JoinHandler, failures: AuthFailures | null = null): void {
  // The token each request was let in with: POST /v1/join spends one of its uses.
  const tokens = new WeakMap<FastifyRequest, { id: string; bearer: string }>();
  const authorize = async (request: FastifyRequest): Promise<void> => {
    const token = bearer(request);
    if (token) await failures?.refuseIfThrottled(request);
    const checked = token ? await handler.checkToken(token).catch(() => null) : { ok: false as const, reason: 'invalid' as const };
    if (checked === null) throw new HttpError(503, 'cannot check the join token now: the cluster store is unreachable');
    if (!checked.ok) {
      const refusal = new HttpError(
        401,
        checked.reason === 'expired'
          ? 'the join token has expired: create a new one with `vipd token create --role join`'
          : checked.reason === 'used-up'
            ? 'the join token has been used up: create a new one with `vipd token create --role join`'
            : 'the join token is not valid for this cluster (unknown, revoked or wrong secret)',
      );
      // Only a wrong secret is a guess; whoever knows an expired or spent token's secret is not guessing.
      if (token && failures && checked.reason === 'invalid') await failures.failed(request, refusal);
      throw refusal;
    }
    tokens.set(request, { id: checked.record.id, bearer: token! });
    request.log.info({ tokenId: checked.record.id }, 'join token accepted');
  };

  app.get(
    '/v1/join/cluster',
    { schema: { querystring: NoQuery, response: { 200: JoinClusterInfo } }, config: { access: 'public' }, onRequest: authorize },
    async () => await handler.clusterInfo(),
  );

  app.post<{ Body: JoinRequest }>(
    '/v1/join',
    { schema: { querystring: NoQuery, body: JoinRequest, response: { 200: JoinResponse } }, config: { access: 'public' }, onRequest: authorize },
    async (request) => await handler.join(request.body, tokens.get(request)!),
  );
}
