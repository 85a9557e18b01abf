import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { tryInitReboot } from '../../src/holding/dhcp-init-reboot';

const execFileAsync = promisify(execFile);
const DNSMASQ = '/usr/sbin/dnsmasq';
const PERL = '/usr/bin/perl';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip = !isRoot ? 'requires root' : !existsSync(DNSMASQ) ? `requires ${DNSMASQ}` : false;
const skipOffloadOff = skip || (!existsSync(PERL) && `requires ${PERL} (turns off veth checksum offload)`);

const INIT_REBOOT_MODULE = path.join(__dirname, '../../src/holding/dhcp-init-reboot.js');
const CLIENT_MAC = '02:00:00:aa:bb:cc';
const RESERVED_IP = '192.0.2.60';
const SERVER_IP = '192.0.2.1';

// Runs in namespace a: one tryInitReboot, reported as JSON with the open-fd count around it.
// A second packet socket on the same interface records how the kernel flagged the server's
// replies (UDP from port 67), to show which checksum case the run exercised.
const CHILD_SCRIPT = `
const fs = require('node:fs');
const { tryInitReboot } = require(process.argv[1]);
const { PacketSocket } = require(process.argv[2]);
const p = JSON.parse(process.argv[3]);
const fds = () => fs.readdirSync('/proc/self/fd').length;
const out = process.stdout; // created lazily, with an fd of its own: before counting
const tap = PacketSocket.open(p.interfaceName, 0x0800);
const fdsBefore = fds();
tryInitReboot({ interfaceName: p.interfaceName, mac: Buffer.from(p.mac, 'hex'), requestedIp: p.requestedIp, timeoutMs: p.timeoutMs })
  .then((result) => {
    const fdsAfter = fds();
    const serverReplies = [];
    for (let got = tap.receiveWithStatus(); got !== null; got = tap.receiveWithStatus()) {
      const f = got.frame;
      if (f.length >= 42 && f.readUInt16BE(12) === 0x0800 && f[23] === 17 && f.readUInt16BE(14 + (f[14] & 15) * 4) === 67) {
        serverReplies.push({ checksumPending: got.checksumPending });
      }
    }
    tap.close();
    out.write(JSON.stringify({ result, fdsBefore, fdsAfter, serverReplies }));
  })
  .catch((e) => { process.stderr.write(String((e && e.stack) || e)); process.exitCode = 1; });
`;

// veth transmit offload leaves dnsmasq's UDP checksum unfinished (CHECKSUM_PARTIAL: only the
// pseudo-header sum is in the field), and an AF_PACKET reader on the peer sees it that way;
// the kernel says so per frame (TP_STATUS_CSUMNOTREADY) and tryInitReboot then skips the UDP
// checksum. Turning the offload off is the other case: a finished checksum that is verified.
// There is no ethtool here, so: SIOCETHTOOL (0x8946) with ETHTOOL_STXCSUM (0x17), data 0.
// struct ifreq is the 16-byte name, then a pointer to struct ethtool_value { u32 cmd; u32 data; },
// 40 bytes in all.
const TX_CSUM_OFF_PERL = `
use Socket;
socket(my $s, PF_INET, SOCK_DGRAM, 0) or die "socket: $!\\n";
my $value = pack("LL", 0x17, 0);
my $ifr = pack("a16 P8 x16", $ARGV[0], $value);
ioctl($s, 0x8946, $ifr) or die "SIOCETHTOOL ETHTOOL_STXCSUM on $ARGV[0]: $!\\n";
`;

const RAW_SOCKET_MODULE = path.join(__dirname, '../../src/holding/raw-socket.js');

interface ChildReport {
  result: Awaited<ReturnType<typeof tryInitReboot>>;
  fdsBefore: number;
  fdsAfter: number;
  serverReplies: Array<{ checksumPending: boolean }>;
}

function run(command: string, ...args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Resolves when `check` returns true; rejects with `what` (and `detail()`) once the deadline passes. */
async function waitFor(what: string, check: () => boolean, deadlineMs: number, detail: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}${detail() ? `: ${detail()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The same checks with veth transmit checksum offload on (the lab's normal state) or off. */
function againstDnsmasq(offload: 'on' | 'off'): void {
  describe(`tryInitReboot against dnsmasq in a namespace pair, tx checksum offload ${offload}`, { skip: offload === 'on' ? skip : skipOffloadOff }, () => {
    const tag = `vipdtest-${randomBytes(4).toString('hex')}`;
    const nsA = `${tag}-a`; // client: veth va with the VIP's MAC
    const nsB = `${tag}-b`; // server: veth vb with 192.0.2.1/24 and dnsmasq
    const created: string[] = [];
    let tmp: string | null = null;
    let dnsmasq: ChildProcess | null = null;
    let dnsmasqLog = '';
    let dnsmasqExited = false;

    // Synchronous and idempotent, so it can also run from a process 'exit' handler.
    const cleanupSync = (): void => {
      if (dnsmasq !== null && !dnsmasqExited) dnsmasq.kill('SIGKILL');
      while (created.length > 0) {
        const ns = created.pop() as string;
        try {
          run('ip', 'netns', 'del', ns);
        } catch {
          // already gone
        }
      }
      if (tmp !== null) rmSync(tmp, { recursive: true, force: true });
      tmp = null;
    };
    process.on('exit', cleanupSync);

    async function stopDnsmasq(): Promise<void> {
      if (dnsmasq === null || dnsmasqExited) return;
      dnsmasq.kill('SIGTERM');
      try {
        await waitFor('dnsmasq to exit after SIGTERM', () => dnsmasqExited, 5_000);
      } catch {
        dnsmasq.kill('SIGKILL');
        await waitFor('dnsmasq to exit after SIGKILL', () => dnsmasqExited, 5_000);
      }
    }

    async function initRebootInA(requestedIp: string, timeoutMs: number): Promise<ChildReport> {
      const params = { interfaceName: 'va', mac: CLIENT_MAC.replace(/:/g, ''), requestedIp, timeoutMs };
      const { stdout } = await execFileAsync(
        'nsenter',
        [`--net=/run/netns/${nsA}`, '--', process.execPath, '-e', CHILD_SCRIPT, INIT_REBOOT_MODULE, RAW_SOCKET_MODULE, JSON.stringify(params)],
        { encoding: 'utf8', timeout: timeoutMs + 10_000 },
      );
      return JSON.parse(stdout) as ChildReport;
    }

    before(async () => {
      for (const ns of [nsA, nsB]) {
        run('ip', 'netns', 'add', ns);
        created.push(ns);
      }
      run('ip', '-n', nsA, 'link', 'add', 'va', 'address', CLIENT_MAC, 'type', 'veth', 'peer', 'name', 'vb', 'netns', nsB);
      run('ip', '-n', nsA, 'link', 'set', 'va', 'up');
      run('ip', '-n', nsB, 'addr', 'add', `${SERVER_IP}/24`, 'dev', 'vb');
      run('ip', '-n', nsB, 'link', 'set', 'vb', 'up');
      if (offload === 'off') run('nsenter', `--net=/run/netns/${nsB}`, '--', PERL, '-e', TX_CSUM_OFF_PERL, 'vb');

      tmp = mkdtempSync(path.join(os.tmpdir(), 'vipd-dhcp-'));
      const child = spawn(
        'nsenter',
        [
          `--net=/run/netns/${nsB}`,
          '--',
          DNSMASQ,
          '--no-daemon',
          '--conf-file=/dev/null', // ignore any /etc/dnsmasq.conf
          '--port=0',
          '--interface=vb',
          '--bind-interfaces',
          '--dhcp-range=192.0.2.50,192.0.2.99,255.255.255.0,2m',
          `--dhcp-host=${CLIENT_MAC},${RESERVED_IP}`,
          '--dhcp-authoritative',
          `--dhcp-leasefile=${path.join(tmp, 'leases')}`,
          `--pid-file=${path.join(tmp, 'dnsmasq.pid')}`,
          '--log-dhcp',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      dnsmasq = child;
      child.on('exit', () => {
        dnsmasqExited = true;
      });
      child.stdout?.on('data', (chunk: Buffer) => (dnsmasqLog += chunk.toString()));
      child.stderr?.on('data', (chunk: Buffer) => (dnsmasqLog += chunk.toString()));
      // dnsmasq logs the range only after its DHCP socket is bound.
      await waitFor('dnsmasq to serve DHCP', () => {
        if (dnsmasqExited) throw new Error(`dnsmasq exited: ${dnsmasqLog}`);
        return dnsmasqLog.includes('DHCP, IP range');
      }, 10_000, () => dnsmasqLog);
    });

    after(async () => {
      try {
        await stopDnsmasq();
      } finally {
        cleanupSync();
        process.removeListener('exit', cleanupSync);
      }
    });

    test('the reserved address is acknowledged', async () => {
      const report = await initRebootInA(RESERVED_IP, 5_000);
      assert.deepEqual(report.result, {
        outcome: 'ack',
        ip: RESERVED_IP,
        leaseSeconds: 120,
        serverId: SERVER_IP,
        subnetMask: '255.255.255.0',
      }, dnsmasqLog);
      assert.equal(report.fdsAfter, report.fdsBefore, 'the packet socket is closed');
      assert.ok(report.serverReplies.length > 0, 'the tap saw the reply');
      assert.ok(
        report.serverReplies.every((reply) => reply.checksumPending === (offload === 'on')),
        `checksumPending with offload ${offload}: ${JSON.stringify(report.serverReplies)}`,
      );
    });

    test('another address is refused by the authoritative server', async () => {
      const report = await initRebootInA('192.0.2.61', 5_000);
      const { result } = report;
      assert.ok(result.outcome === 'nak', `${JSON.stringify(result)}\n${dnsmasqLog}`);
      assert.equal(result.serverId, SERVER_IP);
      // dnsmasq explains itself in option 56; the words depend on its lease table
      // ("wrong address" once the reservation is leased, "static lease available" before).
      assert.ok(result.message === 'wrong address' || result.message === 'static lease available', String(result.message));
      assert.equal(report.fdsAfter, report.fdsBefore, 'the packet socket is closed');
    });

    test('with the server gone the answer is timeout', async () => {
      await stopDnsmasq();
      const started = Date.now();
      const report = await initRebootInA(RESERVED_IP, 1_500);
      const elapsed = Date.now() - started;
      assert.deepEqual(report.result, { outcome: 'timeout' });
      assert.ok(elapsed >= 1_500, `returned after ${elapsed} ms`);
      assert.equal(report.fdsAfter, report.fdsBefore, 'the packet socket is closed');
    });
  });
}

againstDnsmasq('on');
againstDnsmasq('off');

test('a missing interface rejects', { skip: !isRoot && 'requires root' }, async () => {
  await assert.rejects(
    tryInitReboot({ interfaceName: `vipdno${randomBytes(4).toString('hex')}`, mac: Buffer.alloc(6, 2), requestedIp: RESERVED_IP, timeoutMs: 100 }),
    /No such device/,
  );
});
