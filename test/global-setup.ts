import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import type { StackState } from '../schemas/config';
import { Stack } from '../lib/stack';

declare module 'vitest' {
  export interface ProvidedContext {
    stack: StackState;
  }
}
export type { ProvidedContext } from 'vitest';

/** One real stack (Temporal dev server, versitygw, EU and US workers) for the integration tests. */
export default async function setup(project: TestProject) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'steward-test-'));
  const stack = await Stack.start({
    dataDir,
    jurisdictions: ['eu', 'us'],
    onEvent: (event) => {
      if (event.kind === 'crash')
        process.stderr.write(`[stack] ${event.process} exited (${event.code ?? event.signal})\n`);
    },
  });
  project.provide('stack', stack.state);
  return async () => {
    await stack.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}
