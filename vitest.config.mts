import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/** Orders files as vitest would, except that the replay test runs last: it replays what every other file produced. */
class ReplayLast extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const last = (f: TestSpecification) => f.moduleId.endsWith('replay.test.ts');
    return [...sorted.filter((f) => !last(f)), ...sorted.filter(last)];
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The production profile's tests start clusters of their own: `npm run test:production`.
    exclude: ['test/production/**', 'node_modules/**'],
    globalSetup: ['test/global-setup.ts'],
    // Two cores: integration files share one real stack and run one after another.
    fileParallelism: false,
    sequence: { sequencer: ReplayLast },
    testTimeout: 180_000,
    hookTimeout: 600_000,
    reporters: ['default'],
  },
});
