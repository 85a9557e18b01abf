import type { EtcdStore } from './etcd-store';
import { hookFailuresPrefix, hookRunsPrefix, type ClusterKeys } from './keys';
import type { StoreInfo } from './records';

/**
 * Who may touch which keys, as etcd users and roles (the embedded store, and an external one
 * whose operator lets vipd manage them). etcd maps a client
 * certificate's CN to a user of that name, so each node's client certificate is its user.
 * A signing node's user has etcd's `root` role; any other node's user may read the
 * cluster's keys and write only the election's shared keys and its own records: not the
 * tokens, the CA, the settings or another node's registration.
 */
export interface KeyPermission {
  permission: 'Read' | 'Write' | 'Readwrite';
  key: string;
  /** Every key that starts with `key`, not the one key. */
  prefix: boolean;
}

/** The CN of a node's etcd client certificate, and so its etcd user. */
export function nodeUser(name: string): string {
  return `vipd-node-${name}`;
}

export const ROOT_ROLE = 'root';
export const ROOT_USER = 'root';

/** The role every non-signing node of the cluster has. */
export function nodesRole(keys: ClusterKeys): string {
  return `vipd-${keys.cluster}-nodes`;
}

/** The role for one node's own records. */
export function ownRole(keys: ClusterKeys, name: string): string {
  return `vipd-${keys.cluster}-node-${name}`;
}

// Readiness probes read these keys outside the cluster prefix (src/cluster).
const PROBE_KEYS: KeyPermission[] = [
  { permission: 'Read', key: '/vipd-embedded-health/', prefix: true },
  { permission: 'Read', key: '/vipd-join-health', prefix: false },
];

export function sharedPermissions(keys: ClusterKeys): KeyPermission[] {
  const readwrite = (key: string, prefix = false): KeyPermission => ({ permission: 'Readwrite', key, prefix });
  return [
    // The CA record can be read: its private key is sealed with the cluster key (src/security/cluster-key.ts).
    { permission: 'Read', key: keys.prefix, prefix: true },
    ...PROBE_KEYS,
    readwrite(keys.leader),
    readwrite(keys.handoff),
    readwrite(keys.moveRequest),
    readwrite(keys.lastRelease),
    readwrite(keys.dhcp),
    readwrite(keys.eventsPrefix, true),
    // Each node adds its health verdicts and trims the oldest, whoever wrote them.
    readwrite(keys.healthEventsPrefix, true),
    readwrite(hookRunsPrefix(keys), true),
    // Any agent notes when another's liveness key vanished.
    readwrite(keys.lastSeenPrefix, true),
    readwrite(keys.doctorPrefix, true),
    // An operator cordons or re-prioritises any node through whichever node's API or CLI (issue 14).
    readwrite(keys.cordonsPrefix, true),
    readwrite(keys.prioritiesPrefix, true),
    readwrite(keys.adminEventsPrefix, true),
  ];
}

export function ownPermissions(keys: ClusterKeys, name: string): KeyPermission[] {
  return [keys.node(name), keys.alive(name), keys.health(name), `${hookFailuresPrefix(keys)}${name}`].map((key) => ({
    permission: 'Readwrite',
    key,
    prefix: false,
  }));
}

function rangeEnd(permission: KeyPermission): Buffer {
  if (!permission.prefix) return Buffer.alloc(0);
  const end = Buffer.from(permission.key);
  end[end.length - 1] = end[end.length - 1]! + 1;
  return end;
}

function already(error: unknown, what: 'exists' | 'not found'): boolean {
  const message = (error as Error).message;
  return what === 'exists' ? /already exists/.test(message) : /not found/.test(message);
}

async function putRole(store: EtcdStore, role: string, permissions: KeyPermission[]): Promise<void> {
  const auth = store.client.auth;
  await auth.roleAdd({ name: role }).catch((error: unknown) => {
    if (!already(error, 'exists')) throw error;
  });
  // One at a time: each grant rewrites the role.
  for (const permission of permissions) {
    await auth.roleGrantPermission({ name: role, perm: { permType: permission.permission, key: Buffer.from(permission.key), range_end: rangeEnd(permission) } });
  }
}

/**
 * Clusters made before a key range joined the shared role lack its grant (issue 14's
 * cordons/, priorities/, admin-events/). A signing node (etcd root) adds whatever is missing
 * at start. Returns what it granted, or null when the role does not exist or is not ours
 * (access control off, or an external etcd whose operator keeps the rules).
 */
export async function grantMissingSharedPermissions(store: EtcdStore, keys: ClusterKeys): Promise<KeyPermission[] | null> {
  let granted: Array<{ permType: string; key: Buffer | string; range_end: Buffer | string }>;
  try {
    granted = (await store.client.auth.roleGet({ role: nodesRole(keys) })).perm ?? [];
  } catch (error) {
    // An external etcd whose operator keeps the roles (this node is not its root): not ours to fix.
    if (already(error, 'not found') || isPermissionDenied(error)) return null;
    throw error;
  }
  // grpc hands the type back as the proto's name (READWRITE); we grant with etcd3's (Readwrite).
  const has = (wanted: KeyPermission): boolean =>
    granted.some(
      (perm) =>
        String(perm.permType).toLowerCase() === wanted.permission.toLowerCase() &&
        Buffer.from(perm.key).equals(Buffer.from(wanted.key)) &&
        Buffer.from(perm.range_end ?? '').equals(rangeEnd(wanted)),
    );
  const missing = sharedPermissions(keys).filter((wanted) => !has(wanted));
  if (missing.length > 0) await putRole(store, nodesRole(keys), missing);
  return missing;
}

/**
 * Nobody logs in with a password: the user is its certificate's CN. No password at all,
 * because etcd 3.4 bcrypt-hashes a password inside its apply loop, stalling every member's
 * writes (the fast profile's renewals) for as long as it takes. The one exception is an
 * external etcd's `root`, once, before any agent runs (see turnOnExternalAccess in src/cluster/init.ts).
 */
async function putUser(store: EtcdStore, user: string, roles: string[], password?: string): Promise<void> {
  const auth = store.client.auth;
  await auth.userAdd(password ? { name: user, password } : { name: user, options: { no_password: true } }).catch((error: unknown) => {
    if (!already(error, 'exists')) throw error;
  });
  for (const role of roles) await auth.userGrantRole({ user, role });
}

/** Gives a node its etcd user: `root` for a signing node, the shared and its own role otherwise. */
export async function grantNode(store: EtcdStore, keys: ClusterKeys, name: string, signer: boolean): Promise<void> {
  if (signer) {
    await putUser(store, nodeUser(name), [ROOT_ROLE]);
    return;
  }
  await putRole(store, ownRole(keys, name), ownPermissions(keys, name));
  await putUser(store, nodeUser(name), [nodesRole(keys), ownRole(keys, name)]);
}

/** Deletes a node's etcd user and own role: its certificate is refused from the next request on. */
export async function revokeNode(store: EtcdStore, keys: ClusterKeys, name: string): Promise<boolean> {
  const auth = store.client.auth;
  let deleted = true;
  await auth.userDelete({ name: nodeUser(name) }).catch((error: unknown) => {
    if (!already(error, 'not found')) throw error;
    deleted = false;
  });
  await auth.roleDelete({ role: ownRole(keys, name) }).catch((error: unknown) => {
    if (!already(error, 'not found')) throw error;
  });
  return deleted;
}

/**
 * Turns access control on in a new embedded store, or an external one vipd may manage: etcd
 * wants a `root` user first. The first node signs, so its user gets `root`; the shared role
 * is made for the nodes to come. Each step also passes where access control is on already
 * (existing users are kept; etcd ignores a second auth enable).
 */
export async function enableAccessControl(store: EtcdStore, keys: ClusterKeys, firstNode: string, rootPassword?: string): Promise<void> {
  await putUser(store, ROOT_USER, [ROOT_ROLE], rootPassword);
  await putRole(store, nodesRole(keys), sharedPermissions(keys));
  await grantNode(store, keys, firstNode, true);
  await store.client.auth.authEnable({});
}

/**
 * Undoes enableAccessControl where it turned access control on: `asRoot` logs in as `root`
 * with the password given then (a certificate names no user when this is needed). The rest
 * goes through `store`: etcd refuses a login token once access control is off.
 */
export async function disableAccessControl(asRoot: EtcdStore, store: EtcdStore, keys: ClusterKeys, firstNode: string): Promise<void> {
  await asRoot.client.auth.authDisable({});
  const auth = store.client.auth;
  for (const name of [nodeUser(firstNode), ROOT_USER]) {
    await auth.userDelete({ name }).catch((error: unknown) => {
      if (!already(error, 'not found')) throw error;
    });
  }
  await auth.roleDelete({ role: nodesRole(keys) }).catch((error: unknown) => {
    if (!already(error, 'not found')) throw error;
  });
}

/** Whether etcd's access control is on: asked to log in a user that does not exist, etcd says which. */
export async function accessControlEnabled(store: EtcdStore): Promise<boolean> {
  try {
    await store.client.auth.authenticate({ name: 'vipd-no-such-user', password: 'none' });
    return true;
  } catch (error) {
    const message = (error as Error).message;
    if (/not enabled/i.test(message)) return false;
    if (/authentication failed/i.test(message)) return true;
    throw error;
  }
}

/** Whether vipd keeps etcd's users and roles: always its own embedded store, an external one only when allowed. */
export function managesAccess(info: StoreInfo | null): boolean {
  return info !== null && (info.kind === 'embedded' || info.manageAccess === true);
}

/**
 * Every etcd user with its roles. etcd answers anyone while its access control is off, and
 * only a user with the root role once it is on: so this also tells whether the caller may manage users.
 */
export async function listUsers(store: EtcdStore): Promise<Map<string, string[]>> {
  const auth = store.client.auth;
  const users = new Map<string, string[]>();
  for (const name of (await auth.userList()).users) users.set(name, (await auth.userGet({ name })).roles);
  return users;
}

/** Whether etcd refused a call for want of rights: the caller's certificate is not a signing node's, or was revoked. */
export function isPermissionDenied(error: unknown): boolean {
  return /permission denied|user name not found|user name is empty|authentication failed/i.test((error as Error)?.message ?? '');
}
