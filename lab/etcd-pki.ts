/**
 * The PKI of an external etcd in the lab, made by vipd's own certificate code: a CA of the
 * etcd's operator (not the vipd cluster's), the server's certificate, and one client
 * certificate per etcd user (etcd takes the user from the CN under --client-cert-auth).
 */
import { join } from 'node:path';
import { ClusterCa } from '../src/security/ca';
import { ClusterIssuer, generateKeyPair, writePrivateFile } from '../src/cluster/pki';
import { ETCD_IP, type EtcdTls } from './lab';

export interface EtcdPki {
  tls: EtcdTls;
  /** The client certificate and key of one user, by CN. */
  clients: Map<string, { cert: string; key: string }>;
}

/** Writes the files under `dir`; `adminUser` is the CN etcdctl's certificate carries (lab.etcdctl). */
export async function makeEtcdPki(dir: string, adminUser: string, users: string[]): Promise<EtcdPki> {
  const issuer = await ClusterIssuer.fromMaterial(await ClusterCa.generate({ cluster: 'operators-etcd' }));
  const ca = join(dir, 'ca.pem');
  writePrivateFile(ca, issuer.caPem, 0o644);
  const issue = async (name: string, commonName: string, uses: Array<'server' | 'client'>, altNames?: string[]): Promise<{ cert: string; key: string }> => {
    const pair = await generateKeyPair();
    const files = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}-key.pem`) };
    writePrivateFile(files.key, pair.privateKeyPem);
    writePrivateFile(files.cert, await issuer.issue({ commonName, publicKeyPem: pair.publicKeyPem, uses, ...(altNames ? { altNames } : {}) }), 0o644);
    return files;
  };
  const server = await issue('server', 'etcd', ['server', 'client'], [ETCD_IP, '127.0.0.1', 'localhost']);
  const clients = new Map<string, { cert: string; key: string }>();
  for (const user of [adminUser, ...users]) clients.set(user, await issue(`client-${user}`, user, ['client']));
  return { tls: { ca, serverCert: server.cert, serverKey: server.key, client: clients.get(adminUser)! }, clients };
}
