import { expect, it } from 'vitest';
import { getJurisdiction } from '../../jurisdictions';
import { listObjects } from '../../lib/storage/objects';
import { isAlive } from '../../lib/stack/process';
import { expectedCurated, objectVersions, submitUntilCurating, workerPid } from '../helpers';
import { sealedEvents, useClients } from '../harness';

const clients = useClients();

it('a worker killed with SIGKILL mid-curation is restarted and the ingestion completes once, with the right counts', async () => {
  const { generated, handle } = await submitUntilCurating(clients(), {
    studyId: 'ST-KILL',
    rows: 1_000_000,
    subjects: 2000,
    seed: 21,
  });
  const victim = await workerPid('eu');
  expect(isAlive(victim)).toBe(true);
  process.kill(victim!, 'SIGKILL');

  const result = await handle.result();
  const replacement = await workerPid('eu');
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

  // The audit trail holds each step of the ingestion exactly once: none lost with the worker, none doubled by the retry.
  const events = (await sealedEvents(clients(), 'eu'))
    .map((e) => e.event)
    .filter((e) => e.workflow?.workflowId === handle.workflowId);
  expect(events.map((e) => e.action)).toEqual([
    'package.submitted',
    'package.verified',
    'key.used',
    'package.curated',
    'object.written',
    'object.written',
    'object.written',
    'object.written',
    'dataset.recorded',
  ]);
});
