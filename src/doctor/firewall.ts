/**
 * Check 9: no firewall rule drops ARP (IPv6: neighbour discovery) or the API port: the trap
 * keepalived users hit with vrrp_strict. Reads `nft -j list ruleset` (firewall-nft.ts), and
 * iptables-save / ip6tables-save / arptables-save where a legacy (non-nftables) backend is in
 * use (firewall-iptables.ts); firewall-model.ts walks both the same way. Here: running the
 * tools and the verdict.
 */
import { execFile } from 'node:child_process';
import { isNftBackend, saveFormatChains } from './firewall-iptables';
import { analyzeChains, type ChainModel, type FirewallFinding, type FirewallTarget } from './firewall-model';
import { nftChains } from './firewall-nft';
import { check, skip, type CheckResult } from './report';

export { analyzeChains, modelPackets, type ChainModel, type FirewallFinding, type FirewallTarget, type ModelPacket, type RuleModel } from './firewall-model';
export { nftChains } from './firewall-nft';
export { isNftBackend, saveFormatChains } from './firewall-iptables';

export interface ToolOutput {
  stdout: string;
  /** The command is not installed. */
  missing: boolean;
  error: string | null;
}

export function runTool(command: string, args: string[], timeoutMs = 5000): Promise<ToolOutput> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        resolve({ stdout: '', missing: true, error: null });
        return;
      }
      resolve({ stdout: String(stdout), missing: false, error: error ? String(stderr).trim() || error.message : null });
    });
  });
}

/** One line for a finding, e.g. "arp vipdtest input handle 2 drops ARP (drop)". */
function describe(finding: FirewallFinding): string {
  return `${finding.where} ${finding.certain ? 'drops' : 'may drop'} ${finding.drops} (${finding.rule || 'drop'})`;
}

export function judgeFirewall(input: { findings: FirewallFinding[]; sources: string[]; target: FirewallTarget; unavailable?: string }): CheckResult {
  const name = 'firewall';
  if (input.sources.length === 0) return skip(name, input.unavailable ?? 'nft is not installed, nor iptables-save or arptables-save');
  const what = `${input.target.ipv6 ? 'neighbour discovery' : 'ARP'}${input.target.apiPort !== null ? ` or tcp dport ${input.target.apiPort}` : ''}`;
  const certain = input.findings.filter((finding) => finding.certain);
  const possible = input.findings.filter((finding) => !finding.certain);
  const hint =
    'remove the rule or accept the traffic before it: the VIP needs ARP (IPv6: neighbour discovery) to answer on the segment, ' +
    'and clients need the API port (keepalived\'s vrrp_strict adds such drops)';
  if (certain.length > 0) return check(name, 'fail', [...certain, ...possible].map(describe).join('; '), hint);
  if (possible.length > 0) return check(name, 'warn', possible.map(describe).join('; '), `${hint}; these rules depend on sources, state or limits, so check whether they apply`);
  const apiNote = input.target.apiPort === null ? ' (the API is not configured: its port was not checked)' : '';
  return check(name, 'ok', `no rule in ${input.sources.join(', ')} drops ${what}${apiNote}`);
}

/** Reads the rulesets of this node (its network namespace) and judges them. */
export async function checkFirewall(target: FirewallTarget): Promise<CheckResult> {
  const chains: ChainModel[] = [];
  const sources: string[] = [];
  const problems: string[] = [];
  const nft = await runTool('nft', ['-j', 'list', 'ruleset']);
  if (!nft.missing) {
    if (nft.error) problems.push(`nft: ${nft.error}`);
    else {
      try {
        chains.push(...nftChains(JSON.parse(nft.stdout || '{}') as unknown, target.interfaces));
        sources.push('nftables');
      } catch (error) {
        problems.push(`nft printed no JSON: ${(error as Error).message}`);
      }
    }
  }
  const legacy: Array<[string, 'ip' | 'ip6' | 'arp']> = [['iptables-save', 'ip'], ['ip6tables-save', 'ip6'], ['arptables-save', 'arp']];
  for (const [command, family] of legacy) {
    const output = await runTool(command, []);
    if (output.missing) continue;
    if (output.error) {
      problems.push(`${command}: ${output.error}`);
      continue;
    }
    // Rules the nft backend holds were read above already.
    if (isNftBackend(output.stdout) && sources.includes('nftables')) continue;
    chains.push(...saveFormatChains(output.stdout, family, target.interfaces));
    sources.push(command);
  }
  if (sources.length === 0) {
    return skip('firewall', problems.length > 0 ? `could not read the firewall: ${problems.join('; ')}` : 'nft is not installed (nor iptables-save or arptables-save): no ruleset to read');
  }
  return judgeFirewall({ findings: analyzeChains(chains, target), sources, target });
}
