import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as tlsConnect, type DetailedPeerCertificate } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { InputError } from '../config/schema-check';

/** How to reach and trust the API: the CA is pinned, public CAs are never trusted. */
export interface ApiClientOptions {
  /** https://VIP, https://[v6-VIP] or https://FQDN, optionally with a port. */
  server: string;
  token?: string;
  /** The CA certificate(s) to trust, PEM. */
  ca?: string;
  /** Or the SHA-256 fingerprint of the CA (colon hex, as `vipd status` shows it). */
  caFingerprint?: string;
  timeoutMs?: number;
}

/** A non-2xx answer: the status and the API's `{error, message}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The flags every API command shares. The token may also come from VIPD_TOKEN, out of `ps` and shell history. */
export function addApiClientOptions(command: Command, serverRequired = true): Command {
  const withServer = serverRequired
    ? command.requiredOption('--server <url>', 'the API: https://VIP or https://FQDN')
    : command.option('--server <url>', 'the API: https://VIP or https://FQDN (instead of --config)');
  return withServer
    .option('--token <token>', 'a bearer token (default: $VIPD_TOKEN)')
    .option('--ca <file>', 'the cluster CA certificate (PEM) to trust')
    .option('--ca-fingerprint <sha256>', 'or the SHA-256 fingerprint of the cluster CA to pin');
}

export interface ApiClientFlags {
  server: string;
  token?: string;
  ca?: string;
  caFingerprint?: string;
}

export function normalizeFingerprint(text: string): string {
  const hex = text.replace(/^sha256[:=]/i, '').replace(/:/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) throw new InputError('--ca-fingerprint', 'must be a SHA-256 fingerprint: 64 hex digits, colons allowed');
  return hex.match(/../g)!.join(':');
}

export class ApiClient {
  private readonly url: URL;
  private readonly fingerprint: string | null;
  private pinnedCa: string | null;

  constructor(private readonly options: ApiClientOptions) {
    let url: URL;
    try {
      url = new URL(options.server);
    } catch {
      throw new InputError('--server', `"${options.server}" is not a URL like https://192.0.2.10`);
    }
    if (url.protocol !== 'https:') throw new InputError('--server', 'must be an https:// URL');
    if (url.pathname !== '/' || url.search || url.username || url.password) {
      throw new InputError('--server', 'must be just https://HOST[:PORT], without a path, query or credentials');
    }
    if (!options.ca && !options.caFingerprint) {
      throw new InputError('--ca', 'is required (or --ca-fingerprint): the API is trusted through the cluster CA only');
    }
    this.url = url;
    this.pinnedCa = options.ca ?? null;
    this.fingerprint = options.caFingerprint ? normalizeFingerprint(options.caFingerprint) : null;
  }

  static fromFlags(flags: ApiClientFlags): ApiClient {
    let ca: string | undefined;
    if (flags.ca) {
      try {
        ca = readFileSync(flags.ca, 'utf8');
      } catch (error) {
        throw new InputError('--ca', `cannot read ${flags.ca}: ${(error as Error).message}`);
      }
    }
    const token = flags.token ?? process.env.VIPD_TOKEN;
    return new ApiClient({
      server: flags.server,
      ...(token ? { token } : {}),
      ...(ca ? { ca } : {}),
      ...(flags.caFingerprint ? { caFingerprint: flags.caFingerprint } : {}),
    });
  }

  async get<T>(path: string, timeoutMs?: number): Promise<T> {
    return await this.request<T>('GET', path, undefined, timeoutMs);
  }

  async post<T>(path: string, body: unknown, timeoutMs?: number): Promise<T> {
    return await this.request<T>('POST', path, body, timeoutMs);
  }

  async put<T>(path: string, body: unknown): Promise<T> {
    return await this.request<T>('PUT', path, body);
  }

  async delete<T>(path: string): Promise<T> {
    return await this.request<T>('DELETE', path, undefined);
  }

  private async requestOptions(method: string, path: string, accept: string, payload: string | undefined, timeoutMs: number | undefined): Promise<RequestOptions> {
    return {
      method,
      host: this.host,
      port: this.port,
      path,
      ca: await this.trustedCa(),
      servername: this.serverName,
      headers: {
        accept,
        ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
        ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
      },
      timeout: timeoutMs ?? this.options.timeoutMs ?? 30_000,
    };
  }

  /**
   * Opens a Server-Sent Events stream and resolves with the response once the server answered
   * 200; a non-2xx answer is an ApiError. The caller reads it and destroys it when done.
   */
  async openStream(path: string): Promise<IncomingMessage> {
    const options = await this.requestOptions('GET', path, 'text/event-stream', undefined, undefined);
    // No socket timeout: an idle stream is normal; the caller watches the heartbeats.
    delete options.timeout;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpsRequest({ ...options, agent: false }, resolve);
      req.on('error', reject);
      req.end();
    });
    const status = response.statusCode ?? 0;
    if (status >= 200 && status < 300) return response;
    const text = await new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      response.on('error', () => resolve(''));
    });
    throw apiError(status, parseJson(text));
  }

  async request<T>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const options = await this.requestOptions(method, path, 'application/json', payload, timeoutMs);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpsRequest(options, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer from ${this.url.origin} within ${options.timeout} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
    const parsed = parseJson(text);
    if (status < 200 || status >= 300) throw apiError(status, parsed);
    return parsed as T;
  }

  /** The server's host name or IP address, without brackets. */
  get host(): string {
    return this.url.hostname.replace(/^\[(.*)\]$/, '$1');
  }

  private get port(): number {
    return this.url.port ? Number(this.url.port) : 443;
  }

  /** SNI is for names only; an IP address is checked against the certificate's IP SANs. */
  private get serverName(): string | undefined {
    return /^[0-9.]+$/.test(this.host) || this.host.includes(':') ? undefined : this.host;
  }

  /**
   * With only a fingerprint, fetch the server's chain once without trusting it, take the
   * certificate whose fingerprint matches as the CA, then verify every request normally
   * (chain, validity, host name) against that CA alone.
   */
  private async trustedCa(): Promise<string> {
    if (this.pinnedCa) return this.pinnedCa;
    const fingerprint = this.fingerprint!;
    const chain = await new Promise<DetailedPeerCertificate[]>((resolve, reject) => {
      const socket = tlsConnect(
        { host: this.host, port: this.port, servername: this.serverName, rejectUnauthorized: false },
        () => {
          const found: DetailedPeerCertificate[] = [];
          let certificate: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
          while (certificate?.raw && !found.includes(certificate)) {
            found.push(certificate);
            certificate = certificate.issuerCertificate;
          }
          socket.end();
          resolve(found);
        },
      );
      socket.setTimeout(this.options.timeoutMs ?? 30_000, () => socket.destroy(new Error(`no TLS answer from ${this.url.origin}`)));
      socket.on('error', reject);
    });
    const match = chain.find((certificate) => new X509Certificate(certificate.raw).fingerprint256 === fingerprint);
    if (!match) {
      throw new ApiError(0, 'Untrusted', `the server at ${this.url.origin} does not present a CA with fingerprint ${fingerprint}`);
    }
    this.pinnedCa = new X509Certificate(match.raw).toString();
    return this.pinnedCa;
  }
}

/** The answer's JSON, or null when there is none or it is not JSON (reported as a bad answer). */
function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

function apiError(status: number, body: unknown): ApiError {
  const problem = body as { error?: string; message?: string } | null;
  return new ApiError(status, problem?.error ?? `HTTP ${status}`, problem?.message ?? `the API answered HTTP ${status}`);
}
