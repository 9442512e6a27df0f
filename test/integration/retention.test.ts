import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectLegalHoldCommand,
  GetObjectRetentionCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import type { Workflow } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ingestTaskQueue, progressQuery, retentionScheduleId, retentionSweepProgressQuery } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { writeExpiredDemoDatasets } from '../../cli/demo/expired';
import { addDuration } from '../../lib/retention/rules';
import { describeRetentionSchedule } from '../../lib/retention/schedule';
import { SUBMITTED_AT_METADATA } from '../../lib/storage/packages';
import {
  auditReferenceProblem,
  CertificateBundleSchema,
  checkCertificate,
  readCertificateFiles,
} from '../../lib/evidence/certificate';
import { readDatasetRecord, readStudyRecord } from '../../lib/storage/catalog';
import { getObjectOrUndefined, listObjects } from '../../lib/storage/objects';
import { isAlive } from '../../lib/stack/process';
import { listVersions, listVersionsOf } from '../../lib/storage/versions';
import { inLanes } from '../../lib/runtime/lanes';
import { createS3Client } from '../../lib/storage/s3';
import { CLAIMS_PREFIX, claimExpiredDatasets, releaseClaims } from '../../lib/storage/claims';
import { readSegment } from '../../lib/audit/store';
import type { Action } from '../../lib/auth/roles';
import { DeletionCertificateSchema } from '../../schemas/certificate';
import type { AuditEvent } from '../../schemas/audit';
import {
  SweepTotalsSchema,
  type HoldResult,
  type ScheduleState,
  type SweepReport,
  type SweepState,
  type TrialEndResult,
} from '../../schemas/retention';
import { ingestSmallPackage, opensslCmsVerify, signedBy, workerPid, tempDir, type DemoRole } from '../helpers';
import { expectDenied, failureChain, failureOf, rootApplicationFailure, sealedEvents, useClients } from '../harness';

const clients = useClients();

const eu = getJurisdiction('eu');
const us = getJurisdiction('us');

/** Runs a workflow as a person would start it: its request signed by a demo identity, on the jurisdiction's queue. */
function run<T>(
  workflowType: string,
  role: DemoRole,
  request: { action: Action; jurisdiction: string; params: unknown; meaning?: string },
): Promise<T> {
  const workflowId = `${workflowType}-${randomUUID()}`;
  return clients().client.workflow.execute<Workflow>(workflowType, {
    args: [signedBy(role, request)],
    taskQueue: ingestTaskQueue(request.jurisdiction),
    workflowId,
  }) as Promise<T>;
}

function sweep(role: DemoRole, jurisdiction: string, params: { asOf?: string; dryRun?: boolean } = {}) {
  return run<SweepReport>('retentionSweepWorkflow', role, {
    action: params.dryRun ? 'retention.preview' : 'retention.sweep',
    jurisdiction,
    params: { jurisdiction, dryRun: params.dryRun ?? false, ...(params.asOf ? { asOf: params.asOf } : {}) },
  });
}

function endTrial(jurisdiction: string, studyId: string, date: string) {
  return run<TrialEndResult>('endTrialWorkflow', 'steward', {
    action: 'trial.end',
    jurisdiction,
    params: { jurisdiction, studyId, date },
    meaning: `record the end of the trial of ${studyId}`,
  });
}

function setHold(role: DemoRole, scope: { datasetId: string } | { studyId: string }, reason: string) {
  return run<HoldResult>('setLegalHoldWorkflow', role, {
    action: 'hold.set',
    jurisdiction: 'eu',
    params: { jurisdiction: 'eu', scope, reason },
  });
}

function releaseHold(scope: { datasetId: string } | { studyId: string }, reason: string) {
  return run<HoldResult>('releaseLegalHoldWorkflow', 'dpo', {
    action: 'hold.release',
    jurisdiction: 'eu',
    params: { jurisdiction: 'eu', scope, reason },
  });
}

/** Ingests a one-table package of the study through the real pipeline; returns its catalog record. */
const ingestSmall = (
  jurisdiction: string,
  studyId: string,
  dataClass: string,
  seed: number,
  extra: { reidentificationVault?: boolean } = {},
) => ingestSmallPackage(clients(), jurisdiction, studyId, dataClass, seed, extra);

async function lockOf(bucket: string, key: string, versionId: string | null) {
  const res = await clients().s3.send(
    new GetObjectRetentionCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
  );
  return { mode: res.Retention?.Mode, until: res.Retention?.RetainUntilDate?.toISOString() };
}

async function legalHoldOf(bucket: string, key: string, versionId: string | null) {
  const res = await clients()
    .s3.send(
      new GetObjectLegalHoldCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
    )
    .catch(() => undefined);
  return res?.LegalHold?.Status ?? 'OFF';
}

async function eventsAbout(jurisdiction: string, match: (e: AuditEvent) => boolean): Promise<AuditEvent[]> {
  return (await sealedEvents(clients(), jurisdiction)).map((e) => e.event).filter(match);
}

/** A certificate from the evidence bucket, checked like `steward cert verify` does, and by OpenSSL alone. */
async function verifiedCertificate(jurisdiction: string, certificateId: string) {
  const { evidence } = getJurisdiction(jurisdiction).buckets;
  const { json, p7s } = (await readCertificateFiles(clients().s3, evidence, certificateId))!;
  const ca = await readFile(path.join(clients().state.dataDir, 'pki', 'ca.pem'), 'utf8');
  const check = checkCertificate(json, p7s, ca);
  expect(check.problems).toEqual([]);
  const certificate = DeletionCertificateSchema.parse(check.certificate);
  expect(
    auditReferenceProblem(certificate, await readSegment(clients().s3, evidence, certificate.auditChain.segment)),
  ).toBeUndefined();
  const dir = await tempDir('steward-cert-');
  await writeFile(path.join(dir, 'cert.json'), json);
  await writeFile(path.join(dir, 'cert.p7s'), p7s);
  await writeFile(path.join(dir, 'ca.pem'), ca);
  const openssl = opensslCmsVerify({
    p7s: path.join(dir, 'cert.p7s'),
    content: path.join(dir, 'cert.json'),
    ca: path.join(dir, 'ca.pem'),
  });
  expect(openssl.status, openssl.stderr).toBe(0);
  return certificate;
}

describe('retain-until', () => {
  it('is computed per jurisdiction and class, set as Object Lock on every version, and follows the end of the trial', async () => {
    const trial = await ingestSmall('eu', 'ST-RET-CT', 'clinical-trial', 1);
    // EU clinical-trial counts from the end of the trial: open until it is recorded; the lock holds the shortest it can be.
    expect(trial.retention.until).toBeNull();
    expect(trial.retention.countsFrom).toBe('end-of-trial');
    expect(trial.retention.legalBasis).toMatch(/EU CTR 536\/2014 Art\. 58/);
    expect(trial.retention.lockedUntil).toBe(addDuration(trial.createdAt, 'P25Y'));
    const rwe = await ingestSmall('eu', 'ST-RET-RW', 'real-world', 2);
    expect(rwe.retention).toMatchObject({
      until: addDuration(rwe.createdAt, 'P10Y'),
      minimum: false,
      countsFrom: 'curation',
    });
    const hipaa = await ingestSmall('us', 'ST-RET-US', 'clinical-trial', 3);
    expect(hipaa.retention).toMatchObject({ until: addDuration(hipaa.createdAt, 'P6Y'), minimum: true });
    expect(hipaa.retention.legalBasis).toMatch(/45 CFR 164\.316\(b\)\(2\)/);
    for (const record of [trial, rwe, hipaa]) {
      for (const o of record.outputs) {
        expect(await lockOf(o.bucket, o.key, o.versionId)).toEqual({
          mode: 'GOVERNANCE',
          until: record.retention.lockedUntil,
        });
      }
    }

    const ended = await endTrial('eu', 'ST-RET-CT', '2020-06-30');
    expect(ended.datasets).toEqual([
      expect.objectContaining({
        datasetId: trial.datasetId,
        until: '2045-06-30T00:00:00.000Z',
        lockedUntil: '2045-06-30T00:00:00.000Z',
      }),
    ]);
    const after = (await readDatasetRecord(clients().s3, eu.buckets.catalog, trial.datasetId))!;
    expect(after.retention).toMatchObject({ until: '2045-06-30T00:00:00.000Z', basisDate: '2020-06-30T00:00:00.000Z' });
    for (const o of after.outputs) {
      expect(await lockOf(o.bucket, o.key, o.versionId)).toEqual({
        mode: 'GOVERNANCE',
        until: '2045-06-30T00:00:00.000Z',
      });
    }
    const study = await readStudyRecord(clients().s3, eu.buckets.catalog, 'eu', 'ST-RET-CT');
    expect(study.trialEnd).toMatchObject({ date: '2020-06-30', recordedBy: { role: 'steward' } });
    const events = await eventsAbout(
      'eu',
      (e) =>
        (e.targets.studyId === 'ST-RET-CT' && e.action.startsWith('trial')) ||
        (e.action === 'retention.changed' && e.targets.datasetId === trial.datasetId),
    );
    expect(events.map((e) => e.action)).toEqual(['trial.ended', 'retention.changed']);

    const future = await failureOf(endTrial('eu', 'ST-RET-CT', '2999-01-01'));
    expect(rootApplicationFailure(future).type).toBe('InvalidInput');
  });
});

describe('sweeps, storage locks and legal holds', () => {
  it('storage refuses an early delete; a hold keeps expired data; the sweep deletes it once released, certified', async () => {
    const record = await ingestSmall('eu', 'ST-RET-OLD', 'clinical-trial', 10, { reidentificationVault: true });
    const output = record.outputs[0]!;
    // Object Lock: a plain delete of a retained version is refused, even for the stack's root credentials.
    const refused = await clients()
      .s3.send(new DeleteObjectCommand({ Bucket: output.bucket, Key: output.key, VersionId: output.versionId! }))
      .then(
        () => ({}),
        (e: unknown) => e,
      );
    expect((refused as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(403);
    const batch = await clients()
      .s3.send(
        new DeleteObjectsCommand({
          Bucket: output.bucket,
          Delete: { Objects: record.outputs.map((o) => ({ Key: o.key, VersionId: o.versionId! })) },
        }),
      )
      .catch((e: unknown) => e as { $metadata?: { httpStatusCode?: number }; Errors?: unknown[] });
    expect(('Errors' in batch && (batch.Errors?.length ?? 0) > 0) || batch.$metadata?.httpStatusCode === 403).toBe(
      true,
    );

    // The trial ended long ago: retention is over (the lock date cannot move into the past, and stays).
    await endTrial('eu', 'ST-RET-OLD', '1990-01-01');
    expect((await readDatasetRecord(clients().s3, eu.buckets.catalog, record.datasetId))!.retention.until).toBe(
      '2015-01-01T00:00:00.000Z',
    );

    // A dry run lists it as to be deleted, deleting nothing; an auditor may ask for one, not for a sweep.
    const preview = await sweep('auditor', 'eu', { dryRun: true });
    expect(preview.items).toContainEqual(expect.objectContaining({ id: record.datasetId, outcome: 'would-delete' }));
    expect(await readDatasetRecord(clients().s3, eu.buckets.catalog, record.datasetId)).toBeDefined();
    await expectDenied(sweep('auditor', 'eu'));
    // A sweep may not pretend it is later than it is.
    const later = await failureOf(sweep('steward', 'eu', { asOf: '2999-01-01T00:00:00.000Z' }));
    expect(rootApplicationFailure(later).type).toBe('InvalidInput');

    // A legal hold (not for ops to set) keeps it: in the catalog, and in storage on every version.
    await expectDenied(setHold('ops', { datasetId: record.datasetId }, 'not mine to set'));
    const hold = await setHold('dpo', { datasetId: record.datasetId }, 'litigation hold, matter 7');
    expect(hold.versions).toBe(record.outputs.length);
    for (const o of record.outputs) expect(await legalHoldOf(o.bucket, o.key, o.versionId)).toBe('ON');
    const held = await sweep('steward', 'eu');
    expect(held.items).toContainEqual(
      expect.objectContaining({ id: record.datasetId, outcome: 'held', reason: expect.stringContaining(hold.holdId) }),
    );
    expect(await readDatasetRecord(clients().s3, eu.buckets.catalog, record.datasetId)).toBeDefined();
    expect((await listVersions(clients().s3, eu.buckets.curated, `datasets/${record.datasetId}/`)).length).toBe(
      record.outputs.length,
    );
    const heldEvents = await eventsAbout(
      'eu',
      (e) => e.action === 'retention.held' && e.targets.datasetId === record.datasetId,
    );
    expect(heldEvents.length).toBeGreaterThanOrEqual(1);
    expect(heldEvents[0]!.reason).toContain(hold.holdId);

    // Released: the next sweep deletes every version, verifies, and certifies exactly what it deleted.
    const before = [
      ...(await listVersions(clients().s3, eu.buckets.curated, `datasets/${record.datasetId}/`)),
      ...(await listVersions(clients().s3, eu.buckets.catalog, `datasets/${record.datasetId}.json`)),
      ...(await listVersions(clients().s3, eu.buckets.catalog, `vault/ST-RET-OLD/${record.datasetId}.json`)),
    ];
    expect(before.filter((v) => v.key.startsWith('vault/'))).toHaveLength(1);
    const released = await releaseHold({ datasetId: record.datasetId }, 'matter 7 closed');
    expect(released.datasets).toEqual([record.datasetId]);
    for (const o of record.outputs) expect(await legalHoldOf(o.bucket, o.key, o.versionId)).toBe('OFF');
    await sweep('steward', 'eu');
    expect(await readDatasetRecord(clients().s3, eu.buckets.catalog, record.datasetId)).toBeUndefined();
    expect(await listVersions(clients().s3, eu.buckets.curated, `datasets/${record.datasetId}/`)).toEqual([]);
    expect(await listVersions(clients().s3, eu.buckets.catalog, `datasets/${record.datasetId}.json`)).toEqual([]);

    // Exactly one deletion, by whichever sweep got to it first (the schedule may run too), and one certificate.
    const deletions = await eventsAbout(
      'eu',
      (e) => e.action === 'dataset.deleted' && e.outcome === 'success' && e.targets.datasetId === record.datasetId,
    );
    expect(deletions).toHaveLength(1);
    const certificate = await verifiedCertificate('eu', deletions[0]!.targets.certificateId!);
    expect(certificate.reason).toMatchObject({
      kind: 'retention',
      legalBasis: expect.stringContaining('EU CTR 536/2014'),
    });
    expect(certificate.verification.result).toBe('passed');
    const listed = new Set(certificate.sanitized.objects.map((o) => `${o.bucket}/${o.key}@${o.versionId}`));
    for (const v of before)
      expect(listed).toContain(
        `${v.key.endsWith('.json') ? eu.buckets.catalog : eu.buckets.curated}/${v.key}@${v.versionId}`,
      );
    for (const o of record.outputs) {
      expect(certificate.sanitized.objects).toContainEqual(
        expect.objectContaining({ key: o.key, versionId: o.versionId, sha256: o.sha256, bytes: o.bytes }),
      );
    }
    // The study vault's shard for the dataset went with it.
    expect(certificate.sanitized.objects.some((o) => o.key.startsWith(`vault/ST-RET-OLD/${record.datasetId}`))).toBe(
      true,
    );
  });

  it('a study hold keeps every dataset of the study, those ingested later too, and storage holds new objects', async () => {
    const first = await ingestSmall('eu', 'ST-RET-STUDY', 'clinical-trial', 20);
    const hold = await setHold('steward', { studyId: 'ST-RET-STUDY' }, 'regulatory inspection');
    expect(hold.datasets).toEqual([first.datasetId]);
    const later = await ingestSmall('eu', 'ST-RET-STUDY', 'clinical-trial', 21);
    for (const o of later.outputs) expect(await legalHoldOf(o.bucket, o.key, o.versionId)).toBe('ON');
    await endTrial('eu', 'ST-RET-STUDY', '1990-01-01');
    const report = await sweep('dpo', 'eu');
    const heldIds = report.items.filter((i) => i.outcome === 'held').map((i) => i.id);
    expect(heldIds).toEqual(expect.arrayContaining([first.datasetId, later.datasetId]));
    const released = await releaseHold({ studyId: 'ST-RET-STUDY' }, 'inspection closed');
    expect(released.datasets.sort()).toEqual([first.datasetId, later.datasetId].sort());
    await sweep('dpo', 'eu');
    for (const id of [first.datasetId, later.datasetId]) {
      expect(await readDatasetRecord(clients().s3, eu.buckets.catalog, id)).toBeUndefined();
    }
  });
});

/** One EU dataset of `objects` random objects, curated now: no sweep claims it while a test runs. */
async function writeCurrentDataset(studyId: string, objects: number): Promise<string> {
  const [datasetId] = await writeExpiredDemoDatasets(clients().s3, eu, {
    studyId,
    datasets: 1,
    objectsPerDataset: objects,
    curatedAt: new Date().toISOString(),
  });
  return datasetId!;
}

describe('sweep authorization', () => {
  it('refuses a sweep started with saved state instead of a signed request, audits it, and deletes nothing', async () => {
    // Retention runs until about 2036; forged state claims it is 2999 and that a steward asked.
    const datasetId = await writeCurrentDataset('ST-RET-FORGED', 2);
    const workflowId = `retentionSweepWorkflow-forged-${randomUUID()}`;
    const state: SweepState = {
      sweepId: workflowId,
      jurisdiction: 'eu',
      asOf: '2999-01-01T00:00:00.000Z',
      dryRun: false,
      principal: { id: 'Nobody Signed', role: 'steward' },
      eSignature: null,
      requestId: null,
      scheduleId: null,
      startedAt: new Date().toISOString(),
      phase: 'datasets',
      cursor: null,
      batch: 0,
      totals: SweepTotalsSchema.parse(Object.fromEntries(Object.keys(SweepTotalsSchema.shape).map((k) => [k, 0]))),
      items: [],
      omitted: 0,
    };
    const forged = clients().client.workflow.execute<Workflow>('retentionSweepWorkflow', {
      args: [{ state }],
      taskQueue: ingestTaskQueue('eu'),
      workflowId,
    });
    expect(await expectDenied(forged)).toMatch(/only through its own continue-as-new/);
    expect(await readDatasetRecord(clients().s3, eu.buckets.catalog, datasetId)).toBeDefined();
    expect(await listVersions(clients().s3, eu.buckets.curated, `datasets/${datasetId}/`)).toHaveLength(2);
    const denied = await eventsAbout('eu', (e) => e.workflow?.workflowId === workflowId);
    expect(denied.map((e) => [e.action, e.outcome, e.principal])).toEqual([['request.denied', 'denied', null]]);
  });
});

describe('listing versions', () => {
  it('names every version once across pages of 1000, though storage starts each page with the previous marker', async () => {
    const prefix = `listing-test/${randomUUID()}/`;
    const folders = Array.from({ length: 105 }, (_, i) => `${prefix}d-${String(i).padStart(3, '0')}/`);
    const written = new Set<string>();
    await inLanes(folders, 8, async (folder) => {
      for (let t = 0; t < 10; t++) {
        const key = `${folder}t-${t}`;
        const put = await clients().s3.send(new PutObjectCommand({ Bucket: eu.buckets.curated, Key: key, Body: 'x' }));
        written.add(`${key}@${put.VersionId}`);
      }
    });
    // A second version of a key on the first page boundary: versions of one key may straddle it too.
    const again = await clients().s3.send(
      new PutObjectCommand({ Bucket: eu.buckets.curated, Key: `${prefix}d-099/t-9`, Body: 'y' }),
    );
    written.add(`${prefix}d-099/t-9@${again.VersionId}`);
    const names = (versions: { key: string; versionId: string | null }[]) =>
      versions.map((v) => `${v.key}@${v.versionId}`).sort();
    expect(names(await listVersions(clients().s3, eu.buckets.curated, prefix))).toEqual([...written].sort());
    const byFolder = await listVersionsOf(clients().s3, eu.buckets.curated, folders);
    expect(names([...byFolder.values()].flat())).toEqual([...written].sort());
    expect(byFolder.get(`${prefix}d-099/`)).toHaveLength(11);
  });
});

describe('cancelled hold changes', () => {
  it('a hold cancelled while storage is being held is carried through: every version held, audited once', async () => {
    // Enough versions that setting them takes a while.
    const datasetId = await writeCurrentDataset('ST-RET-HOLD-CANCEL', 300);
    const workflowId = `setLegalHoldWorkflow-cancel-${randomUUID()}`;
    const handle = await clients().client.workflow.start<Workflow>('setLegalHoldWorkflow', {
      args: [
        signedBy('dpo', {
          action: 'hold.set',
          jurisdiction: 'eu',
          params: { jurisdiction: 'eu', scope: { datasetId }, reason: 'inspection, cancelled from the UI' },
        }),
      ],
      taskQueue: ingestTaskQueue('eu'),
      workflowId,
    });
    let phase = '';
    for (let i = 0; i < 600 && !phase.startsWith('setting S3 legal hold'); i++) {
      phase = (await handle.query(progressQuery).catch(() => undefined))?.phase ?? '';
      if (!phase.startsWith('setting S3 legal hold')) await new Promise((r) => setTimeout(r, 20));
    }
    expect(phase).toBe('setting S3 legal hold on every object version');
    await handle.cancel();

    // The hold was recorded before the cancel came: it is carried through, in storage and in the audit trail.
    const result = (await handle.result()) as HoldResult;
    expect(result).toMatchObject({ action: 'set', datasets: [datasetId], versions: 300 });
    const record = (await readDatasetRecord(clients().s3, eu.buckets.catalog, datasetId))!;
    expect(record.holds.map((h) => h.holdId)).toEqual([result.holdId]);
    const versions = await listVersions(clients().s3, eu.buckets.curated, `datasets/${datasetId}/`);
    expect(versions).toHaveLength(300);
    const statuses = await Promise.all(versions.map((v) => legalHoldOf(eu.buckets.curated, v.key, v.versionId)));
    expect(statuses.filter((s) => s !== 'ON')).toEqual([]);
    const audited = await eventsAbout(
      'eu',
      (e) => e.action === 'legal-hold.set' && e.workflow?.workflowId === workflowId,
    );
    expect(audited.map((e) => [e.outcome, e.details.holdId, e.details.versions])).toEqual([
      ['success', result.holdId, 300],
    ]);
  });
});

describe('raw uploads', () => {
  it('a landing package expires 30 days after submission; a newer one stays', async () => {
    const put = (key: string, submittedAt: string) =>
      clients().s3.send(
        new PutObjectCommand({
          Bucket: us.buckets.landing,
          Key: key,
          Body: `raw ${key}`,
          Metadata: { [SUBMITTED_AT_METADATA]: submittedAt },
        }),
      );
    const old = `packages/${randomUUID().replaceAll('-', '')}/`;
    const fresh = `packages/${randomUUID().replaceAll('-', '')}/`;
    const days = (n: number) => new Date(Date.now() - n * 86_400_000).toISOString();
    await put(`${old}data/visits.csv`, days(31));
    await put(`${old}manifest.json`, days(31));
    await put(`${fresh}data/visits.csv`, days(29));

    const preview = await sweep('steward', 'us', { dryRun: true });
    expect(preview.items).toContainEqual(
      expect.objectContaining({ kind: 'package', id: old.slice(9, -1), outcome: 'would-delete' }),
    );
    expect(preview.items.some((i) => i.id === fresh.slice(9, -1))).toBe(false);

    await sweep('steward', 'us');
    expect(await listVersions(clients().s3, us.buckets.landing, old)).toEqual([]);
    expect(await listVersions(clients().s3, us.buckets.landing, fresh)).toHaveLength(1);
    const [deleted] = await eventsAbout(
      'us',
      (e) => e.action === 'package.deleted' && e.targets.packageId === old.slice(9, -1),
    );
    const certificate = await verifiedCertificate('us', deleted!.targets.certificateId!);
    expect(certificate.reason.legalBasis).toMatch(/HIPAA/);
    expect(certificate.sanitized.objects.map((o) => o.key).sort()).toEqual([
      `${old}data/visits.csv`,
      `${old}manifest.json`,
    ]);
    expect(certificate.sanitized.objects.every((o) => o.sha256 !== null)).toBe(true);
  });
});

describe('schedules', () => {
  it('exist after up; a signed trigger starts a sweep visible in Temporal; changes are audited, ops may make them', async () => {
    const shown = await describeRetentionSchedule(clients().client, 'eu');
    expect(shown).toMatchObject({ scheduleId: retentionScheduleId('eu'), paused: false, cron: ['0 2 * * *'] });
    await expectDenied(
      run<ScheduleState>('changeRetentionScheduleWorkflow', 'auditor', {
        action: 'retention.schedule',
        jurisdiction: 'eu',
        params: { jurisdiction: 'eu', change: { kind: 'pause' } },
      }),
    );
    const change = (kind: 'set' | 'pause' | 'resume' | 'trigger', extra: object = {}) =>
      run<ScheduleState>('changeRetentionScheduleWorkflow', 'ops', {
        action: 'retention.schedule',
        jurisdiction: 'eu',
        params: { jurisdiction: 'eu', change: { kind, ...extra } },
      });
    expect(await change('set', { cron: '30 3 * * 1' })).toMatchObject({ cron: ['30 3 * * 1'] });
    expect(await change('pause', { note: 'maintenance' })).toMatchObject({
      paused: true,
      note: expect.stringContaining('maintenance'),
    });
    expect(await change('resume')).toMatchObject({ paused: false });
    await change('set', { cron: '0 2 * * *' });

    const since = new Date();
    await change('trigger');
    // The scheduled run: named by the schedule, tagged by Temporal with the schedule's id.
    let started: { workflowId: string; runId: string } | undefined;
    for (let i = 0; i < 60 && !started; i++) {
      for await (const w of clients().client.workflow.list({
        query: `WorkflowType = 'retentionSweepWorkflow' AND TemporalScheduledById = '${retentionScheduleId('eu')}' AND StartTime >= '${since.toISOString()}'`,
      })) {
        started = { workflowId: w.workflowId, runId: w.runId };
      }
      if (!started) await new Promise((r) => setTimeout(r, 500));
    }
    expect(started?.workflowId).toMatch(/^retention-sweep-eu-/);
    const handle = clients().client.workflow.getHandle<Workflow>(started!.workflowId);
    const report = (await handle.result()) as SweepReport;
    expect(report).toMatchObject({ jurisdiction: 'eu', scheduleId: retentionScheduleId('eu'), dryRun: false });
    const changes = await eventsAbout(
      'eu',
      (e) => e.action === 'schedule.changed' && e.at >= since.toISOString().slice(0, 19),
    );
    expect(changes.map((e) => e.details.change)).toContain('trigger');
    expect(changes.every((e) => e.principal?.role === 'ops')).toBe(true);
  });
});

/** Starts an EU sweep as the steward, as a person would (a signed request); returns its id and handle. */
async function startSweep(name: string) {
  const workflowId = `retentionSweepWorkflow-${name}-${randomUUID()}`;
  const handle = await clients().client.workflow.start<Workflow>('retentionSweepWorkflow', {
    args: [
      signedBy('steward', {
        action: 'retention.sweep',
        jurisdiction: 'eu',
        params: { jurisdiction: 'eu', dryRun: false },
      }),
    ],
    taskQueue: ingestTaskQueue('eu'),
    workflowId,
  });
  return { workflowId, handle };
}

/** Starts an EU sweep as the steward and returns once it has claimed its first expired datasets. */
async function sweepUntilClaimed(name: string) {
  const { workflowId, handle } = await startSweep(name);
  for (let i = 0; i < 400; i++) {
    const progress = await handle.query(retentionSweepProgressQuery).catch(() => undefined);
    if (progress && progress.totals.datasetsExpired > 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { workflowId, handle };
}

/**
 * Every one of `ids` deleted exactly once, with exactly one certificate each: the one its audit event names, announced
 * by sweep `workflowId` and stored in a bundle, listing the dataset's `objects` curated objects.
 */
async function expectEachDeletedOnce(ids: string[], workflowId: string, objects: number) {
  const deleted = await eventsAbout(
    'eu',
    (e) => e.action === 'dataset.deleted' && e.outcome === 'success' && ids.includes(e.targets.datasetId ?? ''),
  );
  expect(deleted.map((e) => e.targets.datasetId).sort()).toEqual(ids);
  // The certificates of each batch are announced once, by bundle; together they name every deletion's certificate.
  const announced = (
    await eventsAbout('eu', (e) => e.action === 'certificate.issued' && e.details.sweepId === workflowId)
  ).flatMap((e) => String(e.details.certificateIds).split(' '));
  expect(announced.sort()).toEqual(deleted.map((e) => e.targets.certificateId).sort());
  for (const id of ids) {
    expect(await readDatasetRecord(clients().s3, eu.buckets.catalog, id)).toBeUndefined();
    expect(await listVersions(clients().s3, eu.buckets.curated, `datasets/${id}/`)).toEqual([]);
  }
  // In storage: exactly one certificate per dataset, the one its audit event names, listing its objects.
  const stored = new Map<string, string[]>();
  for (const object of await listObjects(clients().s3, eu.buckets.evidence, 'certificates/bundles/')) {
    const bundle = CertificateBundleSchema.parse(
      JSON.parse((await getObjectOrUndefined(clients().s3, eu.buckets.evidence, object.key))!.toString('utf8')),
    );
    for (const entry of bundle.certificates) {
      const c = DeletionCertificateSchema.parse(JSON.parse(Buffer.from(entry.json, 'base64').toString('utf8')));
      const datasetId = c.sanitized.objects[0]?.datasetId;
      if (datasetId && ids.includes(datasetId))
        stored.set(datasetId, [...(stored.get(datasetId) ?? []), c.certificateId]);
    }
  }
  for (const e of deleted) expect(stored.get(e.targets.datasetId!)).toEqual([e.targets.certificateId]);
  for (const e of deleted.slice(0, 3)) {
    const c = await verifiedCertificate('eu', e.targets.certificateId!);
    expect(c.sanitized.objects.filter((o) => o.bucket === eu.buckets.curated)).toHaveLength(objects);
  }
}

describe('crash safety', () => {
  // Work lost with the worker comes back only when Temporal times it out (30 s per activity: heartbeats, the catalog
  // writer's and the audit trail's changes), and those waits can follow one another: a longer limit than the suite's.
  it('a worker killed mid-sweep: every expired dataset deleted once, every certificate issued once', async () => {
    const ids = await writeExpiredDemoDatasets(clients().s3, eu, {
      studyId: 'ST-RET-KILL',
      datasets: 60,
      objectsPerDataset: 3,
    });
    // Kill the EU worker as soon as the sweep has started deleting.
    const { workflowId, handle } = await sweepUntilClaimed('kill');
    const victim = await workerPid('eu');
    expect(isAlive(victim)).toBe(true);
    process.kill(victim!, 'SIGKILL');
    await handle.result();
    expect(await workerPid('eu')).not.toBe(victim);

    await expectEachDeletedOnce(ids, workflowId, 3);
  }, 300_000);

  it('a sweep of many pages continues as new before its history grows large, and deletes each dataset once', async () => {
    const ids = await writeExpiredDemoDatasets(clients().s3, eu, {
      studyId: 'ST-RET-LONG',
      datasets: 700,
      objectsPerDataset: 1,
    });
    const { workflowId, handle } = await startSweep('long');
    const report = (await handle.result()) as SweepReport;
    // The suite's Temporal suggests continue-as-new after 100 events (test/global-setup.ts): four pages take more.
    const first = await clients().client.workflow.getHandle(workflowId, handle.firstExecutionRunId).describe();
    expect(first.status.name).toBe('CONTINUED_AS_NEW');
    expect(report.totals.datasetsDeleted).toBeGreaterThanOrEqual(ids.length);
    expect(report.totals.certificates).toBe(report.totals.datasetsDeleted + report.totals.packagesDeleted);
    await expectEachDeletedOnce(ids, workflowId, 1);
  });

  it('a cancelled sweep finishes and certifies the batches it claimed, deletes nothing else, and releases its claims', async () => {
    const ids = await writeExpiredDemoDatasets(clients().s3, eu, {
      studyId: 'ST-RET-CANCEL',
      datasets: 450,
      objectsPerDataset: 2,
    });
    // Cancel as soon as the first page is claimed: its deletion is under way, the other pages are not claimed yet.
    const { workflowId, handle } = await sweepUntilClaimed('cancel');
    await handle.cancel();
    expect(failureChain(await failureOf(handle.result()))).toEqual(['WorkflowFailedError', 'CancelledFailure']);

    // Each dataset is either wholly deleted with a certificate from this sweep, or wholly kept.
    const stopped = await eventsAbout(
      'eu',
      (e) => e.action === 'retention.swept' && e.outcome === 'failure' && e.workflow?.workflowId === workflowId,
    );
    expect(stopped).toHaveLength(1);
    expect(stopped[0]!.reason).toMatch(/^sweep cancelled/);
    const certified = new Map(
      (
        await eventsAbout(
          'eu',
          (e) => e.action === 'dataset.deleted' && e.outcome === 'success' && e.details.sweepId === workflowId,
        )
      ).map((e) => [e.targets.datasetId!, e.targets.certificateId!]),
    );
    let kept = 0;
    for (const id of ids) {
      const record = await readDatasetRecord(clients().s3, eu.buckets.catalog, id);
      const versions = await listVersions(clients().s3, eu.buckets.curated, `datasets/${id}/`);
      if (record) {
        kept += 1;
        expect(versions.filter((v) => !v.deleteMarker)).toHaveLength(2);
      } else {
        expect(versions).toEqual([]);
        expect(certified.has(id)).toBe(true);
      }
    }
    expect(certified.size).toBeGreaterThan(0);
    expect(kept).toBeGreaterThan(0);
    expect(certified.size + kept).toBe(ids.length);
    await verifiedCertificate('eu', certified.values().next().value!);
    expect(await listObjects(clients().s3, eu.buckets.catalog, `${CLAIMS_PREFIX}${workflowId}/`)).toEqual([]);
  });

  it("two sweeps never claim the same dataset, and a sweep reads only the other sweeps' claims", async () => {
    // A catalog of its own, so that no other sweep in the suite sees these claims.
    const catalog = `steward-claims-test-${randomUUID().slice(0, 8)}`;
    const s3 = createS3Client(clients().state.s3);
    await s3.send(new CreateBucketCommand({ Bucket: catalog }));
    const ids = await writeExpiredDemoDatasets(
      s3,
      { ...eu, buckets: { ...eu.buckets, catalog } },
      { studyId: 'ST-RET-CLAIMS', datasets: 6, objectsPerDataset: 0 },
    );
    // Every read of a sweep's claim files, by sweep.
    const claimReads = new Map<string, number>();
    s3.middlewareStack.add(
      (next, context) => async (args) => {
        const key = (args.input as { Key?: string }).Key ?? '';
        if (context.commandName === 'GetObjectCommand' && key.startsWith(CLAIMS_PREFIX)) {
          const sweep = key.slice(CLAIMS_PREFIX.length).split('/')[0]!;
          claimReads.set(sweep, (claimReads.get(sweep) ?? 0) + 1);
        }
        return next(args);
      },
      { step: 'initialize' },
    );
    const asOf = new Date().toISOString();
    const claimAll = async (sweepId: string) => {
      const claimed: string[] = [];
      let kept = 0;
      let after: string | null = null;
      for (let batch = 0; ; batch++) {
        const scan = await claimExpiredDatasets(s3, catalog, 'eu', {
          sweepId,
          batch,
          asOf,
          now: asOf,
          after,
          limit: 2,
        });
        claimed.push(...scan.expired.map((d) => d.datasetId));
        kept += scan.kept;
        after = scan.next;
        if (after === null) return { claimed, kept, batches: batch + 1 };
      }
    };
    try {
      const first = await claimAll('sweep-a');
      expect([...first.claimed].sort()).toEqual([...ids].sort());
      // Its only reads of its own claims: each batch looking for itself (a retry finds its earlier claim), never the
      // batches before it.
      expect(first.batches).toBe(3);
      expect(claimReads.get('sweep-a')).toBe(3);

      claimReads.clear();
      const second = await claimAll('sweep-b');
      expect(second.claimed).toEqual([]);
      expect(second.kept).toBe(ids.length);
      // The second sweep read the first one's three claim files once per batch of its own.
      expect(claimReads.get('sweep-a')).toBe(3 * second.batches);

      // A batch claimed again is the same batch.
      const again = await claimExpiredDatasets(s3, catalog, 'eu', {
        sweepId: 'sweep-a',
        batch: 0,
        asOf,
        now: asOf,
        after: null,
        limit: 2,
      });
      expect(again.expired.map((d) => d.datasetId)).toEqual(first.claimed.slice(0, 2));
    } finally {
      await releaseClaims(s3, catalog, 'sweep-a');
      await releaseClaims(s3, catalog, 'sweep-b');
      s3.destroy();
    }
  });
});
