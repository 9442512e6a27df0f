import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { getJurisdiction } from '../../jurisdictions';
import { StackStateSchema } from '../../schemas/config';
import { generateDemoPackage } from '../../cli/demo/generate';
import { listObjects } from '../../lib/storage/objects';
import { isAlive } from '../../lib/stack/process';
import { readLocalPackage, submitPackage } from '../../lib/client/submit';
import { ingestProgressQuery } from '../../contracts';
import { expectedCurated, importConsentCsv, objectVersions, STEWARD, stackState, tempDir } from '../helpers';
import { useClients } from '../harness';

const clients = useClients();

async function euWorkerPid(): Promise<number | null> {
  const state = StackStateSchema.parse(
    JSON.parse(await readFile(path.join(stackState().dataDir, 'stack.json'), 'utf8')),
  );
  return state.workers.find((w) => w.jurisdiction === 'eu')?.pid ?? null;
}

it('a worker killed with SIGKILL mid-curation is restarted and the ingestion completes once, with the right counts', async () => {
  const out = await tempDir();
  const generated = await generateDemoPackage({
    out,
    jurisdiction: 'eu',
    studyId: 'ST-KILL',
    rows: 1_000_000,
    subjects: 2000,
    seed: 21,
  });
  await importConsentCsv(clients(), await readFile(generated.consentFile, 'utf8'), 'eu', 'ST-KILL');
  const pkg = await readLocalPackage(generated.packageDir);
  const { handle } = await submitPackage({ client: clients().client, s3: clients().s3, principal: STEWARD }, pkg);

  const deadline = Date.now() + 120_000;
  while ((await handle.query(ingestProgressQuery)).phase !== 'curating') {
    if (Date.now() > deadline) throw new Error('curation never started');
    await sleep(50);
  }
  const victim = await euWorkerPid();
  expect(isAlive(victim)).toBe(true);
  process.kill(victim!, 'SIGKILL');

  const result = await handle.result();
  const replacement = await euWorkerPid();
  expect(replacement).not.toBe(victim);
  expect(isAlive(replacement)).toBe(true);

  // The first attempt died with its worker: the one that completed is a retry.
  const history = await handle.fetchHistory();
  const attempts = history.events!.flatMap((e) =>
    e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 1] : [],
  );
  expect(Math.max(...attempts)).toBe(2);

  const expected = await expectedCurated(generated.packageDir, generated.consentFile, 'primary-research');
  const total = Object.values(expected).reduce((a, e) => ({ in: a.in + e.in, curated: a.curated + e.curated }), {
    in: 0,
    curated: 0,
  });
  expect(result.record.rows.in).toBe(total.in);
  expect(result.record.rows.curated).toBe(total.curated);
  const buckets = getJurisdiction('eu').buckets;
  expect(await listObjects(clients().s3, buckets.catalog, `datasets/${result.datasetId}`)).toHaveLength(1);
  expect(await objectVersions(clients().s3, buckets.curated, `datasets/${result.datasetId}/`)).toBe(4);
});
