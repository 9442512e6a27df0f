import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { WorkflowNotFoundError, type Client, type HistoryAndWorkflowId } from '@temporalio/client';
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
 * The histories of every running workflow a visibility query selects, as stored (payloads encrypted; the replaying
 * worker's codec decodes them), fetched one at a time as the replay takes them, so that however many run, all are
 * replayed and few are held at once. A run deleted between the listing and the fetch is passed over.
 */
export async function* runningHistories(client: Client, filter: string): AsyncGenerator<NamedHistory> {
  for await (const execution of client.workflow.list({ query: `ExecutionStatus = "Running" AND ${filter}` })) {
    let history;
    try {
      history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    } catch (error) {
      if (error instanceof WorkflowNotFoundError) continue;
      throw error;
    }
    yield { name: `running ${execution.workflowId}`, workflowId: execution.workflowId, history };
  }
}

/** The workflow code to replay against: a bundle's file, or the workflows' entry file (bundled for the replay). */
export type ReplayCode = { workflowBundle: { codePath: string } } | { workflowsPath: string };

/**
 * Replays histories against workflow code; a history fails when replaying it raises an error (non-determinism above
 * all). `dataConverter` must decode the histories' payloads.
 */
export async function replayHistories(
  code: ReplayCode,
  histories: Iterable<NamedHistory> | AsyncIterable<NamedHistory>,
  dataConverter: DataConverter,
  replayName = 'replay-gate',
): Promise<ReplayReport> {
  quietRuntime();
  const failures: string[] = [];
  // Results come back in the order the histories go in.
  const names: string[] = [];
  async function* named() {
    for await (const h of histories) {
      names.push(h.name);
      yield { workflowId: h.workflowId, history: h.history };
    }
  }
  let index = 0;
  for await (const result of Worker.runReplayHistories({ ...code, dataConverter, replayName }, named())) {
    const name = names[index++] ?? result.workflowId;
    if (result.error) failures.push(`${name}: ${replayProblem(result.error)}`);
  }
  return { replayed: index, failures };
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
