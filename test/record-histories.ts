/**
 * Records the workflow history fixtures that test/integration/replay.test.ts replays (see there):
 *
 *   npm run fixtures:histories [-- <workflowType> ...]
 *
 * With no type, every workflow type workflows/index.ts exports. Runs the integration files that start every workflow
 * type on one suite stack, then the replay test with STEWARD_RECORD_HISTORIES set, which writes
 * test/fixtures/histories/<type>.json (and <type>.failed.json) and replays them. A new workflow type that none of these
 * files starts needs its test file added below.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const FILES = [
  'test/integration/change-control.test.ts',
  'test/integration/cli.test.ts',
  'test/integration/drift.test.ts',
  'test/integration/erasure.test.ts',
  'test/integration/evidence.test.ts',
  'test/integration/pseudonymization.test.ts',
  'test/integration/qualification.test.ts',
  'test/integration/preprocess.test.ts',
  'test/integration/retention.test.ts',
  'test/integration/sources.test.ts',
  'test/integration/subject-requests.test.ts',
  'test/integration/replay.test.ts',
];

const types = process.argv.slice(2).filter((a) => a !== '--');
const root = path.join(__dirname, '..');
const result = spawnSync(path.join(root, 'node_modules', '.bin', 'vitest'), ['run', ...FILES], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, STEWARD_RECORD_HISTORIES: types.length > 0 ? types.join(',') : 'all' },
});
process.exit(result.status ?? 1);
