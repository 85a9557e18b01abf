/**
 * Runs in the client's namespace: asks http://VIP:PORT/ every few milliseconds, each request
 * on a new connection (no keep-alive, so every request follows the client's neighbour cache
 * as it is now), and prints one JSON line per answer: {"node":NAME,"atMs":T}, T in monotonic
 * milliseconds (process.hrtime), which all namespaces share. The service answers with its
 * node's name.
 */
import http from 'node:http';

function main(): void {
  const [vip, portText, intervalText] = process.argv.slice(2);
  if (!vip || !portText) throw new Error('usage: http-prober VIP PORT [intervalMs]');
  const intervalMs = Number(intervalText ?? '10');
  const ask = (): void => {
    const request = http.get({ host: vip, port: Number(portText), path: '/', agent: false, timeout: 500 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        if (response.statusCode !== 200) return;
        const atMs = Number(process.hrtime.bigint()) / 1e6;
        process.stdout.write(`${JSON.stringify({ node: body.trim(), atMs })}\n`);
      });
    });
    // A refused or timed-out request is simply no answer.
    request.on('timeout', () => request.destroy());
    request.on('error', () => undefined);
  };
  const timer = setInterval(ask, intervalMs);
  const stop = (): void => {
    clearInterval(timer);
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write('{"ready":true}\n');
}

main();
