import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import { beforeAll, describe, expect, it } from 'vitest';
import { getJurisdiction } from '../../jurisdictions';
import { ErrorType, ingestTaskQueue, preprocessJobWorkflowId } from '../../contracts';
import { datasetObjectPrefix, preprocessJobPrefix, runDocumentKey } from '../../lib/storage/layout';
import { createPreprocessActivities } from '../../activities/preprocess';
import { FileKeyStore } from '../../lib/crypto/keystore';
import { tokenize } from '../../lib/crypto/pseudonymize';
import { loadPipeline } from '../../lib/preprocess/load-pipeline';
import { readDatasetRecord } from '../../lib/storage/catalog';
import { getObjectOrUndefined, hashObject, listObjects } from '../../lib/storage/objects';
import { createS3Client } from '../../lib/storage/s3';
import { isAlive } from '../../lib/stack/process';
import type { PackageMetadata } from '../../schemas/package';
import {
  RunDocumentSchema,
  type PipelineParameters,
  type PreprocessJobResult,
  type RunPreprocessInput,
} from '../../schemas/preprocess';
import {
  importConsentCsv,
  ingestDir,
  objectVersions,
  readParquet,
  signedBy,
  smallMetadata,
  stackState,
  tempDir,
  workerPid,
  writeJsonPackage,
  stackSteward as steward,
} from '../helpers';
import { failureOf, rootApplicationFailure, sealedEvents, useClients } from '../harness';

const clients = useClients();
const STUDY = 'ST-PRE';
const EXTERNAL = path.join(__dirname, '..', 'fixtures', 'pipelines', 'scale.json');
let euDataset: string;
let usDataset: string;
let pipelineFile: string;
let jobs = 0;

/** The built-in pipeline of these tests: a missing score filled with parameter `fill`, then standardized. */
const PIPELINE = {
  name: 'scores-standardize',
  version: '1.0.0',
  executor: 'builtin',
  purpose: 'secondary-research',
  steps: [
    { op: 'impute', columns: ['score'], method: 'constant', value: '${fill}' },
    { op: 'standardize', columns: ['score'] },
  ],
};

async function startJob(
  jurisdiction: string,
  datasetIds: string[],
  parameters: PipelineParameters,
  options: { file?: string; seed?: number } = {},
) {
  const requestId = `pre-test-${process.pid}-${++jobs}`;
  const pipeline = await loadPipeline(options.file ?? pipelineFile, parameters);
  return clients().client.workflow.start('preprocessJobWorkflow', {
    taskQueue: ingestTaskQueue(jurisdiction),
    workflowId: preprocessJobWorkflowId(jurisdiction, requestId),
    args: [
      signedBy('steward', {
        action: 'preprocess.run',
        jurisdiction,
        requestId,
        params: { datasetIds, pipeline, parameters, seed: options.seed ?? 7, gpu: false },
      }),
    ],
  });
}

async function runJob(
  jurisdiction: string,
  datasetIds: string[],
  parameters: PipelineParameters,
  options?: { file?: string; seed?: number },
) {
  return (await (await startJob(jurisdiction, datasetIds, parameters, options)).result()) as PreprocessJobResult;
}

async function verify(jobId: string, parameters?: PipelineParameters) {
  const requestId = `pre-verify-${process.pid}-${++jobs}`;
  const handle = await clients().client.workflow.start('verifyPreprocessRunWorkflow', {
    taskQueue: ingestTaskQueue('eu'),
    workflowId: preprocessJobWorkflowId('eu', `verify-${requestId}`),
    args: [
      signedBy('steward', {
        action: 'preprocess.verify',
        jurisdiction: 'eu',
        requestId,
        params: { runWorkflowId: jobId, ...(parameters ? { parameters } : {}) },
      }),
    ],
  });
  return (await handle.result()) as PreprocessJobResult;
}

/** Every job scratch left on this machine for a job id, by any worker process of the stack. */
async function scratchLeft(jurisdiction: string, jobId: string): Promise<string[]> {
  const root = path.join(stackState().dataDir, 'scratch', jurisdiction);
  const found: string[] = [];
  for (const pid of await readdir(root).catch(() => [] as string[])) {
    const dir = path.join(root, pid, 'preprocess', jobId);
    if (existsSync(dir)) found.push(dir);
  }
  return found;
}

async function eventsOf(workflowId: string) {
  return (await sealedEvents(clients(), 'eu')).map((e) => e.event).filter((e) => e.workflow?.workflowId === workflowId);
}

beforeAll(async () => {
  // P-4 consented to storage only: never curated. P-5 consented to primary research only: curated, but left out of
  // every secondary-research run.
  await importConsentCsv(
    clients(),
    [
      'subject_id,scopes,status,icf_version,given_on',
      'P-1,primary-research;secondary-research,given,v1,2024-01-01',
      'P-2,primary-research;secondary-research,given,v1,2024-01-01',
      'P-3,primary-research;secondary-research,given,v1,2024-01-01',
      'P-4,biobank-storage,given,v1,2024-01-01',
      'P-5,primary-research,given,v1,2024-01-01',
    ].join('\n'),
    'eu',
    STUDY,
  );
  const rows = [
    'subject_id,full_name,visit_date,score,note',
    'P-1,Ann One,2025-01-02,10,',
    'P-2,Bob Two,2025-01-03,20,',
    'P-3,Cy Three,2025-01-04,,',
    'P-1,Ann One,2025-02-02,30,',
    'P-4,Di Four,2025-01-05,40,',
    'P-5,Ed Five,2025-01-06,50,',
  ].join('\n');
  const eu = await writeJsonPackage(await tempDir(), smallMetadata({ studyId: STUDY }), { 'data/visits.csv': rows });
  euDataset = (await ingestDir(clients(), eu)).datasetId;

  await importConsentCsv(
    clients(),
    'subject_id,scopes,status,icf_version,given_on\nU-1,primary-research,given,v1,2024-01-01\n',
    'us',
    'ST-PRE-US',
  );
  const us = await writeJsonPackage(await tempDir(), smallMetadata({ studyId: 'ST-PRE-US', jurisdiction: 'us' }), {
    'data/visits.csv': 'subject_id,full_name,visit_date,score,note\nU-1,Uma Us,2025-01-02,5,\n',
  });
  usDataset = (await ingestDir(clients(), us)).datasetId;

  pipelineFile = path.join(await tempDir('steward-pipeline-'), 'scores.json');
  await writeFile(pipelineFile, JSON.stringify(PIPELINE, null, 2));
});

describe('a preprocessing job in its own jurisdiction', () => {
  it('writes new datasets with lineage and retention, documents the run beside them, audits every step', async () => {
    const result = await runJob('eu', [euDataset], { fill: 0 });
    const buckets = getJurisdiction('eu').buckets;
    const doc = result.document;

    // Hand-computed: P-5 left out (no consent to secondary research); scores 10, 20, 0 (filled), 30 standardized.
    const scores = [10, 20, 0, 30];
    const mean = 15;
    const sd = Math.sqrt(scores.reduce((s, x) => s + (x - mean) ** 2, 0) / scores.length);
    const out = doc.outputs[0]!;
    const { rows } = await readParquet(clients().s3, out.bucket, out.key);
    const got = rows.map((r) => r.score as number).sort((a, b) => a - b);
    expect(got).toEqual(scores.sort((a, b) => a - b).map((x) => expect.closeTo((x - mean) / sd, 12)));
    expect(doc.consent).toMatchObject({ purpose: 'secondary-research', subjects: 1, rows: 1, byReason: { scope: 1 } });
    expect(doc.inputs[0]).toMatchObject({ datasetId: euDataset, rowsIn: 5, rowsExcluded: 1, table: 'visits' });

    // The output is a dataset of its own: retention class, lineage to the exact input version, the run documentation.
    expect(result.outputDatasets).toHaveLength(1);
    const record = (await readDatasetRecord(clients().s3, buckets.catalog, result.outputDatasets[0]!))!;
    expect(record.dataClass).toBe('preprocessing-output');
    expect(record.retention).toMatchObject({ rule: 'preprocessing-output', duration: 'P10Y' });
    expect(record.derivedFrom).toEqual([
      expect.objectContaining({ datasetId: euDataset, table: 'visits', sha256: doc.inputs[0]!.sha256 }),
    ]);
    expect(record.run).toMatchObject({ jobId: result.jobId, key: runDocumentKey(result.jobId) });
    expect(record.outputs[0]).toMatchObject({ key: out.key, sha256: out.sha256, versionId: out.versionId });

    // Every checksum in the documentation is what storage holds. The outputs are where a dataset's objects are (where
    // retention sweeps delete them), with a copy of the documentation beside them; the job's own copy stays.
    expect((await hashObject(clients().s3, out.bucket, out.key)).sha256).toBe(out.sha256);
    const outPrefix = datasetObjectPrefix(result.outputDatasets[0]!);
    expect((await listObjects(clients().s3, buckets.curated, outPrefix)).map((o) => o.key).sort()).toEqual([
      `${outPrefix}run.json`,
      `${outPrefix}visits.parquet`,
    ]);
    const stored = await getObjectOrUndefined(clients().s3, buckets.curated, runDocumentKey(result.jobId));
    expect(RunDocumentSchema.parse(JSON.parse(stored!.toString('utf8')))).toEqual(doc);
    expect(await getObjectOrUndefined(clients().s3, buckets.curated, `${outPrefix}run.json`)).toEqual(stored);
    expect(doc.infrastructure).toMatchObject({
      node: process.version,
      worker: { taskQueue: 'preprocess.eu' },
      gpu: null,
    });
    expect(doc.infrastructure.temporalServer).toMatch(/^\d+\.\d+/);
    expect(doc.infrastructure.versitygw).toMatch(/versitygw v1\.\d+\.\d+/);
    expect(doc.pipeline).toMatchObject({ name: 'scores-standardize', version: '1.0.0', executor: 'builtin' });
    expect(doc.scratch.wiped).toBe(true);
    expect(await scratchLeft('eu', result.jobId)).toEqual([]);

    const actions = (await eventsOf(result.jobId)).map((e) => e.action);
    expect(actions).toEqual([
      'preprocess.started',
      'object.written',
      'object.written',
      'dataset.recorded',
      'scratch.wiped',
      'preprocess.completed',
    ]);
    // No data value, name or identifier in the run documentation.
    const text = stored!.toString('utf8');
    for (const secret of ['Ann One', 'P-1', 'Ed Five']) expect(text).not.toContain(secret);
  });

  it('gives the same output checksums for the same inputs, parameters and seed', async () => {
    const [a, b] = await Promise.all([runJob('eu', [euDataset], { fill: 0 }), runJob('eu', [euDataset], { fill: 0 })]);
    expect(a.document.outputs[0]!.sha256).toBe(b.document.outputs[0]!.sha256);
    expect(a.outputDatasets[0]).not.toBe(b.outputDatasets[0]);
  });

  it('`verify` reproduces a run, and reports a changed parameter field by field', async () => {
    const run = await runJob('eu', [euDataset], { fill: 0 });
    const same = await verify(run.jobId);
    expect(same.verification).toEqual({ of: run.jobId, reproduced: true, differences: [] });

    const changed = await verify(run.jobId, { fill: 25 });
    expect(changed.verification!.reproduced).toBe(false);
    const fields = changed.verification!.differences.map((d) => d.field);
    expect(fields).toContain('parameters.fill');
    expect(fields).toContain(`outputs[${euDataset}/visits].sha256`);
    expect(changed.verification!.differences.find((d) => d.field === 'parameters.fill')).toEqual({
      field: 'parameters.fill',
      recorded: 0,
      rerun: 25,
    });
    // A verification writes nothing: no dataset, no object.
    expect(changed.outputDatasets).toEqual([]);
    const verifyEvents = (await sealedEvents(clients(), 'eu'))
      .map((e) => e.event)
      .filter((e) => e.action === 'preprocess.verified' && e.details.run === run.jobId);
    expect(verifyEvents.map((e) => e.outcome).sort()).toEqual(['failure', 'success']);
  });

  it('leaves out a subject whose consent was withdrawn from every new run', async () => {
    const before = await runJob('eu', [euDataset], { fill: 0 });
    await importConsentCsv(
      clients(),
      'subject_id,scopes,status,icf_version,given_on,withdrawn_on\nP-2,primary-research;secondary-research,withdrawn,v1,2024-01-01,2025-06-01\n',
      'eu',
      STUDY,
    );
    const after = await runJob('eu', [euDataset], { fill: 0 });
    expect(before.document.consent.byReason).toEqual({ scope: 1 });
    expect(after.document.consent.byReason).toEqual({ scope: 1, withdrawn: 1 });
    expect(after.document.outputs[0]!.rows).toBe(before.document.outputs[0]!.rows - 1);
    const out = after.document.outputs[0]!;
    const { rows } = await readParquet(clients().s3, out.bucket, out.key);
    expect(rows).toHaveLength(3);
    expect(after.document.inputs[0]).toMatchObject({ rowsIn: 5, rowsExcluded: 2 });
  });
});

describe('consent after a key rotation', () => {
  const study = 'ST-PRE-ROT';
  const header = 'subject_id,full_name,visit_date,score,note';
  const rowsOf = (ids: string[]) => [header, ...ids.map((id, i) => `${id},Name ${id},2025-01-0${i + 1},${i + 1},`)];

  function steward(action: 'keys.rotate' | 'datasets.repseudonymize', params: unknown, name: string) {
    return clients().client.workflow.execute(name, {
      args: [signedBy('steward', { action, jurisdiction: 'eu', params })],
      taskQueue: ingestTaskQueue('eu'),
      workflowId: `test-pre-rot-${action}-${randomUUID()}`,
    });
  }

  const excluded = ({ document: { consent } }: PreprocessJobResult) => ({
    subjects: consent.subjects,
    rows: consent.rows,
    byReason: consent.byReason,
  });

  async function subjectsOf(result: PreprocessJobResult): Promise<string[]> {
    const out = result.document.outputs[0]!;
    const { rows } = await readParquet(clients().s3, out.bucket, out.key);
    return [...new Set(rows.map((r) => String(r.subject_id)))].sort();
  }

  it('ingestion and preprocessing decide alike whatever key version the records and the dataset are under', async () => {
    // Consent to both purposes, recorded under key v1.
    await importConsentCsv(
      clients(),
      [
        'subject_id,scopes,status,icf_version,given_on',
        ...['RK-1', 'RK-2', 'RK-3', 'RK-4'].map(
          (id) => `${id},primary-research;secondary-research,given,v1,2024-01-01`,
        ),
      ].join('\n'),
      'eu',
      study,
    );
    // Two datasets in v1 tokens: one stays under v1, the other (with a vault) is moved to v2.
    const ingest = async (ids: string[], extra: Partial<PackageMetadata> = {}) =>
      ingestDir(
        clients(),
        await writeJsonPackage(await tempDir(), smallMetadata({ studyId: study, ...extra }), {
          'data/visits.csv': rowsOf(ids).join('\n'),
        }),
      );
    const stays = await ingest(['RK-1', 'RK-2', 'RK-3']);
    const moves = await ingest(['RK-1', 'RK-2', 'RK-3'], { reidentificationVault: true });
    expect(stays.record.rows.curated).toBe(3);
    expect(moves.record.rows.curated).toBe(3);

    await steward('keys.rotate', { jurisdiction: 'eu', studyId: study }, 'rotateStudyKeyWorkflow');
    // After the rotation: the DPO records RK-2's withdrawal, and a new import narrows RK-3 to primary research.
    await clients().client.workflow.execute('withdrawConsentWorkflow', {
      args: [
        signedBy('dpo', {
          action: 'consent.withdraw',
          jurisdiction: 'eu',
          params: { jurisdiction: 'eu', studyId: study, subjectId: 'RK-2', scopes: [], reason: 'asked by letter' },
        }),
      ],
      taskQueue: ingestTaskQueue('eu'),
      workflowId: `test-pre-rot-withdraw-${randomUUID()}`,
    });
    await importConsentCsv(
      clients(),
      'subject_id,scopes,status,icf_version,given_on\nRK-3,primary-research,given,v2,2025-05-01\n',
      'eu',
      study,
    );
    await steward('datasets.repseudonymize', { datasetId: moves.datasetId }, 'rePseudonymizeDatasetWorkflow');

    const keys = await FileKeyStore.open(path.join(stackState().dataDir, 'keys'));
    const tokensOf = async (version: number, ids: string[]) => {
      const key = await keys.studyKeyVersion('eu', study, version);
      return ids.map((id) => tokenize(key.material, version, id)).sort();
    };

    // Ingestion into v2 for the pipeline's purpose: RK-2 withdrawn, RK-3 out of scope, RK-1 and RK-4 in.
    const secondary = await ingest(['RK-1', 'RK-2', 'RK-3', 'RK-4'], { purpose: 'secondary-research' });
    expect(secondary.record.rows).toEqual({
      in: 4,
      curated: 2,
      excluded: 2,
      excludedByReason: { withdrawn: 1, scope: 1 },
    });
    const { rows: curated } = await readParquet(
      clients().s3,
      secondary.record.outputs[0]!.bucket,
      secondary.record.outputs[0]!.key,
    );
    expect([...new Set(curated.map((r) => String(r.subject_id)))].sort()).toEqual(await tokensOf(2, ['RK-1', 'RK-4']));

    // Preprocessing (secondary research) gives the same answer on the dataset left in v1 tokens ...
    const v1 = await runJob('eu', [stays.datasetId], { fill: 0 });
    expect.soft(excluded(v1)).toEqual({ subjects: 2, rows: 2, byReason: { withdrawn: 1, scope: 1 } });
    expect.soft(await subjectsOf(v1)).toEqual(await tokensOf(1, ['RK-1']));
    // ... on the dataset moved to v2 tokens ...
    const v2 = await runJob('eu', [moves.datasetId], { fill: 0 });
    expect.soft(excluded(v2)).toEqual({ subjects: 2, rows: 2, byReason: { withdrawn: 1, scope: 1 } });
    expect.soft(await subjectsOf(v2)).toEqual(await tokensOf(2, ['RK-1']));
    // ... and on a dataset ingested in v2 for primary research, whose RK-4 has records under v1 alone.
    const primary = await ingest(['RK-1', 'RK-2', 'RK-3', 'RK-4']);
    expect(primary.record.rows).toEqual({ in: 4, curated: 3, excluded: 1, excludedByReason: { withdrawn: 1 } });
    const fresh = await runJob('eu', [primary.datasetId], { fill: 0 });
    expect.soft(excluded(fresh)).toEqual({ subjects: 1, rows: 1, byReason: { scope: 1 } });
    expect.soft(await subjectsOf(fresh)).toEqual(await tokensOf(2, ['RK-1', 'RK-4']));
  });
});

describe('confinement', () => {
  it('(a) the workflow refuses a dataset of another jurisdiction before anything is dispatched', async () => {
    const handle = await startJob('eu', [euDataset, usDataset], { fill: 0 });
    const error = await failureOf(handle.result());
    const root = rootApplicationFailure(error);
    expect(root.type).toBe(ErrorType.JurisdictionViolation);
    expect(root.message).toContain(`${usDataset} (us)`);
    // Nothing was dispatched to a worker, nothing written in either jurisdiction.
    const history = await handle.fetchHistory();
    const activities = history.events!.flatMap((e) =>
      e.activityTaskScheduledEventAttributes ? [e.activityTaskScheduledEventAttributes.activityType!.name] : [],
    );
    expect(activities).not.toContain('preparePreprocessActivity');
    expect(activities).not.toContain('runPreprocessActivity');
    for (const j of ['eu', 'us']) {
      expect(
        await listObjects(clients().s3, getJurisdiction(j).buckets.curated, preprocessJobPrefix(handle.workflowId)),
      ).toEqual([]);
    }
    const events = await eventsOf(handle.workflowId);
    expect(events.map((e) => [e.action, e.outcome])).toEqual([['preprocess.refused', 'denied']]);
  });

  function activitiesFor(jurisdiction: string, account: string, scratchDir: string) {
    const state = stackState();
    const s3 = createS3Client({ ...state.s3, ...state.jurisdictions[account]!.account! });
    return {
      s3,
      activities: createPreprocessActivities({
        s3,
        jurisdiction: getJurisdiction(jurisdiction),
        scratchDir,
        workerIdentity: `test-${jurisdiction}`,
        gpu: null,
        cudaVisibleDevices: null,
        versitygwVersion: null,
        temporal: async () => clients().client,
      }),
    };
  }

  async function activityInput(
    jobId: string,
    fromJurisdiction: string,
    datasetId: string,
  ): Promise<RunPreprocessInput> {
    const buckets = getJurisdiction(fromJurisdiction).buckets;
    const record = (await readDatasetRecord(clients().s3, buckets.catalog, datasetId))!;
    const o = record.outputs[0]!;
    return {
      jobId,
      jurisdiction: fromJurisdiction,
      verify: false,
      pipeline: await loadPipeline(pipelineFile, { fill: 0 }),
      parameters: { fill: 0 },
      seed: 1,
      inputs: [
        {
          datasetId,
          studyId: record.studyId,
          table: o.table,
          bucket: o.bucket,
          key: o.key,
          versionId: o.versionId,
          sha256: o.sha256,
          bytes: o.bytes,
          subjectColumn: 'subject_id',
        },
      ],
      outputs: [{ fromDatasetId: datasetId, datasetId, bucket: buckets.curated, prefix: preprocessJobPrefix(jobId) }],
      asOf: '2026-01-01',
      lock: null,
      tags: {},
      job: {
        workflowId: jobId,
        runId: 'test',
        requestId: jobId,
        requestedBy: { id: 'Demo Steward', role: 'steward' },
        startedAt: new Date().toISOString(),
      },
    };
  }

  it('(b) the EU worker refuses a US object even when asked directly', async () => {
    const scratch = await tempDir('steward-guard-');
    const { s3, activities } = activitiesFor('eu', 'eu', scratch);
    // Asked as for an EU job, with a US object as input.
    const input = { ...(await activityInput('guard-test-b', 'us', usDataset)), jurisdiction: 'eu' };
    const error = await new MockActivityEnvironment()
      .run(activities.runPreprocessActivity, input)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApplicationFailure);
    expect((error as ApplicationFailure).type).toBe(ErrorType.JurisdictionViolation);
    expect((error as ApplicationFailure).message).toBe('bucket steward-us-curated does not belong to jurisdiction eu');
    expect(await readdir(scratch)).toEqual([]);
    s3.destroy();
  });

  it('(c) storage refuses the EU credentials on US buckets: the job fails clearly and nothing is written', async () => {
    const scratch = await tempDir('steward-creds-');
    // A worker misconfigured as a US worker, holding the EU account's credentials: its guard passes, storage refuses.
    const { s3, activities } = activitiesFor('us', 'eu', scratch);
    const input = await activityInput('guard-test-c', 'us', usDataset);
    const error = await new MockActivityEnvironment()
      .run(activities.runPreprocessActivity, input)
      .catch((e: unknown) => e);
    expect((error as ApplicationFailure).type).toBe(ErrorType.StorageDenied);
    expect((error as ApplicationFailure).nonRetryable).toBe(true);
    expect((error as ApplicationFailure).message).toMatch(
      /^storage refused reading .+ in bucket steward-us-curated \(AccessDenied\): this worker's credentials reach only the us buckets/,
    );
    expect(await listObjects(clients().s3, 'steward-us-curated', preprocessJobPrefix('guard-test-c'))).toEqual([]);
    expect(await listObjects(clients().s3, 'steward-eu-curated', preprocessJobPrefix('guard-test-c'))).toEqual([]);
    expect(existsSync(path.join(scratch, 'preprocess', 'guard-test-c'))).toBe(false);
    s3.destroy();
  });
});

describe('external executor', () => {
  it('stages Parquet into a scratch of the job, hands the command no credentials, collects outputs, wipes the scratch', async () => {
    const result = await runJob('eu', [euDataset], { factor: 3 }, { file: EXTERNAL });
    const doc = result.document;
    expect(doc.pipeline).toMatchObject({ executor: 'external', name: 'scale-scores' });
    expect(doc.pipeline.files).toEqual([{ path: 'scale.mjs', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    const out = doc.outputs[0]!;
    const { rows } = await readParquet(clients().s3, out.bucket, out.key);
    // Three times each input score (P-5 left out for want of consent; P-3 has none).
    const got = rows.map((r) => (r.score === null ? null : Number(r.score)));
    expect(got).toContain(null);
    for (const score of got) if (score !== null) expect([30, 60, 90]).toContain(score);
    expect(got).toEqual(expect.arrayContaining([30, 90]));
    // The staged input, the output, the parameters file and the command's own note were there, and are gone.
    expect(doc.scratch.files).toBeGreaterThanOrEqual(4);
    expect(await scratchLeft('eu', result.jobId)).toEqual([]);
  });

  it('a failing command fails the job with its exit status and last output; nothing is recorded', async () => {
    const handle = await startJob('eu', [euDataset], { factor: 'x' }, { file: EXTERNAL });
    const root = rootApplicationFailure(await failureOf(handle.result()));
    expect(root.type).toBe(ErrorType.PreprocessFailed);
    expect(root.message).toMatch(/^the pipeline's command node exited with status 1; its last output:/);
    expect(await listObjects(clients().s3, 'steward-eu-curated', preprocessJobPrefix(handle.workflowId))).toEqual([]);
    expect(await scratchLeft('eu', handle.workflowId)).toEqual([]);
    expect((await eventsOf(handle.workflowId)).map((e) => e.action)).toEqual([
      'preprocess.started',
      'preprocess.failed',
    ]);
  });

  it('a cancelled job stops its command and wipes its scratch', async () => {
    const marker = path.join(await tempDir('steward-marker-'), 'started');
    const handle = await startJob('eu', [euDataset], { factor: 2, marker }, { file: EXTERNAL });
    while (!existsSync(marker)) await new Promise((r) => setTimeout(r, 200));
    const command = Number(await readFile(marker, 'utf8'));
    expect(await scratchLeft('eu', handle.workflowId)).toHaveLength(1);
    await handle.cancel();
    const error = await failureOf(handle.result());
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect(error.cause).toBeInstanceOf(CancelledFailure);
    expect(await scratchLeft('eu', handle.workflowId)).toEqual([]);
    expect(isAlive(command)).toBe(false);
    expect((await eventsOf(handle.workflowId)).map((e) => e.action)).toEqual([
      'preprocess.started',
      'preprocess.cancelled',
    ]);
  });

  it('a worker killed mid-job: the job resumes on its restarted worker and completes once', async () => {
    const marker = path.join(await tempDir('steward-marker-'), 'started');
    const handle = await startJob('eu', [euDataset], { factor: 4, marker }, { file: EXTERNAL });
    while (!existsSync(marker)) await new Promise((r) => setTimeout(r, 200));
    const command = Number(await readFile(marker, 'utf8'));
    const victim = await workerPid('eu');
    process.kill(victim!, 'SIGKILL');
    const result = (await handle.result()) as PreprocessJobResult;
    expect(await workerPid('eu')).not.toBe(victim);
    const history = await handle.fetchHistory();
    const attempts = history.events!.flatMap((e) =>
      e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 1] : [],
    );
    expect(Math.max(...attempts)).toBe(2);
    // Written once: one version of the output, of its documentation copy and of the job's documentation.
    const outPrefix = datasetObjectPrefix(result.outputDatasets[0]!);
    expect(await objectVersions(clients().s3, 'steward-eu-curated', outPrefix)).toBe(2);
    expect(await objectVersions(clients().s3, 'steward-eu-curated', preprocessJobPrefix(handle.workflowId))).toBe(1);
    // The dead worker's command was stopped and its scratch removed when its replacement started.
    expect(await scratchLeft('eu', handle.workflowId)).toEqual([]);
    expect(isAlive(command)).toBe(false);
    expect((await eventsOf(handle.workflowId)).filter((e) => e.action === 'preprocess.completed')).toHaveLength(1);
  });
});

describe('the CLI', () => {
  it('a GPU worker refuses to start without a GPU', () => {
    const result = steward('worker', '--role', 'preprocess', '--jurisdiction', 'eu', '--gpu');
    expect(result.code).toBe(4);
    expect(result.stderr).toContain('steward: refusing to poll preprocess-gpu.eu: no GPU on this machine');
  });

  it('runs a job and shows its documentation; says so when nobody polls the GPU queue; cancels a waiting job', async () => {
    const params = path.join(await tempDir('steward-params-'), 'params.json');
    await writeFile(params, JSON.stringify({ fill: 1 }));
    const common = ['--jurisdiction', 'eu', '--dataset', euDataset, '--pipeline', pipelineFile, '--params', params];
    const run = steward('preprocess', 'run', ...common, '--seed', '3', '--request-id', `cli-run-${process.pid}`);
    expect(run.stderr).toMatch(/task queue preprocess\.eu: \d+ workers? polling \(steward-worker-eu@/);
    expect(run.code).toBe(0);
    const jobId = `preprocess-eu-cli-run-${process.pid}`;
    expect(run.stdout).toContain(`job ${jobId}`);
    expect(run.stdout).toContain(`run documentation steward-eu-curated/${runDocumentKey(jobId)}`);
    const show = steward('preprocess', 'show', jobId);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('pipeline scores-standardize@1.0.0 (builtin)');
    expect(show.stdout).toMatch(/scratch wiped and verified at /);
    const json = steward(
      'preprocess',
      'run',
      ...common,
      '--seed',
      '4',
      '--json',
      '--request-id',
      `cli-json-${process.pid}`,
    );
    const result = JSON.parse(json.stdout) as PreprocessJobResult;
    expect(result.document.seed).toBe(4);
    const dataset = steward('datasets', 'show', result.outputDatasets[0]!);
    expect(dataset.stdout).toContain(
      `made by preprocessing job preprocess-eu-cli-json-${process.pid} from ${euDataset}/visits`,
    );

    const gpu = steward(
      'preprocess',
      'run',
      ...common,
      '--seed',
      '3',
      '--gpu',
      '--no-wait',
      '--request-id',
      `gpu-wait-${process.pid}`,
    );
    expect(gpu.code).toBe(0);
    expect(gpu.stderr).toContain('NOBODY POLLS preprocess-gpu.eu');
    const waiting = `preprocess-eu-gpu-wait-${process.pid}`;
    const cancel = steward('preprocess', 'cancel', waiting);
    expect(cancel.stdout).toContain(`${waiting} cancelled`);
    expect(cancel.code).toBe(0);
  });
});
