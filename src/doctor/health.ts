/** `vipd doctor`: this node's health checks (issue 13), each run once, without fall or rise. */
import { describeProbe, type HealthConfig } from '../config/health';
import { HealthMonitor } from '../health/monitor';
import { check, skip, type CheckResult } from './report';

export async function checkHealth(node: string, health: HealthConfig): Promise<CheckResult[]> {
  if (health.checks.length === 0) return [skip('health', 'no health checks configured: this node is always eligible')];
  let monitor: HealthMonitor;
  try {
    monitor = new HealthMonitor({ node, checks: health.checks });
  } catch (error) {
    return [check('health', 'fail', (error as Error).message, 'fix the check in the config; `vipd run` refuses to start with it (exit 2)')];
  }
  const verdicts = await monitor.runOnce();
  return verdicts.map(({ check: config, result }) => {
    const what = describeProbe(config.probe);
    const took = `${Math.round(result.durationMs)}ms`;
    if (result.ok) return check(`health:${config.name}`, 'ok', `${what}: ${result.detail} in ${took}`);
    const output = result.output.trim() ? `; output: ${result.output.trim().slice(0, 120)}` : '';
    return check(
      `health:${config.name}`,
      'fail',
      `${what}: ${result.detail}${output}`,
      `while it fails (${config.fall} probes in a row, every ${config.intervalMs}ms) this node is not eligible to hold the VIP, and a holder hands it to a healthy node`,
    );
  });
}
