import type { TSchema } from '@sinclair/typebox';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { InputError, Schema } from '../config/schema-check';
import type { CertificateUploader } from '../security/certificates';
import type { TokenVerifier } from '../security/tokens';
import { bearerAuth } from './auth';
import { AuthFailures, QuietLogController, type AuthFailureOptions } from './auth-failures';
import { DEFAULT_CONNECTION_LIMITS, limitConnections, type ConnectionLimits } from './connection-limits';
import { SERVER_CIPHERS, SERVER_MIN_TLS } from '../security/tls-policy';
import { type ApiBackend, MoveRefusedError } from './backend';
import { UnknownNodeError } from '../store/maintenance';
import { registerDashboard } from './dashboard';
import { JoinRefused } from '../cluster/join-protocol';
import { HttpError } from './errors';
import { EventStreams } from './event-stream';
import { joinSniCallback, registerJoinRoutes, type JoinHandler } from './join-routes';
import {
  AboutResponse,
  CertificateRequest,
  CertificateResponse,
  CordonRequest,
  EventsQuery,
  EventsResponse,
  ManagementAddressResponse,
  MoveAcceptedResponse,
  MoveRequest,
  NoQuery,
  NodeParams,
  NodePreferenceResponse,
  NodesResponse,
  PingResponse,
  PriorityRequest,
  type ErrorResponse,
} from './schemas';

export type ApiServer = FastifyInstance<HttpsServer, IncomingMessage, ServerResponse, FastifyBaseLogger>;

export const DEFAULT_API_PORT = 443;
export const DEFAULT_BODY_LIMIT = 64 * 1024;

export interface ApiServerOptions {
  backend: ApiBackend;
  tokens: TokenVerifier;
  certificates: CertificateUploader;
  /** The first serving certificate; later ones go in through ServingCertificates.attach(server.server). */
  tls: { key: string; cert: string };
  /** Request logs go here (never headers or bodies); none when absent. */
  logger?: Logger;
  /** Default 64 KiB: a certificate with its chain fits easily. */
  bodyLimit?: number;
  /** SSE heartbeat comment interval, default 5 s: a browser left on a node that lost the VIP notices within one. */
  heartbeatMs?: number;
  /** Concurrent SSE streams, default 64; more get 503. */
  maxEventStreams?: number;
  /** Concurrent SSE streams per token, default 8; more get 503. */
  maxEventStreamsPerToken?: number;
  /** Per-IP backoff on bad tokens (429 + Retry-After). */
  authFailures?: AuthFailureOptions;
  /** Connection caps, overall and per client address. */
  connections?: Partial<ConnectionLimits>;
  /** A TCP connection must finish its TLS handshake within this, default 5 s (Node's own: 120 s). */
  handshakeTimeoutMs?: number;
  /** A request's headers must arrive within this, default 10 s. */
  headersTimeoutMs?: number;
  /** Serve the dashboard at `/`; default true. */
  dashboard?: boolean;
  /** Serve Prometheus metrics at /metrics (read token, like the rest of the read API); none when absent. */
  metrics?: MetricsExporter;
  /** Serve /v1/join for `vipd join` with this handler; none when absent. */
  join?: JoinHandler | null;
}

/** The agent's metrics in the Prometheus text format (src/metrics/metrics.ts). */
export interface MetricsExporter {
  readonly contentType: string;
  render(): Promise<string>;
}

export interface ListenOptions {
  /** Default 443. */
  port?: number;
  /** Default `::`: every IPv6 and IPv4 address of the node, the VIP included whichever node holds it. */
  host?: string;
}

const SECURITY_HEADERS: Record<string, string> = {
  'strict-transport-security': 'max-age=31536000',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

// Fastify hands the validator the schema objects given to the routes; compile each once.
const compiled = new WeakMap<object, Schema<TSchema>>();

function validatorFor(schema: TSchema): (data: unknown) => { value: unknown } | { error: Error } {
  let checker = compiled.get(schema);
  if (!checker) {
    checker = new Schema(schema);
    compiled.set(schema, checker);
  }
  const check = checker;
  return (data) => {
    try {
      return { value: check.check(data) };
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      // The API never echoes request values back: they may be keys or tokens.
      const problem = error.problem.replace(/ \(got [\s\S]*\)$/, '').replace('(allowed here: )', '(none are allowed here)');
      if (error.field === '') return { error: new InputError('body', 'must be a JSON object') };
      return { error: new InputError(error.field, problem) };
    }
  };
}

function errorBody(statusCode: number, error: string, message: string): ErrorResponse {
  return { error, message: message || error || `HTTP ${statusCode}` };
}

/**
 * The HTTPS management API and dashboard. Returns the Fastify instance unstarted, so tests
 * drive it with `inject`; `listenApiServer` starts it.
 */
export function buildApiServer(options: ApiServerOptions): ApiServer {
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const join = options.join ?? null;
  // Fastify types the instance by the logger given; callers see the base logger type.
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const app = Fastify({
    https: {
      key: options.tls.key,
      cert: options.tls.cert,
      minVersion: SERVER_MIN_TLS,
      ciphers: SERVER_CIPHERS,
      handshakeTimeout: options.handshakeTimeoutMs ?? 5_000,
      headersTimeout,
      // How often Node looks for connections past headersTimeout (default 30 s).
      connectionsCheckingInterval: Math.min(headersTimeout, 1_000),
      ...(join ? { SNICallback: joinSniCallback(join) } : {}),
    },
    // Headers and body together; SSE streams are responses and not bound by it.
    requestTimeout: Math.max(headersTimeout, 30_000),
    bodyLimit,
    ...(options.logger ? { loggerInstance: options.logger, logController: new QuietLogController() } : { logger: false }),
    // Raised before routing, so the error handler never sees it; same JSON shape regardless.
    frameworkErrors: (_error, _request, reply) => {
      reply.hijack();
      reply.raw.writeHead(400, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8' });
      reply.raw.end(JSON.stringify(errorBody(400, 'Bad Request', 'the URL is not valid')));
    },
  }) as unknown as ApiServer;

  const streams = new EventStreams(options.backend, {
    heartbeatMs: options.heartbeatMs ?? 5_000,
    maxStreams: options.maxEventStreams ?? 64,
    maxStreamsPerToken: options.maxEventStreamsPerToken ?? 8,
    headers: SECURITY_HEADERS,
  });
  limitConnections(app.server, { ...DEFAULT_CONNECTION_LIMITS, ...options.connections });
  const failures = new AuthFailures(app as unknown as FastifyInstance, options.logger ?? null, options.authFailures);
  app.addHook('onClose', async () => failures.close());

  // JSON only: a text/plain body would otherwise reach the schema as a string.
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(({ schema }) => validatorFor(schema as TSchema));
  app.decorateRequest('token', null);
  app.addHook('onRequest', bearerAuth(options.tokens, failures));
  app.addHook('onSend', async (request, reply) => {
    reply.headers(SECURITY_HEADERS);
    if (request.url.startsWith('/v1/')) reply.header('cache-control', 'no-store');
  });
  app.addHook('preClose', async () => streams.closeAll());

  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    return reply.code(404).send(errorBody(404, 'Not Found', `no endpoint ${request.method} ${path}`));
  });

  app.setErrorHandler(async (error: FastifyError | Error, request, reply) => {
    if (error instanceof InputError) return reply.code(400).send(errorBody(400, 'Bad Request', error.message));
    if (error instanceof MoveRefusedError) return reply.code(409).send(errorBody(409, 'Conflict', error.message));
    if (error instanceof UnknownNodeError) return reply.code(404).send(errorBody(404, 'Not Found', error.message));
    if (error instanceof JoinRefused) {
      if (error.kind === 'unauthorized') return reply.code(401).send(errorBody(401, 'Unauthorized', error.message));
      if (error.kind === 'invalid') return reply.code(400).send(errorBody(400, 'Bad Request', error.message));
      return error.kind === 'conflict'
        ? reply.code(409).send(errorBody(409, 'Conflict', error.message))
        : reply.code(503).send(errorBody(503, 'Service Unavailable', error.message));
    }
    if (error instanceof HttpError) {
      if (error.statusCode === 401) reply.header('www-authenticate', 'Bearer realm="vipd"');
      reply.headers(error.headers);
      return reply.code(error.statusCode).send(errorBody(error.statusCode, error.error, error.message));
    }
    const statusCode = (error as FastifyError).statusCode ?? 500;
    if (statusCode === 503) return reply.code(503).send(errorBody(503, 'Service Unavailable', error.message));
    if (statusCode >= 400 && statusCode < 500) {
      const code = (error as FastifyError).code;
      // V8's JSON messages quote the input, which may be a secret: say only what is wrong.
      const message =
        error instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY' || code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
          ? 'the request body is not valid JSON'
          : code === 'FST_ERR_CTP_BODY_TOO_LARGE'
            ? `the request body is larger than ${bodyLimit} bytes`
            : code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
              ? 'the request body must be JSON (content-type: application/json)'
              : error.message;
      return reply.code(statusCode).send(errorBody(statusCode, httpStatusText(statusCode), message));
    }
    request.log.error({ err: error }, 'request failed');
    return reply.code(500).send(errorBody(500, 'Internal Server Error', 'the server failed to handle the request'));
  });

  const backend = options.backend;

  app.get('/ping', { schema: { querystring: NoQuery, response: { 200: PingResponse } }, config: { access: 'public' } }, async () => ({
    status: 'ok' as const,
  }));

  app.get(
    '/v1/management-address',
    { schema: { querystring: NoQuery, response: { 200: ManagementAddressResponse } }, config: { access: 'read' } },
    async () => await backend.managementAddress(),
  );

  app.get('/v1/nodes', { schema: { querystring: NoQuery, response: { 200: NodesResponse } }, config: { access: 'read' } }, async () => ({
    nodes: await backend.nodes(),
  }));

  app.get('/v1/about', { schema: { querystring: NoQuery, response: { 200: AboutResponse } }, config: { access: 'read' } }, async () => ({
    node: backend.localNode(),
    fqdn: backend.fqdn(),
  }));

  app.get<{ Querystring: EventsQuery }>(
    '/v1/events',
    { schema: { querystring: EventsQuery, response: { 200: EventsResponse } }, config: { access: 'read' } },
    async (request, reply) => {
      const limit = request.query.limit !== undefined ? Number(request.query.limit) : undefined;
      if ((request.headers.accept ?? '').includes('text/event-stream')) {
        await streams.serve(reply, limit, request.token?.id ?? '');
        return reply;
      }
      const [events, health, admin] = await Promise.all([backend.events(limit), backend.healthEvents(limit), backend.adminEvents?.(limit) ?? []]);
      return { events, health, admin };
    },
  );

  // Issue 14: cordons and priorities, written to etcd; each node's agent follows them.
  const by = (request: { token?: { id: string } | null }): string => `token ${request.token?.id ?? 'unknown'} through the API on ${backend.localNode().name}`;
  const preferenceRoute = { querystring: NoQuery, params: NodeParams, response: { 200: NodePreferenceResponse } };
  app.post<{ Params: NodeParams; Body: CordonRequest }>(
    '/v1/nodes/:name/cordon',
    { schema: { ...preferenceRoute, body: CordonRequest }, config: { access: 'admin' } },
    async (request) => {
      if (!backend.cordon) throw new HttpError(404, 'cordons are not served here');
      const answer = await backend.cordon(request.params.name, { strict: request.body.strict ?? false, reason: request.body.reason ?? null, by: by(request) });
      request.log.info({ tokenId: request.token?.id, node: answer.node, strict: answer.cordon?.strict }, 'node cordoned');
      return answer;
    },
  );
  app.delete<{ Params: NodeParams }>(
    '/v1/nodes/:name/cordon',
    { schema: preferenceRoute, config: { access: 'admin' } },
    async (request) => {
      if (!backend.uncordon) throw new HttpError(404, 'cordons are not served here');
      const answer = await backend.uncordon(request.params.name, by(request));
      request.log.info({ tokenId: request.token?.id, node: answer.node }, 'node uncordoned');
      return answer;
    },
  );
  app.put<{ Params: NodeParams; Body: PriorityRequest }>(
    '/v1/nodes/:name/priority',
    { schema: { ...preferenceRoute, body: PriorityRequest }, config: { access: 'admin' } },
    async (request) => {
      if (!backend.setPriority) throw new HttpError(404, 'priorities are not served here');
      const answer = await backend.setPriority(request.params.name, request.body.priority, by(request));
      request.log.info({ tokenId: request.token?.id, node: answer.node, priority: answer.priority }, 'node priority set');
      return answer;
    },
  );

  app.put<{ Body: CertificateRequest }>(
    '/v1/settings/ssl-certificates',
    { schema: { querystring: NoQuery, body: CertificateRequest, response: { 200: CertificateResponse } }, config: { access: 'admin' } },
    async (request) => {
      const summary = await options.certificates.upload(request.body);
      request.log.info({ tokenId: request.token?.id, fingerprint: summary.fingerprint }, 'serving certificate uploaded');
      return { certificate: summary, warning: summary.warning };
    },
  );

  app.post<{ Body: MoveRequest }>(
    '/v1/management-address/move',
    { schema: { querystring: NoQuery, body: MoveRequest, response: { 200: MoveAcceptedResponse, 202: MoveAcceptedResponse } }, config: { access: 'admin' } },
    async (request, reply) => {
      const by = `token ${request.token?.id ?? 'unknown'} through the API on ${backend.localNode().name}`;
      const { answer, submit } = await backend.move(request.body.to, by);
      request.log.info({ tokenId: request.token?.id, to: answer.to, move: answer.id, state: answer.state }, 'planned move requested');
      if (submit) {
        // Through the VIP this node may be the holder: the answer leaves before the VIP does.
        reply.raw.once('finish', () => {
          submit().catch((error: Error) => request.log.error({ err: error.message, move: answer.id }, 'could not ask the holder for the planned move'));
        });
      }
      return reply.code(submit ? 202 : 200).send(answer);
    },
  );

  if (join) registerJoinRoutes(app, join, failures);
  const metrics = options.metrics;
  if (metrics) {
    // Scrapers send a read token (Prometheus: authorization.credentials_file); metrics show who holds the VIP.
    app.get('/metrics', { schema: { querystring: NoQuery }, config: { access: 'read' } }, async (_request, reply) =>
      reply.type(metrics.contentType).send(await metrics.render()),
    );
  }

  if (options.dashboard ?? true) registerDashboard(app);
  return app;
}

function httpStatusText(statusCode: number): string {
  return new HttpError(statusCode, '').error;
}

/** Starts listening; falls back to 0.0.0.0 where the kernel has no IPv6. */
export async function listenApiServer(app: ApiServer, options: ListenOptions = {}): Promise<AddressInfo> {
  const port = options.port ?? DEFAULT_API_PORT;
  const host = options.host ?? '::';
  try {
    await app.listen({ port, host, ipv6Only: false });
  } catch (error) {
    if (host !== '::' || (error as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') throw error;
    await app.listen({ port, host: '0.0.0.0' });
  }
  return app.server.address() as AddressInfo;
}
