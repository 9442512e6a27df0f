/**
 * Runs `work` on each item, at most `lanes` at a time, starting items in the order given (callers put the largest
 * first, so the small ones run beside it). After a failure no further item starts, and every lane has stopped before
 * the first failure is thrown, so nothing is still running when the caller cleans up.
 */
export async function inLanes<T>(
  items: readonly T[],
  lanes: number,
  work: (item: T, lane: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const settled = await Promise.allSettled(
    Array.from({ length: Math.max(1, Math.min(lanes, items.length)) }, async (_, lane) => {
      while (next < items.length) {
        const item = items[next++]!;
        try {
          await work(item, lane);
        } catch (error) {
          next = items.length;
          throw error;
        }
      }
    }),
  );
  for (const lane of settled) if (lane.status === 'rejected') throw lane.reason;
}
