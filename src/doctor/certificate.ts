/**
 * Check 8: the certificate served on the VIP's API port covers the VIP (as an IP SAN) and
 * the cluster FQDN, and is not about to expire.
 */
import { isIP } from 'node:net';
import tls from 'node:tls';
import { ipToBytes } from '../holding/codecs/ip';
import { check, skip, worse, type CheckResult, type Verdict } from './report';

export interface ApiSettings {
  enabled: boolean;
  port: number;
  fqdn: string | null;
}

/**
 * api.port and api.fqdn, read defensively: the config schema is gaining them separately,
 * so this accepts whatever shape the parsed config has and returns null when there is none.
 */
export function readApiSettings(config: unknown): ApiSettings | null {
  const api = (config as { api?: { enabled?: unknown; port?: unknown; fqdn?: unknown } | null } | null)?.api;
  if (api === undefined || api === null || typeof api !== 'object') return null;
  const enabled = api.enabled !== false;
  const rawPort = typeof api.port === 'string' ? Number(api.port) : api.port;
  const port = typeof rawPort === 'number' && Number.isInteger(rawPort) && rawPort > 0 && rawPort < 65536 ? rawPort : 443;
  const fqdn = typeof api.fqdn === 'string' && api.fqdn.trim() !== '' ? api.fqdn.trim().toLowerCase() : null;
  return { enabled, port, fqdn };
}

export interface PeerCertificate {
  /** As Node prints it: "DNS:a.example, IP Address:192.0.2.10". */
  subjectAltName: string | undefined;
  validFrom: Date;
  validTo: Date;
}

export interface SubjectAltNames {
  dns: string[];
  ips: string[];
}

/** Splits Node's subjectAltName text; entries with commas in them come quoted. */
export function parseSubjectAltNames(text: string | undefined): SubjectAltNames {
  const names: SubjectAltNames = { dns: [], ips: [] };
  if (!text) return names;
  const entries = text.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? [];
  for (const raw of entries) {
    const entry = raw.trim();
    const colon = entry.indexOf(':');
    if (colon < 0) continue;
    const kind = entry.slice(0, colon);
    let value = entry.slice(colon + 1);
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    if (kind === 'DNS') names.dns.push(value.toLowerCase());
    if (kind === 'IP Address') names.ips.push(value);
  }
  return names;
}

function sameIp(a: string, b: string): boolean {
  if (!isIP(a) || !isIP(b)) return false;
  return ipToBytes(a).equals(ipToBytes(b));
}

/** RFC 6125 §6.4.3: a wildcard stands for exactly one whole left-most label. */
export function dnsNameCovers(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  const h = host.toLowerCase().replace(/\.$/, '');
  if (!p.startsWith('*.')) return p === h;
  const dot = h.indexOf('.');
  return dot > 0 && h.slice(dot + 1) === p.slice(2);
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** The verdict on one certificate; pure, so the rules are tested without a TLS server. */
export function judgeCertificate(input: { vip: string; fqdn: string | null; port: number; certificate: PeerCertificate; now: Date }): CheckResult {
  const name = 'api-certificate';
  const { certificate, vip, fqdn, now } = input;
  const sans = parseSubjectAltNames(certificate.subjectAltName);
  const listed = [...sans.dns.map((entry) => `DNS:${entry}`), ...sans.ips.map((entry) => `IP:${entry}`)].join(', ') || 'no SANs';
  const problems: Array<{ verdict: Verdict; text: string; hint: string }> = [];
  if (!sans.ips.some((entry) => sameIp(entry, vip))) {
    problems.push({ verdict: 'fail', text: `does not list the VIP ${vip} as an IP SAN (it lists ${listed})`, hint: `reissue the certificate with IP:${vip} in its subjectAltName` });
  }
  if (fqdn && !sans.dns.some((entry) => dnsNameCovers(entry, fqdn))) {
    problems.push({ verdict: 'warn', text: `does not cover the FQDN ${fqdn} (it lists ${listed})`, hint: `add DNS:${fqdn} to the certificate's subjectAltName` });
  }
  const daysLeft = Math.floor((certificate.validTo.getTime() - now.getTime()) / DAY_MS);
  const until = certificate.validTo.toISOString().slice(0, 10);
  if (certificate.validTo.getTime() <= now.getTime()) {
    problems.push({ verdict: 'fail', text: `expired on ${until}`, hint: 'renew the certificate now' });
  } else if (certificate.validFrom.getTime() > now.getTime()) {
    problems.push({ verdict: 'fail', text: `is not valid until ${certificate.validFrom.toISOString()} (check this node's clock)`, hint: 'fix the clock that issued it or this node\'s clock' });
  } else if (daysLeft < 30) {
    problems.push({ verdict: 'warn', text: `expires in ${daysLeft} days (${until})`, hint: 'renew the certificate before it expires' });
  }
  const where = `${isIP(vip) === 6 ? `[${vip}]` : vip}:${input.port}`;
  if (problems.length === 0) {
    return check(name, 'ok', `the certificate on ${where} covers ${vip}${fqdn ? ` and ${fqdn}` : ''}; valid until ${until} (${daysLeft} days)`);
  }
  const verdict = problems.reduce<Verdict>((acc, problem) => worse(acc, problem.verdict), 'ok');
  return check(name, verdict, `the certificate on ${where} ${problems.map((problem) => problem.text).join('; ')}`, problems.map((problem) => problem.hint).join('; '));
}

export type CertificateFetch = { certificate: PeerCertificate } | { unreachable: string };

/** Opens TLS to the VIP without verifying (we want to see what is served, trusted or not). */
export function fetchPeerCertificate(host: string, port: number, servername: string | null, timeoutMs = 3000): Promise<CertificateFetch> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false, ...(servername ? { servername } : {}), timeout: timeoutMs });
    const done = (result: CertificateFetch): void => {
      socket.destroy();
      resolve(result);
    };
    socket.once('secureConnect', () => {
      const peer = socket.getPeerX509Certificate();
      if (!peer) {
        done({ unreachable: 'the server sent no certificate' });
        return;
      }
      done({ certificate: { subjectAltName: peer.subjectAltName, validFrom: new Date(peer.validFrom), validTo: new Date(peer.validTo) } });
    });
    socket.once('timeout', () => done({ unreachable: `no TLS answer within ${timeoutMs} ms` }));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      done({ unreachable: error.code === 'ECONNREFUSED' ? 'nothing listens there' : error.message });
    });
  });
}

export async function checkApiCertificate(input: { settings: ApiSettings | null; vip: string | null; noVipReason?: string; now?: Date }): Promise<CheckResult> {
  const name = 'api-certificate';
  if (!input.settings) return skip(name, 'no api section in the config (api.port, api.fqdn): no API to check');
  if (!input.settings.enabled) return skip(name, 'the API is turned off (api.enabled: false)');
  if (!input.vip) return skip(name, input.noVipReason ?? 'no VIP address to connect to');
  const { port, fqdn } = input.settings;
  const fetched = await fetchPeerCertificate(input.vip, port, fqdn);
  const where = `${isIP(input.vip) === 6 ? `[${input.vip}]` : input.vip}:${port}`;
  if ('unreachable' in fetched) return skip(name, `no TLS server on ${where}: ${fetched.unreachable}`);
  return judgeCertificate({ vip: input.vip, fqdn, port, certificate: fetched.certificate, now: input.now ?? new Date() });
}
