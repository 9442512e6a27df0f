import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import type { StackState } from '../schemas/config';
import { Client, Connection } from '@temporalio/client';
import { driftScheduleId } from '../contracts';
import { Stack } from '../lib/stack/stack';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackState;
  }
}
export type { ProvidedContext } from 'vitest';

/** History events after which the suite's Temporal suggests continue-as-new. */
const SUGGEST_CONTINUE_AS_NEW = 100;

const SUITE_JURISDICTIONS = ['eu', 'us'] as const;

/** One real stack (Temporal dev server, versitygw, EU and US workers) for the integration tests. */
export default async function setup(project: TestProject) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'steward-test-'));
  const killed: string[] = [];
  const stack = await Stack.start({
    dataDir,
    jurisdictions: [...SUITE_JURISDICTIONS],
    // Temporal suggests continue-as-new after this many history events instead of thousands, so the suite's sweeps,
    // audit trails and catalog writers cross runs the way long-lived ones do in production.
    temporalDynamicConfig: { 'limit.historyCount.suggestContinueAsNew': SUGGEST_CONTINUE_AS_NEW },
    onEvent: (event) => {
      if (event.kind === 'crash')
        process.stderr.write(`[stack] ${event.process} exited (${event.code ?? event.signal})\n`);
      if (event.kind === 'killed') killed.push(event.process);
    },
  });
  // Drift checks run when a test asks for one: an hourly check landing while a test has changed a bucket or a
  // jurisdiction file on purpose would open a deviation that holds up the preprocessing of later files.
  const connection = await Connection.connect({ address: stack.state!.temporal.address });
  try {
    const client = new Client({ connection, namespace: stack.state!.temporal.namespace });
    for (const j of SUITE_JURISDICTIONS)
      await client.schedule.getHandle(driftScheduleId(j)).pause('paused for the test suite');
  } finally {
    await connection.close();
  }
  project.provide('stack', stack.state);
  return async () => {
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
    // Every process of the stack stops on SIGTERM by itself; one that has to be killed is a defect.
    if (killed.length > 0) throw new Error(`stack processes had to be killed on stop: ${killed.join(', ')}`);
  };
}
