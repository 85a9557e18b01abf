import type { ClusterKeys } from './keys';

/** Where TLS material and tokens live in etcd, beside the cluster's other keys. */
export interface SecurityKeys {
  /** The cluster CA: certificate and private key, written once with putIfAbsent. */
  ca: string;
  /** The user-uploaded serving certificate, shared by every node (the VIP moves). */
  uploadedCertificate: string;
  tokensPrefix: string;
  token(id: string): string;
}

export function securityKeys(keys: ClusterKeys): SecurityKeys {
  const base = `${keys.prefix}security/`;
  return {
    ca: `${base}ca`,
    uploadedCertificate: `${base}tls/uploaded`,
    tokensPrefix: `${base}tokens/`,
    token: (id) => `${base}tokens/${id}`,
  };
}
