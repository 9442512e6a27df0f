import { describe, expect, it } from 'vitest';
import { inLanes } from '../../lib/runtime/lanes';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('inLanes', () => {
  it('runs every item, starting them in order, never more than the lanes at once', async () => {
    const started: number[] = [];
    let running = 0;
    let most = 0;
    await inLanes([5, 4, 3, 2, 1], 2, async (item) => {
      started.push(item);
      most = Math.max(most, ++running);
      for (let i = 0; i < item; i++) await tick();
      running--;
    });
    expect(started).toEqual([5, 4, 3, 2, 1]);
    expect(most).toBe(2);
  });

  it('starts nothing after a failure and throws it only once every lane has stopped', async () => {
    const finished: string[] = [];
    const run = inLanes(['slow', 'fails', 'later'], 2, async (item) => {
      if (item === 'fails') throw new Error('boom');
      for (let i = 0; i < 5; i++) await tick();
      finished.push(item);
    });
    await expect(run).rejects.toThrow('boom');
    expect(finished).toEqual(['slow']);
  });
});
