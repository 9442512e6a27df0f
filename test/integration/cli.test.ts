import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectLockConfigurationCommand } from '@aws-sdk/client-s3';
import { afterAll, expect, it } from 'vitest';
import type { DatasetRecord } from '../../schemas/dataset';
import { FileKeyStore } from '../../lib/keystore';
import { tokenize } from '../../lib/pseudonymize';
import { createS3Client } from '../../lib/s3';
import { smallMetadata, stackState, tempDir, writeBag } from '../helpers';

const BIN = path.join(__dirname, '..', '..', 'bin', 'steward');
let dataDir: string | undefined;

function steward(...args: string[]) {
  const result = spawnSync(process.execPath, [BIN, ...(dataDir ? ['--data-dir', dataDir] : []), ...args], {
    encoding: 'utf8',
    env: { ...process.env, STEWARD_FROM_SOURCE: '1', STEWARD_PRINCIPAL: 'cli-test:steward' },
    timeout: 300_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

afterAll(() => {
  if (dataDir) steward('down');
});

it('runs a second stack beside the first and drives it end to end from the CLI', async () => {
  const help = steward('--help');
  expect(help.code).toBe(0);
  for (const command of ['up', 'down', 'status', 'ingest', 'consent', 'datasets', 'demo'])
    expect(help.stdout).toContain(command);
  expect(steward('consent', 'import', '--help').stdout).toContain('--jurisdiction <id>');

  dataDir = await tempDir('steward-cli-');
  const notRunning = steward('status', '--json');
  expect(notRunning.code).toBe(4);
  expect(JSON.parse(notRunning.stdout)).toMatchObject({ running: false });

  const up = steward('up', '--detach', '--jurisdictions', 'uk', '--json');
  expect(up.code, up.stderr).toBe(0);
  const status = steward('status', '--json');
  expect(status.code, status.stderr).toBe(0);
  const state = JSON.parse(status.stdout);
  expect(state).toMatchObject({
    running: true,
    healthy: true,
    temporal: { namespace: 'default', uiUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) },
    s3: {
      endpoint: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
      accessKeyId: expect.any(String),
      secretAccessKey: expect.any(String),
    },
    jurisdictions: { uk: { buckets: { evidence: 'steward-uk-evidence', curated: 'steward-uk-curated' } } },
  });
  expect(state.temporal.address).not.toBe(stackState().temporal.address);
  expect(state.s3.endpoint).not.toBe(stackState().s3.endpoint);
  const s3 = createS3Client(state.s3);
  const lock = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: 'steward-uk-evidence' }));
  expect(lock.ObjectLockConfiguration?.ObjectLockEnabled).toBe('Enabled');
  s3.destroy();

  const out = await tempDir();
  expect(
    steward(
      'demo',
      'generate',
      '--out',
      out,
      '--jurisdiction',
      'uk',
      '--study',
      'UK-CLI',
      '--rows',
      '300',
      '--subjects',
      '30',
      '--vault',
    ).code,
  ).toBe(0);
  const consent = steward(
    'consent',
    'import',
    path.join(out, 'consent.csv'),
    '--jurisdiction',
    'uk',
    '--study',
    'UK-CLI',
    '--json',
  );
  expect(consent.code, consent.stderr).toBe(0);
  expect(JSON.parse(consent.stdout)).toMatchObject({ jurisdiction: 'uk', studyId: 'UK-CLI' });

  const ingest = steward('ingest', path.join(out, 'package'), '--json');
  expect(ingest.code, ingest.stderr).toBe(0);
  const record = JSON.parse(ingest.stdout).record as DatasetRecord;
  expect(record.jurisdiction).toBe('uk');
  expect(record.lineage.submittedBy).toEqual({ id: 'cli-test', role: 'steward' });
  const human = steward('ingest', path.join(out, 'package'));
  expect(human.stdout).toContain(`Dataset ${record.datasetId} (already ingested)`);
  const list = JSON.parse(steward('datasets', 'list', '--json').stdout) as DatasetRecord[];
  expect(list.map((r) => r.datasetId)).toEqual([record.datasetId]);
  expect(steward('datasets', 'show', record.datasetId).stdout).toContain(
    `rows: ${record.rows.in} in, ${record.rows.curated} curated`,
  );

  const firstSubject = (await readFile(path.join(out, 'package', 'data', 'subjects.csv'), 'utf8'))
    .split('\n')[1]!
    .split(',')[0]!;
  const withdraw = [
    'consent',
    'withdraw',
    '--subject',
    firstSubject,
    '--study',
    'UK-CLI',
    '--jurisdiction',
    'uk',
    '--reason',
    'call',
  ];
  const denied = steward(...withdraw);
  expect(denied.code).toBe(6);
  expect(denied.stderr).toMatchInlineSnapshot(`
    "steward: access denied: cli-test (role steward) may not consent.withdraw; allowed roles: dpo
    "
  `);
  const withdrawal = steward('--as', 'dana:dpo', ...withdraw, '--json');
  expect(withdrawal.code, withdrawal.stderr).toBe(0);
  expect(JSON.parse(withdrawal.stdout)).toMatchObject({ status: 'withdrawn', keyVersionsSearched: [1] });
  const rotated = steward('keys', 'rotate', '--jurisdiction', 'uk', '--study', 'UK-CLI', '--json');
  expect(rotated.code, rotated.stderr).toBe(0);
  expect(JSON.parse(rotated.stdout)).toMatchObject({ previousVersion: 1, currentVersion: 2 });

  // Re-pseudonymization moves the dataset to v2; the vault then resolves a v2 token, for the dpo only.
  const migrated = steward('datasets', 'repseudonymize', record.datasetId, '--json');
  expect(migrated.code, migrated.stderr).toBe(0);
  expect(JSON.parse(migrated.stdout)).toMatchObject({ fromVersions: [1], toVersion: 2, migrated: true });
  expect(steward('datasets', 'repseudonymize', record.datasetId).stdout).toContain('already uses key v2');
  const shown = JSON.parse(steward('datasets', 'show', record.datasetId, '--json').stdout) as DatasetRecord;
  expect(shown.keyVersions).toEqual([2]);
  const consented = (await readFile(path.join(out, 'consent.csv'), 'utf8'))
    .split('\n')
    .map((line) => line.split(','))
    .find((f) => f[2] === 'given' && f[1]!.split(';').includes('primary-research'))![0]!;
  const keys = await FileKeyStore.open(path.join(dataDir!, 'keys'));
  const token = tokenize((await keys.studyKeyVersion('uk', 'UK-CLI', 2)).material, 2, consented);
  const reidentify = ['reidentify', token, '--jurisdiction', 'uk', '--study', 'UK-CLI', '--reason', 'safety signal'];
  const refused = steward(...reidentify);
  expect(refused.code).toBe(6);
  expect(refused.stderr).toMatchInlineSnapshot(`
    "steward: access denied: cli-test (role steward) may not reidentify; allowed roles: dpo
    "
  `);
  const resolved = steward('--as', 'dana:dpo', ...reidentify);
  expect(resolved.code, resolved.stderr).toBe(0);
  expect(resolved.stdout.trim()).toBe(consented);
  const unknownToken = steward('--as', 'dana:dpo', 'reidentify', `v2.${'A'.repeat(43)}`, ...reidentify.slice(2));
  expect(unknownToken.code).toBe(4);

  const bad = await writeBag(await tempDir(), smallMetadata({ studyId: 'UK-CLI', jurisdiction: 'uk' }), {
    'data/visits.csv': 'subject_id,full_name,visit_date,score,note\nU-1,Al,2025-01-02,many,\n',
  });
  const rejected = steward('ingest', bad);
  expect(rejected.code).toBe(3);
  expect(rejected.stderr).toMatchInlineSnapshot(`
    "steward: package rejected and moved to quarantine; nothing was curated
      data/visits.csv, row 1, field "score": must be an integer
    "
  `);

  const unknown = steward('consent', 'import', path.join(out, 'consent.csv'), '--jurisdiction', 'mars', '--study', 'S');
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toMatchInlineSnapshot(`
    "steward: unknown jurisdiction "mars"; known jurisdictions: ch, eu, uk, us
    "
  `);

  const badMeta = await tempDir();
  await writeBag(badMeta, smallMetadata({ studyId: 'UK CLI!', jurisdiction: 'uk' }), { 'data/visits.csv': 'x\n' });
  await writeFile(
    path.join(badMeta, 'steward.json'),
    JSON.stringify({ ...smallMetadata({ jurisdiction: 'uk' }), studyId: 'UK CLI!' }),
  );
  const invalid = steward('ingest', badMeta);
  expect(invalid.code).toBe(2);
  expect(invalid.stderr.replace(badMeta, '<dir>')).toMatchInlineSnapshot(`
    "steward: <dir>/steward.json: invalid package metadata
    ✖ must be 1-64 letters, digits, ".", "_" or "-", starting alphanumeric
      → at studyId
    "
  `);

  expect(steward('down').code).toBe(0);
  expect(steward('status').code).toBe(4);
  // The stack stopped on its own: no process of it had to be killed.
  expect(await readFile(path.join(dataDir, 'logs', 'supervisor.log'), 'utf8')).not.toContain('was killed');
  dataDir = undefined;
});
