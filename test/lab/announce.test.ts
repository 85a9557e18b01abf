import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Lab, type AnnouncementCapture } from '../../lab/lab';
import { VipObserver } from '../../lab/observer';
import { waitFor } from '../../lab/shell';
import { assertNeverTwoHolders, explained, singleHolder , useLab } from './helpers';

const BURST = 6;

for (const ipv6 of [false, true]) {
  describe(`announcements reach the client (${ipv6 ? 'IPv6 neighbour advertisements' : 'IPv4 gratuitous ARP'})`, { timeout: 120_000 }, () => {
    let lab: Lab;
    let observer: VipObserver;
    let capture: AnnouncementCapture;

    useLab(
      {
        nodes: 2,
        ipv6,
        // A short refresh interval so the test sees refreshes without waiting 10 s.
        config: { announce: { burstCount: BURST, refreshInterval: '300ms' } },
        prepare: async (lab) => {
          capture = await lab.captureAnnouncements();
        },
      },
      (fixture) => ({ lab, observer } = fixture),
    );

    /** Waits for a full burst from `mac` after index `from` and checks its shape. */
    async function burstFrom(mac: string, from: number): Promise<void> {
      const frames = await waitFor(
        `a burst of ${BURST} announcements from ${mac}`,
        () => {
          const fromHolder = capture.seen.slice(from).filter((frame) => frame.sourceMac === mac);
          return fromHolder.length >= BURST ? fromHolder.slice(0, BURST) : undefined;
        },
        20_000,
      );
      if (ipv6) {
        assert.ok(frames.every((frame) => frame.kind === 'na' && frame.override === true), 'unsolicited NAs with the override flag');
      } else {
        const kinds = frames.map((frame) => frame.kind);
        const alternating = kinds.map((_, i) => (i % 2 === 0 ? 'arp-request' : 'arp-reply'));
        assert.deepEqual(kinds, alternating, 'requests and replies alternate');
      }
    }

    test('every acquisition is announced in a burst from the holder, and refreshed', () =>
      explained(lab, async () => {
        const holder = await singleHolder(lab, observer);
        const holderMac = await lab.mac(holder);
        await burstFrom(holderMac, 0);
        const afterBurst = capture.seen.length;
        await waitFor('a periodic refresh', () => capture.seen.slice(afterBurst).some((frame) => frame.sourceMac === holderMac), 10_000);
      }));

    test("on a move, the new holder's burst switches the client's neighbour entry", () =>
      explained(lab, async () => {
        const holder = await singleHolder(lab, observer);
        await lab.waitClientReaches(holder.name);
        assert.equal(await lab.clientNeighbourMac(), await lab.mac(holder));
        const mark = capture.seen.length;
        assert.equal(await lab.stopAgent(holder, 'SIGTERM'), 0);
        // No client traffic until the entry has switched: only the announcements can switch it.
        const nextName = await waitFor(
          'another holder',
          () => observer.currentHolders().find((name) => name !== holder.name),
          20_000,
          20,
        );
        const next = lab.node(nextName);
        const nextMac = await lab.mac(next);
        await burstFrom(nextMac, mark);
        await waitFor("the client's neighbour entry to name the new holder", async () => (await lab.clientNeighbourMac()) === nextMac, 5_000);
        await lab.waitClientReaches(next.name);
        assertNeverTwoHolders(observer);
      }));
  });
}
