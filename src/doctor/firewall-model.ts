/**
 * The firewall check's model, shared by both rule sources (firewall-nft.ts, firewall-iptables.ts):
 * the packets vipd needs through, rules as conditions plus a verdict, and the walk that judges them.
 *
 * Rules are evaluated against a model packet: each condition is true, false, or unknown
 * (source addresses, conntrack state, marks...). A drop whose conditions are all true is a
 * certain finding (fail); one that also depends on unknowns, and names what we care about
 * (the port, ARP), is a possible finding (warn). Chains are walked in order, so an earlier
 * accept of the port or of ARP shadows a later drop, and jumps are followed.
 */
import { isIP } from 'node:net';

export type Tri = 'yes' | 'no' | 'maybe';

/** What the rule conditions are evaluated against. */
export interface ModelPacket {
  /** Shown in findings: "ARP", "tcp dport 443". */
  label: string;
  etherType: 'arp' | 'ip' | 'ip6';
  l4: 'tcp' | 'icmpv6' | null;
  dport?: number;
  arpOperation?: 'request' | 'reply';
  icmpv6Type?: 'nd-neighbor-solicit' | 'nd-neighbor-advert';
  daddr?: string;
}

export interface FirewallTarget {
  /** Interfaces the VIP's traffic arrives on: the management interface (and the DHCP macvlan). */
  interfaces: string[];
  /** The address family of the segment: ARP for IPv4, neighbour discovery for IPv6. */
  ipv6: boolean;
  vip: string | null;
  apiPort: number | null;
}

export interface FirewallFinding {
  /** "arp vipdtest input handle 2", or "inet filter input policy drop". */
  where: string;
  /** A short rendering of the rule. */
  rule: string;
  drops: string;
  certain: boolean;
}

export interface Eval {
  result: Tri;
  /** True when a condition singled out the packet we care about (the port, ARP, ND). */
  specific: boolean;
}

export type Condition = (packet: ModelPacket, hook: string | null) => Eval;

export type RuleVerdict =
  | { kind: 'accept' | 'drop' | 'return' | 'continue' }
  | { kind: 'jump' | 'goto'; target: string }
  | { kind: 'map'; resolve: (packet: ModelPacket, hook: string | null) => { verdict: RuleVerdict | null; eval: Eval } };

export interface RuleModel {
  where: string;
  text: string;
  conditions: Condition[];
  verdict: RuleVerdict | null;
}

export interface ChainModel {
  /** Where the rules came from ("nft", "iptables-save"...): chains jump only within one source. */
  source: string;
  /** How findings name the chain: "inet filter input", "iptables filter INPUT". */
  label: string;
  family: string;
  table: string;
  name: string;
  hook: string | null;
  policy: 'accept' | 'drop' | null;
  rules: RuleModel[];
}

export const YES: Eval = { result: 'yes', specific: false };
export const NO: Eval = { result: 'no', specific: false };
export const MAYBE: Eval = { result: 'maybe', specific: false };

export function and(a: Eval, b: Eval): Eval {
  if (a.result === 'no' || b.result === 'no') return NO;
  const result: Tri = a.result === 'maybe' || b.result === 'maybe' ? 'maybe' : 'yes';
  return { result, specific: a.specific || b.specific };
}

export function fromBoolean(value: boolean | null, specific: boolean): Eval {
  if (value === null) return MAYBE;
  return value ? { result: 'yes', specific } : NO;
}

/** true if any is true; null if none is but some are unknown. */
export function anyOf(values: Array<boolean | null>): boolean | null {
  if (values.some((value) => value === true)) return true;
  return values.some((value) => value === null) ? null : false;
}

// ---- the packets we care about, and where they pass ----

/** Which hooks of which families a model packet traverses. */
function traverses(packet: ModelPacket, family: string, hook: string | null): boolean {
  if (hook === null) return false;
  if (family === 'bridge') return true;
  if (family === 'netdev') return hook === 'ingress' || (packet.etherType === 'arp' && hook === 'egress');
  if (packet.etherType === 'arp') return family === 'arp' && (hook === 'input' || hook === 'output');
  const l3 = family === 'inet' || family === (packet.etherType === 'ip' ? 'ip' : 'ip6');
  if (!l3) return false;
  // Neighbour discovery goes both ways; the API's requests come in, maybe forwarded to a pod or VM.
  if (packet.l4 === 'icmpv6') return hook === 'prerouting' || hook === 'input' || hook === 'output';
  return hook === 'prerouting' || hook === 'input' || hook === 'forward';
}

export function modelPackets(target: FirewallTarget): ModelPacket[] {
  const packets: ModelPacket[] = target.ipv6
    ? [
        { label: 'neighbour discovery', etherType: 'ip6', l4: 'icmpv6', icmpv6Type: 'nd-neighbor-solicit' },
        { label: 'neighbour discovery', etherType: 'ip6', l4: 'icmpv6', icmpv6Type: 'nd-neighbor-advert' },
      ]
    : [
        { label: 'ARP', etherType: 'arp', l4: null, arpOperation: 'request' },
        { label: 'ARP', etherType: 'arp', l4: null, arpOperation: 'reply' },
      ];
  if (target.apiPort !== null) {
    const v6 = target.vip ? isIP(target.vip) === 6 : target.ipv6;
    packets.push({
      label: `tcp dport ${target.apiPort}`,
      etherType: v6 ? 'ip6' : 'ip',
      l4: 'tcp',
      dport: target.apiPort,
      ...(target.vip ? { daddr: target.vip } : {}),
    });
  }
  return packets;
}

// ---- walking chains ----

function chainKey(source: string, family: string, table: string, name: string): string {
  return `${source} ${family} ${table} ${name}`;
}

interface WalkResult {
  outcome: 'accept' | 'drop' | 'return' | 'none';
  /** The rule that dropped, when outcome is drop. */
  by?: RuleModel;
}

function walk(chains: Map<string, ChainModel>, chain: ChainModel, packet: ModelPacket, hook: string | null, findings: FirewallFinding[], depth: number): WalkResult {
  if (depth > 16) return { outcome: 'none' };
  for (const rule of chain.rules) {
    let condition: Eval = YES;
    for (const evaluate of rule.conditions) {
      condition = and(condition, evaluate(packet, hook));
      if (condition.result === 'no') break;
    }
    if (condition.result === 'no' || !rule.verdict) continue;
    let verdict: RuleVerdict | null = rule.verdict;
    if (verdict.kind === 'map') {
      const mapped = verdict.resolve(packet, hook);
      condition = and(condition, mapped.eval);
      verdict = mapped.verdict;
      if (!verdict || condition.result === 'no') continue;
    }
    const sure = condition.result === 'yes';
    switch (verdict.kind) {
      case 'accept':
        // A conditional accept that names the packet (e.g. from some sources only) shows intent: stop there.
        if (sure || condition.specific) return { outcome: 'accept' };
        break;
      case 'drop':
        if (sure) return { outcome: 'drop', by: rule };
        if (condition.specific) findings.push({ where: rule.where, rule: rule.text, drops: packet.label, certain: false });
        break;
      case 'return':
        if (sure) return { outcome: 'return' };
        break;
      case 'jump':
      case 'goto': {
        const next = chains.get(chainKey(chain.source, chain.family, chain.table, verdict.target));
        if (!next) break;
        const inner = walk(chains, next, packet, hook, findings, depth + 1);
        if (inner.outcome === 'drop') {
          if (sure) return inner;
          findings.push({ where: inner.by!.where, rule: inner.by!.text, drops: packet.label, certain: false });
        } else if (inner.outcome === 'accept' && sure) {
          return inner;
        } else if (verdict.kind === 'goto' && sure) {
          return { outcome: 'return' };
        }
        break;
      }
      default:
        break;
    }
  }
  return { outcome: 'none' };
}

/** Every finding for every model packet, one per rule. */
export function analyzeChains(chainList: ChainModel[], target: FirewallTarget): FirewallFinding[] {
  const chains = new Map(chainList.map((chain) => [chainKey(chain.source, chain.family, chain.table, chain.name), chain]));
  const findings: FirewallFinding[] = [];
  for (const packet of modelPackets(target)) {
    for (const chain of chainList) {
      if (!traverses(packet, chain.family, chain.hook)) continue;
      const result = walk(chains, chain, packet, chain.hook, findings, 0);
      if (result.outcome === 'drop') {
        findings.push({ where: result.by!.where, rule: result.by!.text, drops: packet.label, certain: true });
      } else if ((result.outcome === 'none' || result.outcome === 'return') && chain.policy === 'drop') {
        findings.push({ where: `${chain.label} policy drop`, rule: `policy drop, and no rule accepts ${packet.label}`, drops: packet.label, certain: true });
      }
    }
  }
  // One line per rule and packet kind; a certain finding wins over a possible one.
  const unique = new Map<string, FirewallFinding>();
  for (const finding of findings) {
    const key = `${finding.where}|${finding.drops}`;
    const existing = unique.get(key);
    if (!existing || (finding.certain && !existing.certain)) unique.set(key, finding);
  }
  return [...unique.values()];
}

// ---- values, as both rule sources name them ----

export const ETHER_TYPES: Record<string, number> = { ip: 0x0800, arp: 0x0806, ip6: 0x86dd, ipv6: 0x86dd };
export const L4_NUMBERS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, 'ipv6-icmp': 58, icmpv6: 58, sctp: 132 };
export const ICMPV6_TYPES: Record<string, number> = { 'nd-neighbor-solicit': 135, 'nd-neighbor-advert': 136 };
export const SERVICES: Record<string, number> = { http: 80, https: 443, ssh: 22, 'http-alt': 8080, 'https-alt': 8443 };
export const ARP_OPERATIONS: Record<string, number> = { request: 1, reply: 2 };

export function toNumber(value: unknown, names: Record<string, number>): number | null {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return null;
  const lower = value.toLowerCase();
  if (lower in names) return names[lower]!;
  if (/^0x[0-9a-f]+$/.test(lower)) return parseInt(lower, 16);
  if (/^[0-9]+$/.test(lower)) return Number(lower);
  return null;
}

/** Glob-style interface names as nft and iptables write them ("eth*", "eth+"). */
export function interfaceMatches(pattern: string, name: string): boolean {
  if (pattern.endsWith('*') || pattern.endsWith('+')) return name.startsWith(pattern.slice(0, -1));
  return pattern === name;
}

export interface FieldValue {
  value?: string | number;
  kind: 'number' | 'name' | 'ip';
  names: Record<string, number>;
  /** Whether matching this field singles out the packet we care about. */
  specific: boolean;
  /** An interface-name field: any of these names (patterns on the right may be globs). */
  interfaces?: string[];
  /** The packet has no such header, so the match is false (nft adds a protocol dependency). */
  absent?: boolean;
  /** A field we do not model (addresses, marks, conntrack): the match may go either way. */
  unknown?: boolean;
}

export const UNKNOWN_FIELD: FieldValue = { kind: 'number', names: {}, specific: false, unknown: true };
export const ABSENT_FIELD: FieldValue = { kind: 'number', names: {}, specific: false, absent: true };

/** Interfaces are known only on the hooks where the traffic meets the management interface itself. */
export function interfaceField(hook: string | null, direction: 'in' | 'out', interfaces: string[]): FieldValue {
  const known = direction === 'in' ? hook === 'input' || hook === 'prerouting' : hook === 'output' || hook === 'postrouting';
  if (!known) return direction === 'out' && (hook === 'input' || hook === 'prerouting') ? ABSENT_FIELD : UNKNOWN_FIELD;
  return { kind: 'name', names: {}, specific: true, interfaces };
}
