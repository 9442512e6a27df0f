import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import type { StackState } from '../schemas/config';
import { Stack } from '../lib/stack/stack';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackState;
  }
}
export type { ProvidedContext } from 'vitest';

/** One real stack (Temporal dev server, versitygw, EU and US workers) for the integration tests. */
export default async function setup(project: TestProject) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'steward-test-'));
  const killed: string[] = [];
  const stack = await Stack.start({
    dataDir,
    jurisdictions: ['eu', 'us'],
    onEvent: (event) => {
      if (event.kind === 'crash')
        process.stderr.write(`[stack] ${event.process} exited (${event.code ?? event.signal})\n`);
      if (event.kind === 'killed') killed.push(event.process);
    },
  });
  project.provide('stack', stack.state);
  return async () => {
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
    // Every process of the stack stops on SIGTERM by itself; one that has to be killed is a defect.
    if (killed.length > 0) throw new Error(`stack processes had to be killed on stop: ${killed.join(', ')}`);
  };
}
