/**
 * Fuzzes every API endpoint through fastify.inject, against the in-memory agent and stores
 * of test/unit/fakes.ts. Every case must get a 2xx or a 4xx with a JSON {error, message}
 * body (never a 5xx, never a hang), the request's values must not come back in the answer,
 * auth must hold (no token or another cluster's: 401; read token on a mutation: 403), and
 * a refused request must leave every store as it was.
 */
import { ClusterKeys } from '../../../src/store/keys';
import { securityKeys } from '../../../src/store/keys';
import { TokenStore } from '../../../src/security/tokens';
import { createApiWorld, type ApiWorld } from '../../../test/unit/fakes';
import { Prng } from '../prng';
import { emptySummary, type FuzzRunOptions, type FuzzSummary } from './common';
import { deepValue, nastyNumber, nastyString, preview, toJson, wrongType } from './values';

type Access = 'public' | 'read' | 'admin';

interface Endpoint {
  method: 'GET' | 'POST' | 'PUT';
  path: string;
  access: Access;
  body?: 'move' | 'certificate';
  query?: 'events' | 'none' | 'any';
}

export const ENDPOINTS: readonly Endpoint[] = [
  { method: 'GET', path: '/ping', access: 'public', query: 'none' },
  { method: 'GET', path: '/v1/management-address', access: 'read', query: 'none' },
  { method: 'GET', path: '/v1/nodes', access: 'read', query: 'none' },
  { method: 'GET', path: '/v1/about', access: 'read', query: 'none' },
  { method: 'GET', path: '/v1/events', access: 'read', query: 'events' },
  { method: 'PUT', path: '/v1/settings/ssl-certificates', access: 'admin', body: 'certificate', query: 'none' },
  { method: 'POST', path: '/v1/management-address/move', access: 'admin', body: 'move', query: 'none' },
  { method: 'GET', path: '/', access: 'public', query: 'any' },
  { method: 'GET', path: '/assets/app.js', access: 'public', query: 'any' },
];

type TokenKind = 'none' | 'admin' | 'read' | 'other-cluster' | 'expired' | 'malformed';

/** The world plus tokens that must not work: another cluster's and an expired one. */
export interface FuzzWorld {
  world: ApiWorld;
  otherClusterToken: string;
  expiredToken: string;
}

export async function createFuzzWorld(): Promise<FuzzWorld> {
  // Who may do what, not the per-IP backoff (tested in api.test.ts): hostile tokens are this fuzzer's bread.
  const world = await createApiWorld({ authFailures: { maxFailures: 1_000_000 } });
  // Another cluster sharing the same etcd: its tokens live under /vipd/other/.
  const other = new TokenStore(world.kv, securityKeys(new ClusterKeys('other')));
  const otherClusterToken = (await other.create({ role: 'admin', description: 'another cluster' })).token;
  world.clock.offsetMs = -48 * 3600_000;
  const expiredToken = (await world.tokens.create({ role: 'admin', description: 'expired' })).token;
  world.clock.offsetMs = 0;
  return { world, otherClusterToken, expiredToken };
}

export async function closeFuzzWorld(fuzz: FuzzWorld): Promise<void> {
  await fuzz.world.app.close();
  fuzz.world.certificates.stop();
}

/** Everything a request could change: the key-value store, the agent's state, the certificate. */
function snapshot(world: ApiWorld): string {
  const kv = [...world.kv.data.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  const backend = world.backend;
  return JSON.stringify({
    kv,
    holder: backend.holder,
    term: backend.term,
    history: backend.history.length,
    moves: backend.moves.length,
    nodes: backend.nodeList,
    certificate: world.certificates.status().fingerprint,
  });
}

function tokenHeader(fuzz: FuzzWorld, kind: TokenKind, rng: Prng): string | undefined {
  const { world } = fuzz;
  switch (kind) {
    case 'none':
      return undefined;
    case 'admin':
      return `Bearer ${world.adminToken}`;
    case 'read':
      return `Bearer ${world.readToken}`;
    case 'other-cluster':
      return `Bearer ${fuzz.otherClusterToken}`;
    case 'expired':
      return `Bearer ${fuzz.expiredToken}`;
    default:
      return rng.pick([
        'Bearer',
        'Bearer ',
        'bearer x',
        `Basic ${Buffer.from('admin:admin').toString('base64')}`,
        `Bearer ${world.adminToken}x`,
        `Bearer ${world.adminToken.slice(0, -1)}`,
        `Bearer ${world.adminToken} ${world.readToken}`,
        `Bearer ${world.adminToken.replace('vipd_', 'VIPD_')}`,
        `Bearer ${'A'.repeat(100_000)}`,
        `Token ${world.adminToken}`,
        `Bearer vipd_${'0'.repeat(16)}.${'A'.repeat(43)}`,
        `Bearer ${nastyString(rng).replace(/[^\t\x20-\x7e]/g, '?')}`,
      ]);
  }
}

function moveBody(rng: Prng, canary: string): unknown {
  const body: Record<string, unknown> = { to: rng.pick(['node-2', 'node-3', 'node-9']) };
  switch (rng.int(0, 7)) {
    case 7:
      body['to'] = deepValue(rng.pick([2000, 5000, 20_000]), rng.chance(0.5));
      break;
    case 0:
      body['to'] = `${canary}-${nastyString(rng)}`;
      break;
    case 1:
      body['to'] = wrongType(rng);
      break;
    case 2:
      // Unknown keys are named in the answer by design ("force: unknown field"); values never are.
      body[rng.pick(['force', '__proto__', 'constructor', 'TO', 'x'.repeat(200)])] = canary;
      break;
    case 3:
      delete body['to'];
      break;
    case 4:
      return wrongType(rng);
    case 5:
      body['to'] = `Node-2${canary}`;
      break;
    default:
      body['to'] = `${canary}${'x'.repeat(rng.pick([64, 1000, 70_000]))}`;
  }
  return body;
}

function certificateBody(rng: Prng, canary: string): unknown {
  const pem = (label: string, inner: string) => `-----BEGIN ${label}-----\n${inner}\n-----END ${label}-----\n`;
  const body: Record<string, unknown> = {
    certificate: pem('CERTIFICATE', Buffer.from(canary).toString('base64')),
    privateKey: pem('PRIVATE KEY', Buffer.from(`${canary}-key`).toString('base64')),
  };
  switch (rng.int(0, 6)) {
    case 0:
      body['certificate'] = wrongType(rng);
      break;
    case 1:
      body['privateKey'] = `${canary}${nastyString(rng)}`;
      break;
    case 2:
      body['caChain'] = rng.chance(0.5) ? pem('CERTIFICATE', 'AAAA') : wrongType(rng);
      break;
    case 3:
      body['certificate'] = `${canary}${'A'.repeat(rng.pick([32_769, 60_000]))}`;
      break;
    case 4:
      body[rng.pick(['password', '__proto__', 'constructor'])] = canary;
      break;
    case 5:
      return wrongType(rng);
    default:
      delete body[rng.pick(['certificate', 'privateKey'])];
  }
  return body;
}

/** A body: JSON of a hostile shape, or bytes that are not JSON at all. */
function payload(rng: Prng, endpoint: Endpoint, canary: string): string | Buffer | undefined {
  const roll = rng.next();
  if (roll < 0.15) return undefined;
  if (roll < 0.25) {
    return rng.pick([
      `{"to": "${canary}"`,
      `{"to": '${canary}'}`,
      `{"to": "${canary}",}`,
      `{"to": NaN, "x": "${canary}"}`,
      `// ${canary}\n{}`,
      `\ufeff{"to": "${canary}"}`,
      `{"to": "${canary}", "to": 5}`,
      `{"__proto__": {"role": "admin"}, "x": "${canary}"}`,
      `{"constructor": {"prototype": {"x": "${canary}"}}}`,
      '',
      'null',
      '"string"',
      '12345678901234567890123456789',
      `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
      `${'{"a":'.repeat(20_000)}"${canary}"${'}'.repeat(20_000)}`,
    ]);
  }
  if (roll < 0.3) return Buffer.concat([Buffer.from(`{"to": "${canary}`), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x00]), Buffer.from('"}')]);
  if (roll < 0.35) return JSON.stringify({ to: `${canary}${'x'.repeat(rng.pick([60_000, 65_536, 200_000, 2_000_000]))}` });
  if (roll < 0.4) return toJson(deepValue(rng.pick([100, 1000, 10_000]), rng.chance(0.5)));
  const body = endpoint.body === 'certificate' || (endpoint.body === undefined && rng.chance(0.5)) ? certificateBody(rng, canary) : moveBody(rng, canary);
  return toJson(body);
}

/** Percent-encodes every byte of the UTF-8 form; lone surrogates (which encodeURIComponent refuses) become U+FFFD. */
function encodeQueryValue(value: string): string {
  return [...Buffer.from(value, 'utf8')].map((byte) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

function queryString(rng: Prng, endpoint: Endpoint, canary: string): string {
  if (rng.chance(0.5)) return '';
  const values = () =>
    encodeQueryValue(
      rng.pick([
        '1', '0', '-1', '1000', '1001', '10', '1e3', '0x10', '', ' 1', '1 ', 'lots', '١', '9'.repeat(400),
        `${canary}${nastyString(rng)}`, String(nastyNumber(rng)),
      ]),
    );
  const parts: string[] = [];
  for (let count = rng.int(1, 3); count > 0; count -= 1) {
    const key = endpoint.query === 'events' && rng.chance(0.6) ? 'limit' : rng.pick(['limit', 'verbose', 'x', '__proto__[x]', 'constructor.prototype.x', 'limit[]', 'a'.repeat(2000)]);
    parts.push(`${key}=${values()}`);
  }
  if (rng.chance(0.1)) parts.push(rng.pick(['%zz', '%', '&&&', '=', '%00', '%E0%A4%A']));
  return `?${parts.join('&')}`;
}

function mangledPath(rng: Prng, path: string): string {
  return rng.pick([
    `${path}/`,
    `/${path}`,
    path.toUpperCase(),
    `${path}/..`,
    path.replace('/v1/', '/v1/../v1/'),
    path.replace('/v1/', '/v1/%2e%2e/v1/'),
    `${path}%00`,
    `${path};x=1`,
    `${path}/${'a'.repeat(rng.pick([100, 10_000]))}`,
    `/v2${path}`,
    path.replace(/^\//, '/\\'),
    `${path}#frag`,
    '/assets/../../../../etc/passwd',
    '/assets/%2e%2e/%2e%2e/etc/passwd',
    '/assets/..%2f..%2fpackage.json',
    `/assets/${'x/'.repeat(500)}`,
    '*',
  ]);
}

export interface ApiCase {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload: string | Buffer | undefined;
  tokenKind: TokenKind;
  endpoint: Endpoint;
  /** The URL is exactly the endpoint's path (with any query): auth expectations apply. */
  exact: boolean;
  canary: string;
  /** The body nests thousands of levels deep. */
  deep: boolean;
}

export function apiCase(rng: Prng, fuzz: FuzzWorld, index: number): ApiCase {
  const canary = `CANARY${index.toString(36)}Q`;
  const endpoint = rng.pick(ENDPOINTS);
  const method = rng.chance(0.8)
    ? endpoint.method
    : rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'PROPFIND', 'SEARCH']);
  const exact = rng.chance(0.85);
  const path = exact ? endpoint.path : mangledPath(rng, endpoint.path);
  const url = `${path}${queryString(rng, endpoint, canary)}`;
  const tokenKind = rng.weighted<TokenKind>([['admin', 3], ['read', 2], ['none', 2], ['other-cluster', 1], ['expired', 1], ['malformed', 1]]);
  const headers: Record<string, string> = {};
  const authorization = tokenHeader(fuzz, tokenKind, rng);
  if (authorization !== undefined) headers['authorization'] = authorization;
  const contentType = rng.weighted<string | null>([
    ['application/json', 6],
    [null, 1],
    ['application/json; charset=utf-8', 1],
    ['application/json; charset=latin1', 1],
    ['text/plain', 1],
    ['application/x-www-form-urlencoded', 1],
    ['multipart/form-data; boundary=x', 1],
    ['application/JSON', 1],
    ['application/vnd.api+json', 1],
    ['*/*', 1],
    [`application/json; ${canary}=1`, 1],
  ]);
  if (contentType !== null) headers['content-type'] = contentType;
  if (rng.chance(0.3)) {
    // Never text/event-stream: a valid stream request stays open by design.
    headers['accept'] = rng.pick(['application/json', '*/*', 'text/html', 'application/xml', '', 'text/*', canary]);
  }
  if (rng.chance(0.2)) {
    const name = rng.pick(['x-forwarded-for', 'x-real-ip', 'host', 'origin', 'cookie', 'x-http-method-override', 'transfer-encoding', 'expect', 'accept-encoding']);
    headers[name] = rng.pick([canary, '127.0.0.1', 'DELETE', 'gzip, deflate', '100-continue', 'chunked', 'a'.repeat(8192)]);
  }
  const bodyAllowed = method !== 'GET' && method !== 'HEAD';
  const body = bodyAllowed || rng.chance(0.1) ? payload(rng, endpoint, canary) : undefined;
  return {
    method,
    url,
    headers,
    payload: body,
    tokenKind,
    endpoint,
    exact,
    canary,
    deep: body !== undefined && /[[{]{500}|(\{"a":){500}/.test(body.toString('utf8', 0, 20_000)),
  };
}

interface Verdict {
  status: number;
  problems: string[];
  stateChanged: boolean;
}

async function runCase(fuzz: FuzzWorld, c: ApiCase, timeoutMs: number): Promise<Verdict | 'client-refused'> {
  const { world } = fuzz;
  const before = snapshot(world);
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), timeoutMs)));
  let response: Awaited<ReturnType<ApiWorld['app']['inject']>> | 'hang';
  try {
    response = await Promise.race([
      world.app.inject({ method: c.method as 'GET', url: c.url, headers: c.headers, ...(c.payload !== undefined ? { payload: c.payload } : {}) }),
      hang,
    ]);
  } catch (error) {
    // light-my-request refuses some header values itself, as Node's HTTP client would.
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (/ERR_INVALID_CHAR|ERR_HTTP_INVALID_HEADER_VALUE|ERR_INVALID_HTTP_TOKEN|ERR_UNESCAPED_CHARACTERS|ERR_INVALID_URL/.test(code)) return 'client-refused';
    return { status: 0, problems: [`inject threw ${code} ${(error as Error).message}`], stateChanged: false };
  } finally {
    clearTimeout(timer);
  }
  if (response === 'hang') return { status: 0, problems: [`no answer within ${timeoutMs} ms`], stateChanged: false };
  const problems: string[] = [];
  const status = response.statusCode;
  const after = snapshot(world);
  const stateChanged = after !== before;
  if (status >= 500) problems.push(`answered ${status}: ${response.body.slice(0, 300)}`);
  if (status >= 400 && c.method !== 'HEAD') {
    let body: unknown;
    try {
      body = JSON.parse(response.body);
    } catch {
      problems.push(`a ${status} whose body is not JSON: ${preview(response.body, 200)}`);
    }
    if (body !== undefined) {
      const keys = body && typeof body === 'object' ? Object.keys(body).sort().join(',') : '';
      const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown };
      if (keys !== 'error,message' || typeof error !== 'string' || typeof message !== 'string' || !message) {
        problems.push(`a ${status} whose body is not {error, message}: ${preview(response.body, 200)}`);
      }
    }
    if (!String(response.headers['content-type'] ?? '').startsWith('application/json')) {
      problems.push(`a ${status} with content-type ${String(response.headers['content-type'])}`);
    }
  }
  if (status >= 400 && response.body.includes(c.canary)) problems.push(`the answer repeats a value from the request: ${preview(response.body, 200)}`);
  for (const secret of [world.adminToken, world.readToken, fuzz.otherClusterToken].map((token) => token.split('.')[1]!)) {
    if (response.body.includes(secret)) problems.push('the answer contains a token secret');
  }
  if (/PRIVATE KEY/.test(response.body)) problems.push('the answer contains a private key');
  if (/root:[^:\n]*:0:0:/.test(response.body) || /"name":\s*"vipd"/.test(response.body)) problems.push(`a file outside the dashboard was served: ${preview(response.body, 120)}`);
  // Auth: decided before routing details, for the exact endpoint and method.
  const sameRoute = c.exact && c.method === c.endpoint.method && !/%(?![0-9a-fA-F]{2})/.test(c.url.split('?')[1] ?? '');
  if (sameRoute && c.endpoint.access !== 'public') {
    const authenticated = c.tokenKind === 'admin' || c.tokenKind === 'read';
    if (!authenticated && status !== 401) problems.push(`${c.tokenKind} token on a ${c.endpoint.access} endpoint answered ${status}, not 401`);
    if (c.tokenKind === 'read' && c.endpoint.access === 'admin' && status !== 403) problems.push(`read token on an admin endpoint answered ${status}, not 403`);
  }
  if (status >= 200 && status < 300 && c.endpoint.access !== 'public' && c.exact && !(c.tokenKind === 'admin' || c.tokenKind === 'read')) {
    problems.push(`answered ${status} to a ${c.tokenKind} token`);
  }
  if (stateChanged && !(status >= 200 && status < 300 && c.tokenKind === 'admin' && c.method !== 'GET')) {
    problems.push(`answered ${status} but the stores changed`);
  }
  return { status, problems, stateChanged };
}

/** Runs `cases` API cases from `seed` against one in-memory world (remade after a legitimate change). */
export async function fuzzApi(options: FuzzRunOptions): Promise<FuzzSummary> {
  const summary = emptySummary('api', options.seed);
  const started = Date.now();
  const root = new Prng(options.seed).fork('api');
  let fuzz = await createFuzzWorld();
  let clientRefused = 0;
  try {
    const first = options.first ?? 0;
    for (let index = first; index < first + options.cases; index += 1) {
      const rng = root.fork(index);
      const c = apiCase(rng, fuzz, index);
      const input = `${c.method} ${preview(c.url, 150)} token=${c.tokenKind} headers=${preview(Object.keys(c.headers))} body=${preview(c.payload?.toString(), 200)}`;
      const verdict = await runCase(fuzz, c, 10_000);
      summary.cases += 1;
      if (verdict === 'client-refused') {
        clientRefused += 1;
        summary.rejected += 1;
        continue;
      }
      if (verdict.status >= 200 && verdict.status < 300) summary.accepted += 1;
      else summary.rejected += 1;
      for (const problem of verdict.problems) summary.failures.push({ target: 'api', seed: options.seed, index, input, problem });
      if (verdict.stateChanged) {
        // A legitimate change (say, a valid move): start the next case from a clean world.
        await closeFuzzWorld(fuzz);
        fuzz = await createFuzzWorld();
      }
      if (index % 200 === 199) {
        const ping = await fuzz.world.app.inject({ method: 'GET', url: '/ping' });
        if (ping.statusCode !== 200) summary.failures.push({ target: 'api', seed: options.seed, index, input, problem: `/ping answers ${ping.statusCode} after this case` });
      }
      options.progress?.(index);
    }
  } finally {
    await closeFuzzWorld(fuzz);
  }
  summary.ms = Date.now() - started;
  if (clientRefused > 0) summary.notes.push({ target: 'api', seed: options.seed, index: -1, kind: 'client-refused', input: '', detail: `${clientRefused} case(s) were refused by the HTTP client before reaching the server (invalid header characters)` });
  return summary;
}
