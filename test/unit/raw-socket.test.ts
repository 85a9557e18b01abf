import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { ETHERTYPE_ARP, PacketSocket } from '../../src/holding/raw-socket';
import { gratuitousArpRequest } from '../../src/holding/codecs/arp';
import { parseMac } from '../../src/holding/codecs/mac';

const execFileAsync = promisify(execFile);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const RAW_SOCKET_MODULE = path.join(__dirname, '../../src/holding/raw-socket.js');

// Runs inside the namespace: listen on vb, send on va, report what arrived (or a timeout).
// The ETH_P_ALL tap on va would get a PACKET_OUTGOING copy of the send; the addon must drop it.
const CHILD_SCRIPT = `
const { PacketSocket, interfaceMac, ETHERTYPE_ARP } = require(process.argv[1]);
const frame = Buffer.from(process.argv[2], 'hex');
const listener = PacketSocket.open('vb', ETHERTYPE_ARP);
const tap = PacketSocket.open('va', 0x0003);
const sender = PacketSocket.open('va', ETHERTYPE_ARP);
const report = { mac: interfaceMac('va').toString('hex'), received: null, tapSawOwn: false };
sender.send(frame);
const deadline = Date.now() + 5000;
(function poll() {
  const got = listener.receive();
  if (got !== null && got.equals(frame)) {
    report.received = got.toString('hex');
    for (let own = tap.receive(); own !== null; own = tap.receive()) {
      if (own.equals(frame)) report.tapSawOwn = true;
    }
  } else if (Date.now() < deadline) {
    setTimeout(poll, got === null ? 5 : 0);
    return;
  }
  for (const s of [listener, tap, sender]) s.close();
  sender.close(); // a second close must be a no-op
  process.stdout.write(JSON.stringify(report));
})();
`;

interface ChildReport {
  mac: string;
  received: string | null;
  tapSawOwn: boolean;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
}

test('PacketSocket sends a gratuitous ARP across a veth pair', { skip: !isRoot && 'requires root' }, async () => {
  const ns = `vipdtest-${randomBytes(4).toString('hex')}`;
  ip('netns', 'add', ns);
  try {
    ip('-n', ns, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb');
    ip('-n', ns, 'link', 'set', 'va', 'up');
    ip('-n', ns, 'link', 'set', 'vb', 'up');
    const links = JSON.parse(ip('-j', '-n', ns, 'link', 'show', 'va')) as Array<{ address: string }>;
    const mac = parseMac(links[0].address);
    const frame = gratuitousArpRequest(mac, '192.0.2.10');

    const { stdout } = await execFileAsync(
      'ip',
      ['netns', 'exec', ns, process.execPath, '-e', CHILD_SCRIPT, RAW_SOCKET_MODULE, frame.toString('hex')],
      { encoding: 'utf8', timeout: 15_000 },
    );
    const report = JSON.parse(stdout) as ChildReport;
    assert.equal(report.mac, mac.toString('hex'));
    assert.equal(report.received, frame.toString('hex'));
    assert.equal(report.tapSawOwn, false);
  } finally {
    ip('netns', 'del', ns);
  }
});

test('PacketSocket.open names the missing interface', { skip: !isRoot && 'requires root' }, () => {
  const name = `vipdno${randomBytes(4).toString('hex')}`;
  assert.throws(
    () => PacketSocket.open(name, ETHERTYPE_ARP),
    (e: unknown) => e instanceof Error && e.message.includes(name) && /No such device/.test(e.message),
  );
});
