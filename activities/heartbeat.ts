import { Context } from '@temporalio/activity';

function current(): Context | undefined {
  try {
    return Context.current();
  } catch {
    // Outside an activity (a direct call, a unit test): nothing to report to.
    return undefined;
  }
}

/** The details of the last heartbeat of this activity's previous attempt, if any. */
export function previousHeartbeat(): unknown {
  return current()?.info.heartbeatDetails;
}

/**
 * Runs `work` while heartbeating `details()` at once and every `everyMs`, so a worker that dies during it is noticed
 * within the activity's heartbeat timeout, not its start-to-close timeout. Outside an activity it only runs `work`.
 */
export async function heartbeating<T>(details: () => unknown, work: () => Promise<T>, everyMs = 2_000): Promise<T> {
  const context = current();
  if (!context) return work();
  const beat = () => context.heartbeat(details());
  beat();
  const timer = setInterval(beat, everyMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    beat();
  }
}
