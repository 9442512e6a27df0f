import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** Where listening ports are drawn from when the kernel's ephemeral range cannot be read. */
const LOWEST = 20_000;
const FALLBACK_EPHEMERAL_START = 32_768;

/**
 * The first port the kernel hands out to outgoing connections (Linux's `ip_local_port_range`). A port below it that is
 * free now stays free until some process listens on it; a port from the ephemeral range may meanwhile become the local
 * end of any outgoing connection, and the service started on it then fails with "address already in use".
 */
export function ephemeralStart(): number {
  try {
    const start = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > LOWEST + 1000 ? start : FALLBACK_EPHEMERAL_START;
  } catch {
    return FALLBACK_EPHEMERAL_START;
  }
}

function listenable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Ports this process has handed out already: a port is checked and released, so a later call could draw it again. */
const handedOut = new Set<number>();

/**
 * A TCP port on 127.0.0.1 that is free, drawn at random below the ephemeral range so that no outgoing connection takes
 * it before the service that is given it starts listening. Never the same port twice in one process.
 */
export async function freePort(): Promise<number> {
  const high = ephemeralStart() - 1;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = randomInt(LOWEST, high + 1);
    if (handedOut.has(port) || !(await listenable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free TCP port on 127.0.0.1 between ${LOWEST} and ${high}`);
}
