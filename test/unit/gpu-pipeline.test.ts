import { spawnSync } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeReferenceFixtures } from '../../lib/preprocess/reference';
import { tempDir } from '../helpers';

const DEVICE = path.join(__dirname, '..', '..', 'device');
const FILES = [
  'input.csv',
  'builtin.csv',
  'pipeline.json',
  'window-input.csv',
  'window-pipelines.json',
  ...['mean', 'sum', 'min', 'max'].map((a) => `window-${a}.csv`),
];

/** A Python with NumPy: CI installs Debian's python3-numpy; elsewhere the NumPy check says why it does not run. */
const python = ['python3', '/usr/bin/python3'].find(
  (bin) => spawnSync(bin, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0,
);
const numpyCheck = Boolean(python) || Boolean(process.env.CI);
if (!numpyCheck)
  process.stderr.write('gpu-pipeline.test: NumPy check skipped, no python3 with numpy (apt install python3-numpy)\n');

function check(args: string[], fixtures?: string) {
  const result = spawnSync(python ?? 'python3', [path.join(DEVICE, 'check.py'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...(fixtures ? { STEWARD_DEVICE_FIXTURES: fixtures } : {}) },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('the GPU reference pipeline and its device check', () => {
  it('carries fixtures that the built-in executor makes today', async () => {
    const dir = await tempDir('steward-fixtures-');
    await writeReferenceFixtures(dir);
    for (const file of FILES) {
      expect(await readFile(path.join(dir, file), 'utf8'), file).toBe(
        await readFile(path.join(DEVICE, 'fixtures', file), 'utf8'),
      );
    }
  });

  it.runIf(numpyCheck)(
    'equals the built-in outputs within 1e-9 on NumPy, and says so when a value differs',
    async () => {
      const same = check(['--cpu']);
      expect(same.code, same.stderr).toBe(0);
      const report = JSON.parse(same.stdout) as {
        largest_difference: number;
        mismatched_columns: string[];
        rows: Record<string, number>;
      };
      expect(report.rows).toEqual({
        'builtin.csv': 240,
        'window-mean.csv': 84,
        'window-sum.csv': 84,
        'window-min.csv': 84,
        'window-max.csv': 84,
      });
      expect(report.mismatched_columns).toEqual([]);
      expect(report.largest_difference).toBeLessThanOrEqual(1e-9);

      const changed = await tempDir('steward-fixtures-');
      await cp(path.join(DEVICE, 'fixtures'), changed, { recursive: true });
      const csv = await readFile(path.join(changed, 'builtin.csv'), 'utf8');
      const lines = csv.split('\n');
      const cells = lines[5]!.split(',');
      cells[4] = String(Number(cells[4]) + 1e-6); // sbp after min-max, row 5
      lines[5] = cells.join(',');
      await writeFile(path.join(changed, 'builtin.csv'), lines.join('\n'));
      const differs = check(['--cpu'], changed);
      expect(differs.code).toBe(1);
      expect((JSON.parse(differs.stdout) as { largest_difference: number }).largest_difference).toBeCloseTo(1e-6, 9);

      // The window aggregation too: a changed maximum is found.
      const max = await readFile(path.join(changed, 'window-max.csv'), 'utf8');
      await writeFile(path.join(changed, 'builtin.csv'), csv);
      const rows = max.split('\n');
      const fields = rows[3]!.split(',');
      fields[5] = String(Number(fields[5]) + 1); // sbp, third window
      rows[3] = fields.join(',');
      await writeFile(path.join(changed, 'window-max.csv'), rows.join('\n'));
      const windowDiffers = check(['--cpu'], changed);
      expect(windowDiffers.code).toBe(1);
      expect((JSON.parse(windowDiffers.stdout) as { largest_difference: number }).largest_difference).toBe(1);
    },
  );

  const cupy = spawnSync(python ?? 'python3', ['-c', 'import cupy'], { stdio: 'ignore' }).status === 0;
  it.runIf(numpyCheck && !cupy)('without a GPU the GPU run is skipped with a clear line, never faked', () => {
    const gpu = check([]);
    expect(gpu.code).toBe(2);
    expect(gpu.stdout).toContain('GPU pipeline skipped: CuPy is not installed here');
  });
});
