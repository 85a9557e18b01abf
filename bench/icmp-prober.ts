/**
 * Runs in the client's namespace: pings the VIP every few milliseconds through the kernel
 * (so the client's own neighbour cache decides where each echo goes) and prints one JSON
 * line per reply: {"seq":N,"atMs":T}, T in monotonic milliseconds (process.hrtime), which
 * all namespaces share.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** realtime − monotonic in ms, read at a millisecond edge of the realtime clock. */
function clockOffsetMs(): number {
  const start = Date.now();
  let now = start;
  // At most one millisecond of spinning, once a second.
  while (now === start) now = Date.now();
  return now - Number(process.hrtime.bigint()) / 1e6;
}

function main(): void {
  const [vip, intervalText] = process.argv.slice(2);
  if (!vip) throw new Error('usage: icmp-prober VIP [intervalMs]');
  const intervalSeconds = Number(intervalText ?? '5') / 1000;
  let offset = clockOffsetMs();
  const refresh = setInterval(() => {
    offset = clockOffsetMs();
  }, 1000);
  // ping -D stamps each reply with gettimeofday() when it is received; reading the pipe
  // here would add our own scheduling delay instead.
  const ping = spawn('stdbuf', ['-oL', 'ping', '-D', '-n', '-i', String(intervalSeconds), '-W', '1', vip], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const stop = (): void => {
    clearInterval(refresh);
    ping.kill('SIGKILL');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  ping.once('exit', (code) => {
    process.stderr.write(`icmp-prober: ping exited (${code})\n`);
    process.exit(1);
  });
  let ready = false;
  createInterface({ input: ping.stdout! }).on('line', (line) => {
    if (!ready) {
      ready = true;
      process.stdout.write('{"ready":true}\n');
    }
    const match = /^\[(\d+)\.(\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)/.exec(line);
    if (!match) return;
    const realMs = Number(match[1]) * 1000 + Number(`0.${match[2]}`) * 1000;
    const atMs = Math.round((realMs - offset) * 1000) / 1000;
    process.stdout.write(`{"seq":${match[3]},"atMs":${atMs}}\n`);
  });
}

main();
