import { Type, type Static } from '@sinclair/typebox';
import { Schema } from '../config/schema-check';

/**
 * The join protocol between `vipd join` and the API's /v1/join routes. Both sides check
 * what they receive against these schemas: the server the request, the joiner the answers.
 */

/** The TLS server name a joining node asks for: the API then presents a certificate from the cluster CA, whatever was uploaded. */
export const JOIN_SERVER_NAME = 'vipd-join.invalid';

const NodeName = Type.String({
  pattern: '^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$',
  description: 'a DNS-label-like node name: lowercase letters, digits, "-" and ".", at most 63',
});
const Pem = Type.String({ minLength: 1, maxLength: 16_384, description: 'PEM text, at most 16 KiB' });
const Ip = Type.String({ format: 'ip', description: 'an IPv4 or IPv6 address' });
const Mac = Type.String({ format: 'mac', description: 'a MAC address like 02:00:00:09:7f:3f' });
const Url = Type.String({ pattern: '^https?://[^\\s/]+$', description: 'a URL like https://192.0.2.11:2379' });

export const JoinRequest = Type.Object(
  {
    name: NodeName,
    interface: Type.String({ pattern: '^[A-Za-z0-9_.:@-]{1,15}$', description: 'a network interface name' }),
    ip: Ip,
    prefixLength: Type.Integer({ minimum: 1, maximum: 128, description: 'a prefix length from 1 to 128' }),
    mac: Mac,
    mtu: Type.Integer({ minimum: 68, maximum: 65535, description: 'an MTU from 68 to 65535' }),
    /** SPKI public keys: the server certifies them; private keys never leave the joining node. */
    publicKeys: Type.Object(
      {
        client: Pem,
        server: Pem,
        peer: Pem,
        /** The key of this node's HTTPS certificate, issued here when the node will not sign its own. */
        api: Type.Optional(Pem),
      },
      { additionalProperties: false },
    ),
    /** Shows the joiner holds the cluster key (src/security/cluster-key.ts): it becomes a signing node. */
    signerProof: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: 'an HMAC-SHA256 in base64url' })),
  },
  { additionalProperties: false },
);
export type JoinRequest = Static<typeof JoinRequest>;

// Answers are serialised by Fastify, whose serialiser knows no custom formats: plain strings there.
const AnswerIp = Type.String({ description: 'an IP address' });
const AnswerMac = Type.String({ description: 'a MAC address' });
const NodeSummary = Type.Object({ name: Type.String(), ip: AnswerIp, mac: AnswerMac, alive: Type.Boolean() });

export const JoinClusterInfo = Type.Object({
  cluster: Type.String(),
  vip: Type.Object({
    mode: Type.Union([Type.Literal('static'), Type.Literal('dhcp')]),
    /** Static: the VIP. DHCP: the requested or leased IP, if known. */
    address: Type.Union([AnswerIp, Type.Null()]),
    hwaddr: Type.Union([AnswerMac, Type.Null()]),
  }),
  nodes: Type.Array(NodeSummary),
  store: Type.Union([Type.Literal('embedded'), Type.Literal('external')]),
  /** External store: vipd keeps etcd's users, so the joiner's client certificate must carry its user's CN. */
  manageAccess: Type.Optional(Type.Boolean()),
});
export type JoinClusterInfo = Static<typeof JoinClusterInfo>;

export const JoinStore = Type.Union([
  Type.Object({
    kind: Type.Literal('embedded'),
    role: Type.Literal('member'),
    clientURL: Url,
    peerURL: Url,
    initialCluster: Type.String(),
    clusterEndpoints: Type.Array(Url),
  }),
  Type.Object({ kind: Type.Literal('embedded'), role: Type.Literal('agent'), endpoints: Type.Array(Url, { minItems: 1 }) }),
  Type.Object({ kind: Type.Literal('external'), endpoints: Type.Array(Url, { minItems: 1 }), ca: Type.Union([Pem, Type.Null()]) }),
]);
export type JoinStore = Static<typeof JoinStore>;

export const JoinResponse = Type.Object({
  cluster: Type.String(),
  /** The shared config document (cluster, vip, api, ...); the joiner adds node and etcd. */
  config: Type.Record(Type.String(), Type.Unknown()),
  store: JoinStore,
  certificates: Type.Object({
    ca: Pem,
    client: Type.Union([Pem, Type.Null()]),
    server: Type.Union([Pem, Type.Null()]),
    peer: Type.Union([Pem, Type.Null()]),
    /** A non-signing node's HTTPS certificate chain (leaf, then the CA). */
    api: Type.Optional(Type.Union([Pem, Type.Null()])),
  }),
  /** Whether the node joined as a signing node (it proved it holds the cluster key). */
  signer: Type.Optional(Type.Boolean()),
  /** Which node answered: it has checked the joiner at layer 2 from its side. */
  servedBy: Type.String(),
});
export type JoinResponse = Static<typeof JoinResponse>;

export const JoinRequestSchema = new Schema(JoinRequest);
export const JoinClusterInfoSchema = new Schema(JoinClusterInfo);
export const JoinResponseSchema = new Schema(JoinResponse);

/**
 * Why a join was refused: `conflict` when the request clashes with what the cluster has (a
 * name or IP taken), `unavailable` when the cluster cannot take a node now. The API maps
 * them to 409 and 503; the message is safe to show the joining node.
 */
export class JoinRefused extends Error {
  constructor(
    /**
     * unauthorized: the join token was spent or expired while this join was checked, or the
     * cluster key is wrong; invalid: the request itself is wrong (a forwarded 400).
     */
    readonly kind: 'conflict' | 'unavailable' | 'unauthorized' | 'invalid',
    message: string,
  ) {
    super(message);
    this.name = 'JoinRefused';
  }
}
