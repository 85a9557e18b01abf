/**
 * Runs every doctor check from this node and assembles the report. Facts are gathered once
 * (netlink, etcd) and handed to the checks; checks that need etcd are skipped when it cannot
 * be reached, and each check catches its own errors so one broken probe never hides the rest.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Config } from '../config/config';
import { EtcdStore } from '../store/etcd-store';
import { ClusterKeys } from '../store/keys';
import { Membership } from '../store/membership';
import { type NodeRecord } from '../store/records';
import { parseMac } from '../holding/codecs/mac';
import { isLinkLocalV6 } from '../holding/codecs/subnet';
import { VIP_MACVLAN } from '../holding/holders';
import { Netlink, type InterfaceAddress, type InterfaceInfo } from '../holding/netlink';
import type { ManagementAddress } from '../status/management-address';
import { readManagementAddress } from '../status/read';
import { checkApiCertificate, readApiSettings } from './certificate';
import { checkClock, checkEtcdHealth, checkRenewalLatency, measureClockOffset, probeEndpointHealth, timeRenewalWrites, type ClockOffset } from './etcd-checks';
import { checkFirewall } from './firewall';
import { checkHealth } from './health';
import { checkDhcpReservation, checkMtu, checkSubnet, ownManagementAddress, type LocalInterface, type ReferenceAddress } from './membership-checks';
import { buildReport, skip, type CheckResult, type DoctorReport } from './report';
import { arpIgnore, checkLayer2, checkVipAnswers, localAnswerers, solicit } from './segment';

export interface DoctorOutcome {
  report: DoctorReport;
  /** False when etcd could not be reached at all: the command exits 1. */
  etcdReachable: boolean;
}

/** ARP/NS: how long one round waits for answers, and how many rounds (the later ones ask only the silent). */
const ROUND_MS = 300;
const ROUNDS = 2;

interface LocalFacts {
  interfaces: InterfaceInfo[];
  addresses: InterfaceAddress[];
  management: InterfaceInfo | null;
}

interface ClusterFacts {
  /** Null when etcd answered but the cluster's records would not parse (see viewError). */
  view: ManagementAddress | null;
  viewError: string | null;
  nodes: NodeRecord[];
  live: Set<string>;
}

async function readLocal(interfaceName: string): Promise<LocalFacts | { error: string }> {
  let netlink: Netlink | null = null;
  try {
    netlink = Netlink.open();
    const interfaces = await netlink.interfaces();
    const addresses = await netlink.addresses();
    return { interfaces, addresses, management: interfaces.find((link) => link.name === interfaceName) ?? null };
  } catch (error) {
    return { error: (error as Error).message };
  } finally {
    netlink?.close();
  }
}

/** Runs a check, turning an unexpected error into a skip that says what went wrong. */
async function guarded(name: string, run: () => Promise<CheckResult> | CheckResult): Promise<CheckResult> {
  try {
    return await run();
  } catch (error) {
    return skip(name, `could not run: ${(error as Error).message}`);
  }
}

function needsEtcd(name: string): CheckResult {
  return skip(name, 'needs etcd, which could not be reached');
}

export async function runDoctor(config: Config, now: () => Date = () => new Date()): Promise<DoctorOutcome> {
  const keys = new ClusterKeys(config.cluster);
  const store = new EtcdStore({ endpoints: config.etcd.endpoints, tls: config.etcd.tls, callTimeoutMs: 3000 });
  const localRead = await readLocal(config.node.interface);
  const local: LocalFacts | null = 'error' in localRead ? null : localRead;

  try {
    let cluster: ClusterFacts | null = null;
    let etcdError = '';
    try {
      const membership = new Membership(store, keys);
      const [nodes, live] = await Promise.all([membership.listNodes(), membership.liveNodeNames()]);
      cluster = { view: null, viewError: null, nodes, live };
    } catch (error) {
      etcdError = (error as Error).message;
    }
    // Read apart from the above: a key that does not parse is bad data, not an unreachable etcd.
    if (cluster) {
      try {
        cluster.view = await readManagementAddress(store, keys, config);
      } catch (error) {
        cluster.viewError = (error as Error).message;
      }
    }
    const view = cluster?.view ?? null;

    const dhcp = config.vip.mode === 'dhcp';
    const leased = view?.status.dhcp?.state === 'bound' ? (view.status.dhcp.leasedIP ?? null) : null;
    // The address clients use: static, the VIP; DHCP, whatever was leased.
    const vip = dhcp ? leased : config.vip.address;
    const noVipReason = dhcp ? (view ? 'DHCP mode: no lease is held, so there is no address to ask for' : 'DHCP mode: the leased IP could not be read from etcd') : undefined;
    const reference: ReferenceAddress | null = config.vip.address
      ? { address: config.vip.address, what: dhcp ? 'requested IP' : 'VIP' }
      : leased
        ? { address: leased, what: 'leased IP' }
        : null;

    const managementAddresses = local?.management
      ? local.addresses.filter(
          (entry) =>
            entry.interfaceIndex === local.management!.index &&
            !isLinkLocalV6(entry.address) &&
            !(entry.address === vip && (entry.prefixLength === 32 || entry.prefixLength === 128)),
        )
      : [];
    const localInterface: LocalInterface | null = local?.management
      ? { name: local.management.name, mtu: local.management.mtu, addresses: managementAddresses.map(({ address, prefixLength }) => ({ address, prefixLength })) }
      : null;
    const own = localInterface ? ownManagementAddress(localInterface, reference) : null;
    const ownIPv4 = own && isIPv4(own.address) ? own.address : (managementAddresses.find((entry) => isIPv4(entry.address))?.address ?? null);

    const etcdTargets = config.etcd.endpoints.map((endpoint) => ({ endpoint, tls: config.etcd.tls }));
    const health = cluster ? await Promise.all(etcdTargets.map((target) => probeEndpointHealth(target))) : etcdTargets.map((target) => ({ endpoint: target.endpoint, healthy: null, reason: null, version: null }));
    const etcdCheck = checkEtcdHealth({ reachable: cluster !== null, error: etcdError, endpoints: health, dataError: cluster?.viewError ?? null, prefix: keys.prefix });

    // Timed alone, before the probes below start polling: their timers would skew it.
    const latency = cluster ? await guarded('renewal-latency', async () => checkRenewalLatency(await timeRenewalWrites(store, keys, config.node.name), config.election)) : needsEtcd('renewal-latency');

    const clock = cluster
      ? guarded('clock', async () => {
          const measured = await Promise.all(
            etcdTargets
              .filter((_target, index) => health[index]?.healthy !== null)
              .map(async (target) => {
                try {
                  return { endpoint: target.endpoint, offset: await measureClockOffset(target) };
                } catch (error) {
                  return { endpoint: target.endpoint, offset: null as ClockOffset | null, error: (error as Error).message };
                }
              }),
          );
          return measured.length > 0 ? checkClock(measured) : skip('clock', "etcd's HTTP endpoints did not answer, so its clock could not be read");
        })
      : Promise.resolve(needsEtcd('clock'));

    const segmentChecks = guarded('layer2', async () => {
      if (!cluster) return needsEtcd('layer2');
      if ('error' in localRead) return skip('layer2', `cannot read this node's interfaces: ${localRead.error}`);
      if (!localRead.management) return skip('layer2', `there is no interface "${config.node.interface}" on this node`);
      const management = localRead.management;
      const others = cluster.nodes.filter((node) => node.name !== config.node.name && node.ip !== own?.address);
      const answers = await solicit({
        interfaceName: management.name,
        ownMac: parseMac(management.mac),
        ownIPv4,
        targets: [...new Set(others.map((node) => node.ip).filter((ip) => isIPv4(ip) || isIPv6(ip)))],
        roundMs: ROUND_MS,
        rounds: ROUNDS,
      });
      return checkLayer2({ selfName: config.node.name, ownIp: own?.address ?? null, interfaceName: management.name, nodes: cluster.nodes, live: cluster.live, answers, roundMs: ROUND_MS, rounds: ROUNDS });
    });

    const vipCheck = guarded('vip-answers', async () => {
      if (!cluster) return needsEtcd('vip-answers');
      if (!view) return skip('vip-answers', `the holder could not be read from etcd: ${cluster.viewError}`);
      if (!vip) return checkVipAnswers({ vip: null, ...(noVipReason ? { noVipReason } : {}), holder: null, expectedMac: null, answering: [], owners: new Map(), roundMs: ROUND_MS });
      if (!local?.management) return skip('vip-answers', `there is no interface "${config.node.interface}" on this node`);
      const answers = await solicit({
        interfaceName: local.management.name,
        ownMac: parseMac(local.management.mac),
        ownIPv4,
        targets: [vip],
        roundMs: ROUND_MS,
        rounds: ROUNDS,
      });
      const mine = localAnswerers({ address: vip, managementInterface: local.management.name, interfaces: local.interfaces, addresses: local.addresses, arpIgnore: arpIgnore(local.management.name) });
      const owners = new Map(cluster.nodes.map((node) => [node.mac.toLowerCase(), node.name]));
      const hwaddr = view.metadata.annotations['kube-vip.io/hwaddr'];
      if (dhcp && hwaddr) owners.set(hwaddr.toLowerCase(), "the VIP's own MAC");
      return checkVipAnswers({
        vip,
        holder: view.status.holder,
        expectedMac: view.status.hwaddr,
        answering: [...(answers.get(vip) ?? []), ...mine],
        owners,
        roundMs: ROUND_MS,
      });
    });

    const settings = readApiSettings(config);
    const certificate = guarded('api-certificate', () => checkApiCertificate({ settings, vip, ...(noVipReason ? { noVipReason } : {}), now: now() }));
    const firewall = guarded('firewall', () =>
      checkFirewall({
        interfaces: dhcp ? [config.node.interface, VIP_MACVLAN] : [config.node.interface],
        ipv6: reference ? isIPv6(reference.address) : false,
        vip,
        apiPort: settings?.enabled ? settings.port : null,
      }),
    );

    const healthChecks = checkHealth(config.node.name, config.health).catch((error: Error) => [skip('health', `could not run: ${error.message}`)]);

    const subnet = !cluster
      ? needsEtcd('subnet')
      : 'error' in localRead
        ? skip('subnet', `cannot read this node's interfaces: ${localRead.error}`)
        : checkSubnet({ cluster: config.cluster, local: localInterface, interfaceName: config.node.interface, reference, nodes: cluster.nodes });
    const mtu = cluster ? checkMtu({ selfName: config.node.name, localMtu: local?.management?.mtu ?? null, nodes: cluster.nodes }) : needsEtcd('mtu');
    const reservation = !dhcp
      ? skip('dhcp-reservation', 'static mode: no DHCP reservation involved')
      : view
        ? checkDhcpReservation(view)
        : cluster
          ? skip('dhcp-reservation', `the lease could not be read from etcd: ${cluster.viewError}`)
          : needsEtcd('dhcp-reservation');

    const results = [etcdCheck, await clock, latency, subnet, mtu, await segmentChecks, await vipCheck, reservation, await certificate, await firewall, ...(await healthChecks)];
    return { report: buildReport(config.cluster, config.node.name, results, now()), etcdReachable: cluster !== null };
  } finally {
    store.close();
  }
}
