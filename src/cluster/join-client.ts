import { X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect, type DetailedPeerCertificate } from 'node:tls';
import { isIP } from 'node:net';
import { InputError } from '../config/schema-check';
import { parseJoinToken } from '../security/tokens';
import {
  JOIN_SERVER_NAME,
  JoinClusterInfoSchema,
  JoinResponseSchema,
  type JoinClusterInfo,
  type JoinRequest,
  type JoinResponse,
} from './join-protocol';

/** A join may wait up to 15 s on the server for etcd to accept the new member (join-service.ts). */
const REQUEST_TIMEOUT_MS = 40_000;

/** Something on the way did not answer: trying again may help (exit 1, not 2). */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}

export interface JoinTarget {
  origin: string;
  host: string;
  port: number;
}

export function parseServerUrl(text: string): JoinTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InputError('server', `"${text}" is not a URL like https://192.0.2.10 or https://vip.example.com`);
  }
  if (url.protocol !== 'https:') throw new InputError('server', `must be an https:// URL (got ${url.protocol}//)`);
  if (url.pathname !== '/' || url.search || url.username || url.password) {
    throw new InputError('server', 'must be just https://VIP-or-FQDN[:PORT], without a path, query or credentials');
  }
  return { origin: url.origin, host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port ? Number(url.port) : 443 };
}

function describeConnectError(target: JoinTarget, error: NodeJS.ErrnoException): Error {
  const code = error.code ?? '';
  if (code === 'EPROTO' || /wrong version number|packet length too long|unknown protocol/i.test(error.message)) {
    return new InputError('server', `${target.origin} is not a vipd server: it does not answer TLS (${error.message.split('\n')[0]})`);
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new UnreachableError(`cannot resolve ${target.host}: ${code}`);
  return new UnreachableError(`cannot reach ${target.origin}: ${error.message}`);
}

/** The certificates the server presents for a server name, taken without trusting them. */
function presentedChain(target: JoinTarget, servername: string | undefined, timeoutMs: number): Promise<X509Certificate[]> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: target.host, port: target.port, servername, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const found: X509Certificate[] = [];
      const seen = new Set<DetailedPeerCertificate>();
      let certificate: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      while (certificate?.raw && !seen.has(certificate)) {
        seen.add(certificate);
        found.push(new X509Certificate(certificate.raw));
        certificate = certificate.issuerCertificate;
      }
      socket.end();
      resolve(found);
    });
    socket.setTimeout(timeoutMs, () => socket.destroy(Object.assign(new Error(`no TLS answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    socket.on('error', (error) => reject(describeConnectError(target, error)));
  });
}

/**
 * `vipd join`'s side of the protocol. The token carries the SHA-256 of the cluster CA: the
 * server's chain is fetched without trusting it, the certificate with that hash becomes the
 * only trusted CA, and every request is verified against it alone, without requiring the
 * server's certificate to name the address dialled (it may name only the FQDN).
 */
export class JoinClient {
  private constructor(
    readonly target: JoinTarget,
    readonly caPem: string,
    private readonly bearer: string,
  ) {}

  static async connect(server: string, token: string, timeoutMs = 15_000): Promise<JoinClient> {
    const parsed = parseJoinToken(token);
    if (!parsed) {
      throw new InputError('--token', 'is not a join token: it looks like vipd-join:<64 hex digits>:vipd_<id>.<secret> (see `vipd token create --role join`)');
    }
    const target = parseServerUrl(server);
    const byName = isIP(target.host) ? undefined : target.host;
    // The join name first (the server then presents the cluster CA's chain), then what a browser would see.
    for (const servername of [JOIN_SERVER_NAME, byName]) {
      const chain = await presentedChain(target, servername, timeoutMs);
      const ca = chain.find((certificate) => certificate.fingerprint256.replace(/:/g, '').toLowerCase() === parsed.caHash);
      if (ca?.ca) return new JoinClient(target, ca.toString(), parsed.bearer);
      if (servername === byName) break;
    }
    throw new InputError(
      '--token',
      `${target.origin} does not present the cluster CA this token names (SHA-256 ${parsed.caHash}): ` +
        'it is not a vipd server, or not one of the cluster the token was made for',
    );
  }

  /** A client for a node whose CA is already known: how a node that cannot sign passes a join on to one that can. */
  static toKnownNode(origin: string, caPem: string, bearer: string): JoinClient {
    return new JoinClient(parseServerUrl(origin), caPem, bearer);
  }

  /** POST /v1/join, with the server's status and answer as they are. */
  async forwardJoin(request: JoinRequest): Promise<{ status: number; body: unknown }> {
    return await this.exchange('POST', '/v1/join', request);
  }

  async clusterInfo(): Promise<JoinClusterInfo> {
    return JoinClusterInfoSchema.check(await this.request('GET', '/v1/join/cluster'), 'the server\'s answer');
  }

  async join(request: JoinRequest): Promise<JoinResponse> {
    return JoinResponseSchema.check(await this.request('POST', '/v1/join', request), 'the server\'s answer');
  }

  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const { status, body: parsed } = await this.exchange(method, path, body);
    if (status >= 200 && status < 300) return parsed;
    const message = (parsed as { message?: unknown } | null)?.message;
    const said = typeof message === 'string' ? message : `HTTP ${status}`;
    if (status === 401) throw new InputError('--token', said);
    if (status === 404) throw new InputError('server', `${this.target.origin} has no join API (${said}): not a vipd server that accepts joins`);
    if (status === 400 || status === 409) throw new InputError('', `the cluster refused this node: ${said}`);
    throw new UnreachableError(`${this.target.origin} could not handle the join (${status}): ${said}`);
  }

  private async exchange(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpsRequest(
        {
          method,
          host: this.target.host,
          port: this.target.port,
          path,
          servername: JOIN_SERVER_NAME,
          ca: this.caPem,
          // Trust comes from the pinned CA alone; the certificate need not name the address dialled.
          checkServerIdentity: () => undefined,
          headers: {
            accept: 'application/json',
            authorization: `Bearer ${this.bearer}`,
            ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          },
          timeout: REQUEST_TIMEOUT_MS,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          response.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
      req.on('error', (error: NodeJS.ErrnoException) => reject(describeConnectError(this.target, error)));
      req.end(payload);
    });
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      throw new InputError('server', `${this.target.origin} answered ${method} ${path} with something other than JSON: not a vipd server`);
    }
    return { status, body: parsed };
  }
}
