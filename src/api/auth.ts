import type { FastifyRequest } from 'fastify';
import type { TokenRecord, TokenVerifier } from '../security/tokens';
import { HttpError } from './errors';
import type { AuthFailures } from './auth-failures';

/** Who may call a route: anyone, a read or admin token, or an admin token only. */
export type Access = 'public' | 'read' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    /** The caller's token once authenticated (null on public routes). */
    token: TokenRecord | null;
  }
}

// One message for missing, malformed, unknown, wrong and expired tokens: nothing to probe.
export const UNAUTHORIZED_MESSAGE = 'a valid bearer token is required';

/** The onRequest hook: runs before the body is read, so strangers cannot make us parse one. */
export function bearerAuth(verifier: TokenVerifier, failures: AuthFailures | null = null) {
  return async (request: FastifyRequest): Promise<void> => {
    // Fail closed: a route that forgets to say who may call it needs an admin token.
    const access = request.is404 ? 'public' : (request.routeOptions.config.access ?? 'admin');
    if (access === 'public') return;
    const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
    let token: TokenRecord | null = null;
    if (match?.[1]) {
      await failures?.refuseIfThrottled(request);
      try {
        token = await verifier.verify(match[1]);
      } catch (error) {
        request.log.error({ err: (error as Error).message }, 'token check failed');
        throw new HttpError(503, 'cannot check the token now: the cluster store is unreachable');
      }
    }
    if (!token) {
      const refusal = new HttpError(401, UNAUTHORIZED_MESSAGE);
      // A missing token is a browser before sign-in, not a guess: only presented tokens count.
      if (match?.[1] && failures) await failures.failed(request, refusal);
      throw refusal;
    }
    if (access === 'admin' && token.role !== 'admin') {
      throw new HttpError(403, 'this endpoint needs a token with the admin role');
    }
    request.token = token;
  };
}
