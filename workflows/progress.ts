import { setHandler } from '@temporalio/workflow';
import { progressQuery, type WorkflowProgress } from '../contracts';

const state: WorkflowProgress = { phase: 'starting', since: '', counts: {} };
let source: (() => WorkflowProgress) | undefined;
let registered = false;

function register(): void {
  if (registered) return;
  setHandler(progressQuery, () => (source ? source() : state));
  registered = true;
}

/**
 * What this workflow is doing now, for the `progress` query every Steward workflow answers (the Temporal UI's Queries
 * tab, `temporal workflow query --name progress`): a phase in words, since when, and counts where it has some.
 */
export function setPhase(phase: string, counts?: Record<string, number>): void {
  register();
  state.phase = phase;
  state.since = new Date().toISOString();
  if (counts) state.counts = { ...counts };
}

/** For workflows that keep richer progress of their own: the `progress` query answers from it. */
export function progressFrom(read: () => WorkflowProgress): void {
  register();
  source = read;
}
