/**
 * Runs inside one node's namespace and reports when the VIP appears on or disappears from
 * any of its interfaces, sampling every few milliseconds. Lines on stdout:
 *   P <t>          first sample (monotonic ns) in which the VIP was present
 *   A <tLast> <t>  the VIP is gone: tLast was the last sample with it, t the first without
 */
import { Netlink } from '../src/holding/netlink';

async function main(): Promise<void> {
  const [vip, intervalText] = process.argv.slice(2);
  if (!vip) throw new Error('usage: observer-probe VIP [intervalMs]');
  const intervalMs = Number(intervalText ?? '10');
  const netlink = Netlink.open();
  let present = false;
  let lastPresentAt = 0n;
  process.stdout.write('R\n');
  for (;;) {
    const addresses = await netlink.addresses();
    const now = process.hrtime.bigint();
    const seen = addresses.some((entry) => entry.address === vip);
    if (seen && !present) process.stdout.write(`P ${now}\n`);
    if (!seen && present) process.stdout.write(`A ${lastPresentAt} ${now}\n`);
    if (seen) lastPresentAt = now;
    present = seen;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

main().catch((error: Error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
