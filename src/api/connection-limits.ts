import type { Server } from 'node:net';
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  /** Open connections from all clients; more are closed at accept. Default 512. */
  maxConnections: number;
  /** Open connections from one address; more are closed at accept. Default 32. */
  maxConnectionsPerIp: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { maxConnections: 512, maxConnectionsPerIp: 32 };

/**
 * Caps the server's connections overall (the kernel accept is followed by an immediate close
 * past net.Server.maxConnections) and per client address, counted at TCP accept, before TLS:
 * a client cannot hold more than its share however slowly it handshakes.
 */
export function limitConnections(server: Server, limits: ConnectionLimits): { perIp: () => ReadonlyMap<string, number> } {
  server.maxConnections = limits.maxConnections;
  const perIp = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? 'unknown';
    const count = (perIp.get(ip) ?? 0) + 1;
    if (count > limits.maxConnectionsPerIp) {
      socket.destroy();
      return;
    }
    perIp.set(ip, count);
    socket.once('close', () => {
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left > 0) perIp.set(ip, left);
      else perIp.delete(ip);
    });
  });
  return { perIp: () => perIp };
}
