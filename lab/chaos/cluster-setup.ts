/**
 * Puts lasting state into a lab cluster the way a user would: tokens through the CLI, a
 * serving certificate through the API. The chaos runner checks it survives every fault;
 * the security tests check none of its secrets leak.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterCa } from '../../src/security/ca';
import { MemoryKeyValue } from '../../src/store/kv';
import type { Lab, LabNode } from '../lab';
import { run, waitFor } from '../shell';

export async function createToken(lab: Lab, node: LabNode, role: 'read' | 'admin', configPath = node.configPath): Promise<string> {
  const result = await lab.vipd(node, ['token', 'create', '--role', role, '--description', `chaos ${role}`, '--config', configPath]);
  if (result.code !== 0) throw new Error(`vipd token create failed (${result.code}): ${result.stderr.trim()}`);
  return result.stdout.trim();
}

/** The cluster CA as `vipd ca` prints it, written to a file for curl --cacert. */
export async function fetchClusterCa(lab: Lab, node: LabNode): Promise<{ path: string; pem: string; fingerprint: string }> {
  const result = await waitFor('the cluster CA', async () => {
    const attempt = await lab.vipd(node, ['ca', '--config', node.configPath]);
    return attempt.code === 0 ? attempt : undefined;
  }, 30_000, 200);
  const path = join(lab.dir, 'cluster-ca.pem');
  writeFileSync(path, result.stdout);
  return { path, pem: result.stdout, fingerprint: /SHA-256 fingerprint: (\S+)/.exec(result.stderr)?.[1] ?? '' };
}

export interface UploadedCertificate {
  certificate: string;
  privateKey: string;
  /** The CA that issued it (not the cluster CA): what clients trust once it is served. */
  issuerPath: string;
  issuerPem: string;
}

/** Runs curl in the client namespace against the VIP. */
export async function curlVip(
  lab: Lab,
  path: string,
  options: { caPath: string; token?: string; method?: string; bodyFile?: string },
): Promise<{ code: number; status: number; body: string }> {
  const args = ['netns', 'exec', lab.clientNs, 'curl', '-sS', '--max-time', '5', '--cacert', options.caPath, '-w', '\n%{http_code}'];
  if (options.token) args.push('-H', `Authorization: Bearer ${options.token}`);
  if (options.method) args.push('-X', options.method);
  if (options.bodyFile) args.push('-H', 'Content-Type: application/json', '--data-binary', `@${options.bodyFile}`);
  const result = await run('ip', [...args, `https://${lab.vip.includes(':') ? `[${lab.vip}]` : lab.vip}${path}`]);
  const lines = result.stdout.split('\n');
  return { code: result.code, status: Number(lines.pop()), body: lines.join('\n') };
}

/**
 * Issues a serving certificate for the VIP from a CA of the user's own and uploads it with
 * an admin token; retried while the VIP moves. Returns what was uploaded.
 */
export async function uploadCertificate(lab: Lab, adminToken: string, clusterCaPath: string): Promise<UploadedCertificate> {
  const issuer = await ClusterCa.loadOrCreate(new MemoryKeyValue(), 'ca', { cluster: 'corp' });
  const issued = await issuer.issueServingCertificate({ nodeName: 'mgmt', nodeIp: lab.vip, vip: lab.vip, fqdn: null });
  const bodyFile = join(lab.dir, 'certificate-upload.json');
  writeFileSync(bodyFile, JSON.stringify({ certificate: issued.chain, privateKey: issued.privateKey, caChain: issuer.certificatePem }), { mode: 0o600 });
  const issuerPath = join(lab.dir, 'uploaded-issuer.pem');
  writeFileSync(issuerPath, issuer.certificatePem);
  await waitFor('the certificate upload through the VIP', async () => {
    const answer = await curlVip(lab, '/v1/settings/ssl-certificates', { caPath: clusterCaPath, token: adminToken, method: 'PUT', bodyFile });
    if (answer.status >= 400 && answer.status < 500) throw new Error(`upload refused: ${answer.status} ${answer.body}`);
    return answer.status === 200;
  }, 30_000, 250);
  return { certificate: issued.chain, privateKey: issued.privateKey, issuerPath, issuerPem: issuer.certificatePem };
}
