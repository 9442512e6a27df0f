import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ephemeralStart, freePort } from '../../lib/stack/ports';

describe('freePort', () => {
  it('hands out distinct ports below the ephemeral range, each one a service can listen on', async () => {
    const ports: number[] = [];
    for (let i = 0; i < 30; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(20_000);
      expect(port).toBeLessThan(ephemeralStart());
    }
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(ports[0], '127.0.0.1', resolve);
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
