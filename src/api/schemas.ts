import { Type, type Static, type TSchema } from '@sinclair/typebox';
import type { CertificateSummary } from '../security/certificates';
import type { ApiManagementAddress, MoveAccepted, MoveEvent, NodeStatus } from './backend';
import type { NodeHealthStatus } from '../status/management-address';
import { ADMIN_ACTIONS, type CheckStatusRecord } from '../store/records';

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Timestamp = Type.String({ description: 'an ISO 8601 time' });

const Pem = (what: string) =>
  Type.String({ minLength: 1, maxLength: 32_768, description: `${what} in PEM, at most 32 KiB` });

// ---- requests ----

export const MoveRequest = Type.Object(
  {
    to: Type.String({
      pattern: '^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$',
      description: 'a node name: lowercase letters, digits, "-" and ".", at most 63',
    }),
  },
  { additionalProperties: false },
);
export type MoveRequest = Static<typeof MoveRequest>;

export const CertificateRequest = Type.Object(
  {
    certificate: Pem('the serving certificate (optionally followed by intermediates)'),
    privateKey: Pem('the unencrypted private key of the certificate'),
    caChain: Type.Optional(Pem('the CA certificates that issued it')),
  },
  { additionalProperties: false },
);
export type CertificateRequest = Static<typeof CertificateRequest>;

export const EventsQuery = Type.Object(
  {
    limit: Type.Optional(
      Type.String({ pattern: '^([1-9][0-9]{0,2}|1000)$', description: 'a whole number from 1 to 1000' }),
    ),
  },
  { additionalProperties: false },
);
export type EventsQuery = Static<typeof EventsQuery>;

/** Endpoints that take no query string still reject one, like every unknown field. */
export const NoQuery = Type.Object({}, { additionalProperties: false });

// ---- responses ----

export const ErrorResponse = Type.Object({ error: Type.String(), message: Type.String() });
export type ErrorResponse = Static<typeof ErrorResponse>;

export const PingResponse = Type.Object({ status: Type.Literal('ok') });

const CordonSchema = Type.Object({ strict: Type.Boolean(), by: Type.String(), reason: Nullable(Type.String()), since: Timestamp });

const NodeHealthStatusSchema = Type.Object({
  name: Type.String(),
  running: Type.Boolean(),
  health: Type.Union([Type.Literal('passing'), Type.Literal('failing'), Type.Literal('unknown')]),
  since: Nullable(Timestamp),
  failing: Type.Array(Type.Object({ check: Type.String(), detail: Nullable(Type.String()), since: Timestamp })),
  priority: Type.Optional(Nullable(Type.Integer())),
  cordon: Type.Optional(Nullable(CordonSchema)),
});

const CheckStatusSchema = Type.Object({
  name: Type.String(),
  kind: Type.Union([Type.Literal('http'), Type.Literal('tcp'), Type.Literal('command')]),
  target: Type.String(),
  passing: Type.Boolean(),
  since: Timestamp,
  consecutiveFailures: Type.Integer(),
  consecutiveSuccesses: Type.Integer(),
  fall: Type.Integer(),
  rise: Type.Integer(),
  lastResult: Nullable(
    Type.Object({ ok: Type.Boolean(), detail: Type.String(), output: Type.String(), durationMs: Type.Number(), time: Timestamp }),
  ),
});

export const ManagementAddressResponse = Type.Object({
  apiVersion: Type.Literal('vipd.io/v1'),
  kind: Type.Literal('ManagementAddress'),
  metadata: Type.Object({
    name: Type.Literal('management-address'),
    cluster: Type.String(),
    annotations: Type.Record(Type.String(), Type.String()),
  }),
  spec: Type.Object({
    address: Nullable(Type.String()),
    mode: Type.Union([Type.Literal('static'), Type.Literal('dhcp')]),
    interface: Type.String(),
    hwaddr: Type.Optional(Type.String()),
  }),
  status: Type.Object({
    held: Type.Boolean(),
    address: Nullable(Type.String()),
    holder: Nullable(Type.String()),
    holderIP: Nullable(Type.String()),
    hwaddr: Nullable(Type.String()),
    since: Nullable(Timestamp),
    term: Nullable(Type.Integer()),
    message: Type.String(),
    dhcp: Type.Optional(
      Type.Object({
        holder: Type.String(),
        state: Type.Union([Type.Literal('requesting'), Type.Literal('bound'), Type.Literal('lost')]),
        reason: Nullable(Type.String()),
        leasedIP: Nullable(Type.String()),
        leaseSeconds: Nullable(Type.Number()),
        boundAt: Nullable(Timestamp),
        renewAt: Nullable(Timestamp),
        rebindAt: Nullable(Timestamp),
        expiresAt: Nullable(Timestamp),
        updatedAt: Timestamp,
      }),
    ),
    caFingerprint: Type.Optional(Type.String()),
    certificateWarning: Type.Optional(Nullable(Type.String())),
    lastHookFailure: Type.Optional(
      Type.Object({
        node: Type.String(),
        hook: Type.String(),
        term: Nullable(Type.Integer()),
        reason: Type.String(),
        time: Timestamp,
        cooldownUntil: Timestamp,
      }),
    ),
    nodes: Type.Optional(Type.Array(NodeHealthStatusSchema)),
  }),
});

const NodeStatusSchema = Type.Object({
  name: Type.String(),
  ip: Type.String(),
  healthy: Type.Boolean(),
  lastSeen: Nullable(Timestamp),
  holdsVip: Type.Boolean(),
  /** The node's health checks (issue 13): `healthy` above says only whether its agent runs. */
  health: Type.Union([Type.Literal('passing'), Type.Literal('failing'), Type.Literal('unknown')]),
  healthSince: Nullable(Timestamp),
  checks: Type.Array(CheckStatusSchema),
  /** Issue 14: the priority it runs with, and its cordon. */
  priority: Type.Optional(Nullable(Type.Integer())),
  cordon: Type.Optional(Nullable(CordonSchema)),
});
export const NodesResponse = Type.Object({ nodes: Type.Array(NodeStatusSchema) });

const MoveEventSchema = Type.Object({
  from: Nullable(Type.String()),
  to: Nullable(Type.String()),
  reason: Type.String(),
  term: Nullable(Type.Integer()),
  time: Timestamp,
});
const HealthEventSchema = Type.Object({
  node: Type.String(),
  healthy: Type.Boolean(),
  failing: Type.Array(Type.Object({ check: Type.String(), detail: Nullable(Type.String()) })),
  time: Timestamp,
});
const AdminEventSchema = Type.Object({
  node: Type.String(),
  action: Type.Union(ADMIN_ACTIONS.map((action) => Type.Literal(action))),
  message: Type.String(),
  time: Timestamp,
});
export const EventsResponse = Type.Object({ events: Type.Array(MoveEventSchema), health: Type.Array(HealthEventSchema), admin: Type.Array(AdminEventSchema) });

export const CordonRequest = Type.Object(
  {
    strict: Type.Optional(Type.Boolean({ description: 'true or false (true: the node never takes the VIP)' })),
    reason: Type.Optional(Type.String({ maxLength: 200, pattern: '^[^\\u0000-\\u001f]*$', description: 'one line of at most 200 characters' })),
  },
  { additionalProperties: false },
);
export type CordonRequest = Static<typeof CordonRequest>;

export const PriorityRequest = Type.Object(
  { priority: Type.Integer({ minimum: 0, maximum: 1000, description: 'a whole number from 0 to 1000 (higher preferred)' }) },
  { additionalProperties: false },
);
export type PriorityRequest = Static<typeof PriorityRequest>;

export const NodeParams = Type.Object(
  { name: Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$', description: 'a node name' }) },
  { additionalProperties: false },
);
export type NodeParams = Static<typeof NodeParams>;

export const NodePreferenceResponse = Type.Object({
  node: Type.String(),
  changed: Type.Boolean(),
  priority: Nullable(Type.Integer()),
  cordon: Nullable(CordonSchema),
});

export const MoveAcceptedResponse = Type.Object({
  id: Type.String(),
  state: Type.Union([Type.Literal('accepted'), Type.Literal('done')]),
  from: Type.String(),
  to: Type.String(),
  term: Type.Integer(),
  requestedAt: Timestamp,
});

/** What the dashboard needs beyond the status object: which node answered, and the FQDN. */
export const AboutResponse = Type.Object({
  node: Type.Object({ name: Type.String(), ip: Type.String() }),
  fqdn: Nullable(Type.String()),
});

const CertificateSummarySchema = Type.Object({
  source: Type.Union([Type.Literal('uploaded'), Type.Literal('generated')]),
  subject: Type.String(),
  issuer: Type.String(),
  fingerprint: Type.String(),
  notBefore: Timestamp,
  notAfter: Timestamp,
  dnsNames: Type.Array(Type.String()),
  ipAddresses: Type.Array(Type.String()),
  warning: Nullable(Type.String()),
});
export const CertificateResponse = Type.Object({ certificate: CertificateSummarySchema, warning: Nullable(Type.String()) });

// The response schemas also decide what is serialised; these fail to compile if they drift from the types.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
export type SchemaMatchesTypes = [
  Assert<Same<Static<typeof ManagementAddressResponse>, ApiManagementAddress>>,
  Assert<Same<Static<typeof NodeStatusSchema>, NodeStatus>>,
  Assert<Same<Static<typeof NodeHealthStatusSchema>, NodeHealthStatus>>,
  Assert<Same<Static<typeof CheckStatusSchema>, CheckStatusRecord>>,
  Assert<Same<Static<typeof MoveEventSchema>, MoveEvent>>,
  Assert<Same<Static<typeof MoveAcceptedResponse>, MoveAccepted>>,
  Assert<Same<Static<typeof CertificateSummarySchema>, CertificateSummary>>,
];
