import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { expect, it } from 'vitest';
import { stewardDataConverter } from '../../lib/client/temporal';
import { readFileSync } from 'node:fs';
import { useClients } from '../harness';

const clients = useClients();

// Runs after every other file (see vitest.config.mts): each workflow history the suite produced on the shared stack
// must replay against the workflow code as it is now, or a change has made the workflows non-deterministic.
it('every workflow history the suite produced replays against the current workflow code', async () => {
  const { client, keys, state } = clients();
  const histories = client.workflow.list().intoHistories();
  const failures: string[] = [];
  const types = new Set<string>();
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(
    {
      workflowBundle: { codePath: path.join(state.dataDir, 'workflow-bundle.js') },
      // A worker's converter, as the workers that made the histories had.
      dataConverter: stewardDataConverter(keys, { worker: true }),
      replayName: 'suite',
    },
    histories,
  )) {
    replayed += 1;
    if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
  }
  for await (const execution of client.workflow.list()) types.add(execution.type);
  expect(failures).toEqual([]);
  expect(replayed).toBeGreaterThan(50);
  // The suite exercises every kind of workflow, so each kind's code is replayed.
  const exported = [
    ...readFileSync(path.join(__dirname, '..', '..', 'workflows', 'index.ts'), 'utf8').matchAll(/export \{ (\w+) \}/g),
  ].map((m) => m[1]);
  expect([...types].sort()).toEqual(exported.sort());
});
