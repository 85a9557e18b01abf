import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Lab, type LabNode, type LabOptions } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { waitFor } from '../../lab/shell';

export interface LabFixture {
  lab: Lab;
  observer: VipObserver;
}

export interface UseLabOptions extends LabOptions {
  /** The address the observer watches; default the lab's VIP (DHCP tests pass the leased one). */
  watch?: string;
  /** Called after etcd is up and before the agents start (a DHCP server, a capture...). */
  prepare?: (lab: Lab) => Promise<void>;
}

/**
 * For a describe block: builds a lab with etcd, the never-two-holders observer and every
 * node's agent before its tests, and always tears it all down after them.
 */
export function useLab(options: UseLabOptions, ready: (fixture: LabFixture) => void): void {
  const fixture = {} as LabFixture;
  before(async () => {
    fixture.lab = await Lab.create(options);
    await fixture.lab.startEtcd();
    await options.prepare?.(fixture.lab);
    fixture.observer = await VipObserver.start(options.watch ?? fixture.lab.vip, fixture.lab.nodes);
    for (const node of fixture.lab.nodes) fixture.lab.startAgent(node);
    ready(fixture);
  });
  after(async () => {
    try {
      stopObserver(fixture.observer);
    } finally {
      await fixture.lab?.destroy();
    }
  });
}

/** Waits until exactly one node is seen holding the VIP and returns it. */
export async function singleHolder(lab: Lab, observer: VipObserver, timeoutMs = 20_000): Promise<LabNode> {
  const name = await waitFor(
    'exactly one node to hold the VIP',
    () => {
      const holders = observer.currentHolders();
      return holders.length === 1 ? holders[0] : undefined;
    },
    timeoutMs,
    20,
  );
  return lab.node(name);
}

/** Waits until a node other than `former` holds the VIP and the client reaches it over ICMP and TCP. */
export async function takeoverFrom(lab: Lab, observer: VipObserver, former: LabNode, timeoutMs = 20_000): Promise<LabNode> {
  const next = await waitFor(
    `a node other than ${former.name} to hold the VIP`,
    () => {
      const holders = observer.currentHolders();
      return holders.length === 1 && holders[0] !== former.name ? holders[0] : undefined;
    },
    timeoutMs,
    20,
  );
  await lab.waitClientReaches(next, timeoutMs);
  return lab.node(next);
}

/** Stops the observer and fails if one of its probes had died before: the run was not watched. */
export function stopObserver(observer: VipObserver | undefined | null): void {
  observer?.stop();
  observer?.assertSighted();
}

export function assertNeverTwoHolders(observer: VipObserver): void {
  observer.assertSighted();
  assert.deepEqual(observer.overlaps(), [], 'two nodes held the VIP at the same moment');
}

/** How many lines of the node's agent log carry this message. */
export function countInLog(node: LabNode, message: string): number {
  try {
    return readFileSync(node.logPath, 'utf8').split('\n').filter((line) => line.includes(`"msg":"${message}"`)).length;
  } catch {
    return 0;
  }
}

/** Starts a node's agent and waits until it is running (has its lease). */
export async function startAgentAndWait(lab: Lab, node: LabNode, timeoutMs = 20_000): Promise<void> {
  const before = countInLog(node, 'lease granted');
  lab.startAgent(node);
  await waitFor(`${node.name}'s agent to start`, () => countInLog(node, 'lease granted') > before, timeoutMs, 50);
}

/** Appends the tail of every agent log to a failure, so CI output explains it. */
export async function explained<T>(lab: Lab, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    const tails = lab.nodes.map((node) => {
      let text = '';
      try {
        text = readFileSync(node.logPath, 'utf8').trim().split('\n').slice(-15).join('\n');
      } catch {
        text = '(no log)';
      }
      return `--- ${node.name} ---\n${text}`;
    });
    (error as Error).message += `\n${tails.join('\n')}`;
    throw error;
  }
}

/** The cluster CA as `vipd ca` prints it, once the first agent has made it: written to the lab dir for curl --cacert. */
export async function clusterCa(lab: Lab): Promise<{ path: string; fingerprint: string }> {
  const node = lab.nodes[0]!;
  const ca = await waitFor('the cluster CA', async () => {
    const result = await lab.vipd(node, ['ca', '--config', node.configPath]);
    return result.code === 0 ? result : undefined;
  }, 20_000);
  const path = join(lab.dir, 'ca.pem');
  writeFileSync(path, ca.stdout);
  return { path, fingerprint: /SHA-256 fingerprint: (\S+)/.exec(ca.stderr)?.[1] ?? '' };
}
