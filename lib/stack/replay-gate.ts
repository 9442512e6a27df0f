import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Client, HistoryAndWorkflowId } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';

/** A history to replay and what to call it in a report: a recorded file's name, or a running workflow's id. */
export interface NamedHistory extends HistoryAndWorkflowId {
  name: string;
  history: temporal.api.history.v1.IHistory;
}

export interface ReplayReport {
  replayed: number;
  /** `name: first line of the error`, one per history that did not replay. */
  failures: string[];
}

/** Recorded histories in a folder (`<workflowType>[.failed].json`, each `{ workflowId, history }` with decoded payloads). */
export function recordedHistories(dir: string): NamedHistory[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const { workflowId, history } = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as {
        workflowId: string;
        history: Record<string, unknown>;
      };
      return { name: file, workflowId, history: temporal.api.history.v1.History.fromObject(history) };
    });
}

/**
 * The histories of the running workflows a visibility query selects, as stored (payloads encrypted; the replaying
 * worker's codec decodes them).
 */
export async function runningHistories(client: Client, filter: string, limit = 500): Promise<NamedHistory[]> {
  const histories: NamedHistory[] = [];
  for await (const execution of client.workflow.list({ query: `ExecutionStatus = "Running" AND ${filter}` })) {
    if (histories.length >= limit) break;
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    histories.push({ name: `running ${execution.workflowId}`, workflowId: execution.workflowId, history });
  }
  return histories;
}

/** The workflow code to replay against: a bundle's file, or the workflows' entry file (bundled for the replay). */
export type ReplayCode = { workflowBundle: { codePath: string } } | { workflowsPath: string };

/**
 * Replays histories against workflow code; a history fails when replaying it raises an error (non-determinism above
 * all). `dataConverter` must decode the histories' payloads.
 */
export async function replayHistories(
  code: ReplayCode,
  histories: readonly NamedHistory[],
  dataConverter: DataConverter,
  replayName = 'replay-gate',
): Promise<ReplayReport> {
  quietRuntime();
  const failures: string[] = [];
  // Results come back in the order the histories go in.
  let index = 0;
  for await (const result of Worker.runReplayHistories({ ...code, dataConverter, replayName }, [...histories])) {
    const name = histories[index++]?.name ?? result.workflowId;
    if (result.error) failures.push(`${name}: ${replayProblem(result.error)}`);
  }
  return { replayed: histories.length, failures };
}

/** The gist of a replay error: the SDK's coded message (`[TMPRL1100] Nondeterminism error: …`) where there is one. */
function replayProblem(error: Error): string {
  const coded = /\[TMPRL\d+\][^"]*/.exec(error.message);
  return (coded ? coded[0] : error.message.split('\n')[0]!).trim().slice(0, 300);
}

let runtimeChosen = false;

/** A replaying process logs the SDK's warnings only: a replay's worker start and stop are no news. */
function quietRuntime(): void {
  if (runtimeChosen) return;
  runtimeChosen = true;
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // A runtime already runs in this process (it made a worker or a native connection): its logger stays.
  }
}
