import path from 'node:path';
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { describe, expect, it } from 'vitest';
import { FAILURE_CONVERTER_PATH, stewardDataConverter } from '../../lib/client/temporal';
import { useClients } from '../harness';
import {
  exportedWorkflowTypes,
  fixtureObjections,
  historyFixtures,
  historyFromObject,
  historyToObject,
  recordHistoryFixtures,
  type HistoryFixture,
} from '../histories';

/*
 * Replay: the workflow code as it is now must replay the histories the previous release recorded
 * (test/fixtures/histories, one completed and where there is one a failed run per workflow type), or a change has made
 * the workflows non-deterministic for runs already in flight. It also replays every history this suite produced.
 *
 * When a workflow changes on purpose (behind a `patched()` marker, or as a new workflow type), record the fixtures
 * again from the suite's stack and commit them:
 *
 *   npm run fixtures:histories                       every workflow type
 *   npm run fixtures:histories -- retentionSweepWorkflow eraseUnitsWorkflow   only these
 *
 * which runs the integration files that start every workflow type, then this file with STEWARD_RECORD_HISTORIES set
 * (`all`, or the types, comma-separated): it writes `<type>.json` and `<type>.failed.json` before replaying them.
 */

const clients = useClients();
const RECORD = process.env.STEWARD_RECORD_HISTORIES?.trim();

/** A data converter without the payload codec: the fixtures' payloads are decoded already. */
const fixtureConverter = { failureConverterPath: FAILURE_CONVERTER_PATH };

function workflowBundle() {
  return { codePath: path.join(clients().state.dataDir, 'workflow-bundle.js') };
}

/** Replays fixtures against the current workflow bundle, each as the run it was; the errors by fixture file. */
async function replay(
  fixtures: Pick<HistoryFixture, 'file' | 'workflowId' | 'history'>[],
): Promise<Map<string, Error>> {
  const files = new Map(fixtures.map((f) => [f.workflowId, f.file]));
  const errors = new Map<string, Error>();
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: workflowBundle(), dataConverter: fixtureConverter, replayName: 'fixtures' },
    fixtures.map((f): HistoryAndWorkflowId => ({ workflowId: f.workflowId, history: f.history })),
  )) {
    if (result.error) errors.set(files.get(result.workflowId) ?? result.workflowId, result.error);
  }
  return errors;
}

describe.runIf(RECORD)('recording history fixtures', () => {
  it("records a completed and a failed run of each workflow type asked for, from this suite's stack", async () => {
    const { client, keys } = clients();
    const exported = exportedWorkflowTypes();
    const wanted = RECORD === 'all' ? exported : RECORD!.split(',').map((t) => t.trim());
    expect(wanted.filter((t) => !exported.includes(t))).toEqual([]);

    const notRecorded = await recordHistoryFixtures(client, keys, wanted);
    expect(notRecorded).toEqual([]);
  });
});

describe('replaying the previous release', () => {
  it('every workflow type workflows/index.ts exports has a recorded history', () => {
    const recorded = new Set(historyFixtures().map((f) => f.workflowType));
    expect(exportedWorkflowTypes().filter((type) => !recorded.has(type))).toEqual([]);
    expect([...recorded].filter((type) => !exportedWorkflowTypes().includes(type))).toEqual([]);
    // Replay results name their run by workflow id, so each fixture is a run of its own workflow.
    const ids = historyFixtures().map((f) => f.workflowId);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  it('recorded histories carry no subject identifiers, key material or encrypted payloads', async () => {
    const objections: string[] = [];
    for (const fixture of historyFixtures()) {
      for (const objection of await fixtureObjections(historyToObject(fixture.history), fixture.workflowType)) {
        objections.push(`${fixture.file}: ${objection}`);
      }
    }
    expect(objections).toEqual([]);
  });

  it('every recorded history replays against the current workflow code', async () => {
    const fixtures = historyFixtures();
    const errors = await replay(fixtures);
    expect([...errors].map(([file, error]) => `${file}: ${error.message}`)).toEqual([]);
    expect(fixtures.length).toBeGreaterThanOrEqual(exportedWorkflowTypes().length);
  });

  it('a history whose workflow now schedules another activity fails as non-deterministic', async () => {
    const fixture = historyFixtures().find((f) => f.file === 'rotateStudyKeyWorkflow.json');
    expect(fixture).toBeDefined();
    // The same run as if its code now called a different activity at the first activity it scheduled.
    const altered = historyFromObject(historyToObject(fixture!.history));
    const scheduled = altered.events!.find((e) => e.activityTaskScheduledEventAttributes)!;
    const original = scheduled.activityTaskScheduledEventAttributes!.activityType!.name!;
    scheduled.activityTaskScheduledEventAttributes!.activityType = { name: 'renamedActivity' };
    const errors = await replay([{ ...fixture!, file: 'altered', history: altered }]);
    const error = errors.get('altered');
    expect(error).toBeInstanceOf(DeterminismViolationError);
    expect(error!.message).toContain(`Activity type of scheduled event 'renamedActivity' does not match`);
    expect(error!.message).toContain(original);
  });
});

describe('replaying this suite', () => {
  // Runs after every other file (see vitest.config.mts): each history the suite produced on the shared stack.
  it('every workflow history the suite produced replays against the current workflow code', async (context) => {
    const { client, keys, state } = clients();
    if ((await client.workflow.count()).count === 0) context.skip('no other test file ran in this run');
    const failures: string[] = [];
    let replayed = 0;
    for await (const result of Worker.runReplayHistories(
      {
        workflowBundle: { codePath: path.join(state.dataDir, 'workflow-bundle.js') },
        // A worker's converter, as the workers that made the histories had.
        dataConverter: stewardDataConverter(keys, { worker: true }),
        replayName: 'suite',
      },
      client.workflow.list().intoHistories(),
    )) {
      replayed += 1;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(replayed).toBeGreaterThan(0);
  });
});
