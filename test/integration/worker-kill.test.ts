import { randomUUID } from 'node:crypto';
import type { Payload } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { createRetentionActivities } from '../../activities/retention';
import { ingestTaskQueue, subjectRequestStatusQuery, subjectRequestWorkflowId } from '../../contracts';
import { tokenize } from '../../lib/crypto/pseudonymize';
import { decideSubjectRequest } from '../../lib/client/subject-requests';
import { readDatasetRecord } from '../../lib/storage/catalog';
import type { DecisionParams } from '../../schemas/subject-request';
import { getJurisdiction } from '../../jurisdictions';
import { listObjects } from '../../lib/storage/objects';
import { isAlive } from '../../lib/stack/process';
import type { endTrialWorkflow, subjectRequestWorkflow } from '../../workflows';
import {
  expectedCurated,
  identity,
  readParquet,
  importConsentCsv,
  ingestDir,
  objectVersions,
  signedBy,
  smallMetadata,
  submitUntilCurating,
  tempDir,
  workerPid,
  writeJsonPackage,
} from '../helpers';
import { ingestActivitiesOf, sealedEvents, useClients } from '../harness';

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

/** The decoded input and the heartbeat timeout (seconds) of each scheduling of `activityType` in a workflow's history. */
async function scheduled(workflowId: string, activityType: string) {
  const converter = clients().client.options.loadedDataConverter;
  const history = await clients().client.workflow.getHandle(workflowId).fetchHistory();
  const found: { input: unknown; heartbeatTimeoutS: number }[] = [];
  for (const event of history.events ?? []) {
    const a = event.activityTaskScheduledEventAttributes;
    if (a?.activityType?.name !== activityType) continue;
    let payloads: Payload[] = a.input?.payloads ?? [];
    for (const codec of [...converter.payloadCodecs].reverse()) payloads = await codec.decode(payloads);
    found.push({
      input: converter.payloadConverter.fromPayload(payloads[0]!),
      heartbeatTimeoutS: Number(a.heartbeatTimeout?.seconds ?? 0),
    });
  }
  return found;
}

it('recording a dataset and moving its Object Lock dates heartbeat, so a killed worker is noticed within seconds', async () => {
  const study = 'ST-BEAT';
  await importConsentCsv(
    clients(),
    'subject_id,scopes,status,icf_version,given_on\nH-1,primary-research,given,v1,2024-01-01\n',
    'eu',
    study,
  );
  const dir = await writeJsonPackage(await tempDir(), smallMetadata({ studyId: study }), {
    'data/visits.csv': 'subject_id,full_name,visit_date,score,note\nH-1,Hal,2025-01-02,3,\n',
  });
  const ingested = await ingestDir(clients(), dir);
  const ended = `test-trial-end-${randomUUID()}`;
  await clients().client.workflow.execute<typeof endTrialWorkflow>('endTrialWorkflow', {
    args: [
      signedBy('steward', {
        action: 'trial.end',
        jurisdiction: 'eu',
        params: { jurisdiction: 'eu', studyId: study, date: '2020-01-01' },
      }),
    ],
    taskQueue: ingestTaskQueue('eu'),
    workflowId: ended,
  });

  const [recording] = await scheduled(ingested.workflowId, 'recordDatasetActivity');
  const [locking] = await scheduled(ended, 'applyObjectLockActivity');
  expect(recording!.heartbeatTimeoutS).toBeGreaterThan(0);
  expect(recording!.heartbeatTimeoutS).toBeLessThanOrEqual(30);
  expect(locking!.heartbeatTimeoutS).toBeGreaterThan(0);
  expect(locking!.heartbeatTimeoutS).toBeLessThanOrEqual(30);

  // Run again with the inputs they were given, each heartbeats (and finds its work done: both are idempotent).
  const scratchDir = await tempDir('steward-beat-');
  const { s3 } = clients();
  const eu = getJurisdiction('eu');
  const beatsOf = async <T>(run: (env: MockActivityEnvironment) => Promise<T>) => {
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    return { result: await run(env), beats };
  };
  const ingest = ingestActivitiesOf(clients(), 'eu', scratchDir);
  const again = await beatsOf((env) =>
    env.run(ingest.recordDatasetActivity, recording!.input as Parameters<typeof ingest.recordDatasetActivity>[0]),
  );
  expect(again.result).toMatchObject({ created: false, record: { datasetId: ingested.datasetId } });
  expect(again.beats.length).toBeGreaterThan(0);
  const retention = createRetentionActivities({ s3, jurisdiction: eu });
  const relocked = await beatsOf((env) =>
    env.run(
      retention.applyObjectLockActivity,
      locking!.input as Parameters<typeof retention.applyObjectLockActivity>[0],
    ),
  );
  expect(relocked.result).toEqual({ versions: 0 });
  expect(relocked.beats.at(-1)).toEqual({ changesDone: 1, versions: 0 });
});

it('a worker killed with SIGKILL mid-erasure is restarted and the request finishes: no half-written table, no other subject’s row lost', async () => {
  const study = `ST-KILL-DSR-${randomUUID().slice(0, 6)}`;
  const subject = `KS-${randomUUID()}`;
  const others = Array.from({ length: 2000 }, (_, i) => `KO-${String(i).padStart(5, '0')}`);
  await importConsentCsv(
    clients(),
    [
      'subject_id,scopes,status,icf_version,given_on',
      ...[subject, ...others].map((id) => `${id},primary-research,given,v1,2024-01-01`),
    ].join('\n'),
    'eu',
    study,
  );
  const rows = Array.from({ length: 300_000 }, (_, i) =>
    i % 1000 === 0 ? `${subject},N N,2025-01-01,${i},` : `${others[i % others.length]},N N,2025-01-01,${i},`,
  );
  const subjectRows = rows.filter((r) => r.startsWith(subject)).length;
  const ingested = await ingestDir(
    clients(),
    await writeJsonPackage(await tempDir(), smallMetadata({ studyId: study, dataClass: 'real-world' }), {
      'data/visits.csv': ['subject_id,full_name,visit_date,score,note', ...rows].join('\n'),
    }),
  );

  const requestId = `dsr-kill-${randomUUID()}`;
  const workflowId = subjectRequestWorkflowId('eu', requestId);
  const handle = await clients().client.workflow.start<typeof subjectRequestWorkflow>('subjectRequestWorkflow', {
    taskQueue: ingestTaskQueue('eu'),
    workflowId,
    args: [
      signedBy('dpo', {
        action: 'dsr.erase',
        jurisdiction: 'eu',
        requestId,
        params: { subjectId: subject, studyId: study, received: new Date().toISOString(), reason: 'letter' },
      }),
    ],
  });
  const decide = async (params: DecisionParams) => {
    for (let tries = 0; ; tries++) {
      try {
        return await decideSubjectRequest(clients().client, identity('dpo'), {
          requestId,
          jurisdiction: 'eu',
          workflowId,
          params,
          meaning: `${params.decision} the request`,
        });
      } catch (error) {
        if (tries > 40) throw error;
        await sleep(250);
      }
    }
  };
  await decide({
    decision: 'verify-identity',
    requestId,
    method: 'id-document',
    evidenceRef: 'CASE-9',
    reason: 'checked',
  });
  await decide({ decision: 'approve', requestId, reason: 'no ground to refuse' });
  // Killed while the erasure works (finding, rewriting, deleting, certifying: wherever it is by then).
  const until = Date.now() + 60_000;
  while ((await handle.query(subjectRequestStatusQuery)).state !== 'in-progress') {
    if (Date.now() > until) throw new Error('the erasure never started');
    await sleep(50);
  }
  const victim = await workerPid('eu');
  process.kill(victim!, 'SIGKILL');

  const done = await handle.result();
  expect(await workerPid('eu')).not.toBe(victim);
  // Completed with exemptions: the consent records (and the consent file) stay, to show the consent.
  expect(done.state).toBe('completed-with-exemptions');
  expect(done.outcome).toMatchObject({ erased: 2, kept: 2, rowsRemoved: subjectRows, verified: true });
  const record = (await readDatasetRecord(clients().s3, getJurisdiction('eu').buckets.catalog, ingested.datasetId))!;
  const out = record.outputs[0]!;
  const stored = (await readParquet(clients().s3, out.bucket, out.key)).rows;
  expect(stored).toHaveLength(rows.length - subjectRows);
  const key = await clients().keys.studyKey('eu', study);
  expect(stored.some((r) => r.subject_id === tokenize(key.material, key.version, subject))).toBe(false);
  expect(await objectVersions(clients().s3, out.bucket, out.key)).toBe(1);
  expect(record.erasures).toMatchObject([{ requestId, rowsRemoved: subjectRows }]);
});
