import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ErrorType,
  ingestTaskQueue,
  preprocessJobWorkflowId,
  SEARCH_ATTRIBUTES,
  subjectRequestDecisionUpdate,
  subjectRequestStatusQuery,
  subjectRequestWorkflowId,
} from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import { tokenize } from '../../lib/crypto/pseudonymize';
import { signedInput } from '../../lib/client/request';
import { decideSubjectRequest, listSubjectRequests } from '../../lib/client/subject-requests';
import { readLocalPackage, submitPackage } from '../../lib/client/submit';
import { verifyLocalPackage } from '../../lib/package/local';
import { ensureTool } from '../../lib/stack/tools';
import { readOpenRequest, readRestriction } from '../../lib/storage/subjects';
import { loadPipeline } from '../../lib/preprocess/load-pipeline';
import { shiftIso } from '../../lib/subject-rights/deadlines';
import {
  deleteAllVersions,
  deleteOtherVersions,
  listObjects,
  putStream,
  readObjectText,
} from '../../lib/storage/objects';
import { rewriteUploadWithoutSubject } from '../../lib/subject-rights/upload-rewrite';
import { accessPackagePrefix, certificateKeys, exportRecordKey, openRequestsPrefix } from '../../lib/storage/layout';
import { listDatasetRecords, readDatasetRecord } from '../../lib/storage/catalog';
import { checkAccessPackage } from '../../lib/subject-rights/access-check';
import { lookupTokens, readManifest, SUBJECT_INDEX_PREFIX } from '../../lib/subject-rights/subject-index';
import { getJson, putJson } from '../../lib/storage/json';
import { ExportRecordSchema, SubjectIndexManifestSchema } from '../../schemas/subject-request';
import type { SweepReport } from '../../schemas/retention';
import type { AuditEvent } from '../../schemas/audit';
import type { PreprocessJobResult } from '../../schemas/preprocess';
import type { DecisionParams, SubjectRequestKind, SubjectRequestStatus } from '../../schemas/subject-request';
import type { subjectRequestWorkflow } from '../../workflows';
import {
  containsAny,
  identity,
  importConsentCsv,
  ingestDir,
  objectVersions,
  opensslCmsVerify,
  rawHistory,
  readParquet,
  sha256,
  signedBy,
  smallMetadata,
  stackState,
  stackSteward,
  tempDir,
  writeBag,
  writeJsonPackage,
  type DemoRole,
} from '../helpers';
import { failureOf, payloadKeyOnlyClient, refusal, rootApplicationFailure, sealedEvents, useClients } from '../harness';
import { spawnSync } from 'node:child_process';

// Subject requests as a DPO files and decides them, and as anyone who reaches Temporal directly would try them.

const clients = useClients();
const FILING = { access: 'dsr.access', erasure: 'dsr.erase', restriction: 'dsr.restrict' } as const;
const STUDY = `ST-DSR-${randomUUID().slice(0, 6)}`;
/** A second study of the same subject, without a re-identification vault. */
const STUDY_NO_VAULT = `ST-DSR-NV-${randomUUID().slice(0, 6)}`;
let dataset: string;
let datasetNoVault: string;
let pipelineFile: string;

const today = () => new Date().toISOString();

async function file(
  kind: SubjectRequestKind,
  subjectId: string,
  options: { jurisdiction?: string; received?: string; studyId?: string; role?: DemoRole } = {},
): Promise<{ requestId: string; handle: WorkflowHandle<typeof subjectRequestWorkflow> }> {
  const jurisdiction = options.jurisdiction ?? 'eu';
  const requestId = `dsr-test-${randomUUID()}`;
  const handle = await clients().client.workflow.start<typeof subjectRequestWorkflow>('subjectRequestWorkflow', {
    taskQueue: ingestTaskQueue(jurisdiction),
    workflowId: subjectRequestWorkflowId(jurisdiction, requestId),
    args: [
      signedBy(options.role ?? 'dpo', {
        action: FILING[kind],
        jurisdiction,
        requestId,
        params: {
          subjectId,
          received: options.received ?? today(),
          reason: 'the subject wrote to the DPO',
          ...(options.studyId ? { studyId: options.studyId } : {}),
        },
      }),
    ],
  });
  return { requestId, handle };
}

/** The request's status once `ready` holds (the workflow's own query; polled, as the CLI does). */
async function statusWhen(
  handle: WorkflowHandle,
  ready: (s: SubjectRequestStatus) => boolean,
  timeoutMs = 60_000,
): Promise<SubjectRequestStatus> {
  const until = Date.now() + timeoutMs;
  let last: SubjectRequestStatus | undefined;
  for (;;) {
    last = await handle.query(subjectRequestStatusQuery).catch(() => last);
    if (last && ready(last)) return last;
    if (Date.now() > until) throw new Error(`request never got there; last: ${JSON.stringify(last?.state)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const filed = (s: SubjectRequestStatus) => s.steps.some((x) => x.step === 'received' || x.step === 'linked');

async function decide(
  requestId: string,
  params: DecisionParams,
  options: { jurisdiction?: string; role?: DemoRole } = {},
): Promise<SubjectRequestStatus> {
  const jurisdiction = options.jurisdiction ?? 'eu';
  return decideSubjectRequest(clients().client, identity(options.role ?? 'dpo'), {
    requestId,
    jurisdiction,
    workflowId: subjectRequestWorkflowId(jurisdiction, requestId),
    params,
    meaning: `${params.decision} the request`,
  });
}

async function eventsOf(requestId: string, jurisdiction = 'eu'): Promise<AuditEvent[]> {
  return (await sealedEvents(clients(), jurisdiction))
    .map((e) => e.event)
    .filter((e) => e.targets.requestId === requestId);
}

const verifyIdentity = (requestId: string, jurisdiction?: string) =>
  decide(
    requestId,
    {
      decision: 'verify-identity',
      requestId,
      method: 'id-document',
      evidenceRef: 'DPO-CASE-2026-117',
      reason: 'passport checked at the clinic',
    },
    jurisdiction ? { jurisdiction } : {},
  );

async function runSecondaryResearchJob(datasetId = dataset): Promise<PreprocessJobResult> {
  const requestId = `dsr-pre-${randomUUID()}`;
  const pipeline = await loadPipeline(pipelineFile, {});
  return (await clients().client.workflow.execute('preprocessJobWorkflow', {
    taskQueue: ingestTaskQueue('eu'),
    workflowId: preprocessJobWorkflowId('eu', requestId),
    args: [
      signedBy('steward', {
        action: 'preprocess.run',
        jurisdiction: 'eu',
        requestId,
        params: { datasetIds: [datasetId], pipeline, parameters: {}, seed: 1, gpu: false },
      }),
    ],
  })) as PreprocessJobResult;
}

beforeAll(async () => {
  await importConsentCsv(
    clients(),
    [
      'subject_id,scopes,status,icf_version,given_on',
      'RX-SUBJECT-0001,primary-research;secondary-research,given,v1,2024-01-01',
      'RX-SUBJECT-0002,primary-research;secondary-research,given,v1,2024-01-01',
    ].join('\n'),
    'eu',
    STUDY,
  );
  const rows = [
    'subject_id,full_name,visit_date,score,note',
    'RX-SUBJECT-0001,Rae One,2025-01-02,10,',
    'RX-SUBJECT-0002,Rob Two,2025-01-03,20,',
    'RX-SUBJECT-0001,Rae One,2025-02-02,30,',
  ].join('\n');
  const dir = await writeJsonPackage(await tempDir(), smallMetadata({ studyId: STUDY, reidentificationVault: true }), {
    'data/visits.csv': rows,
  });
  dataset = (await ingestDir(clients(), dir)).datasetId;
  await importConsentCsv(
    clients(),
    'subject_id,scopes,status,icf_version,given_on\nRX-SUBJECT-0001,primary-research,given,v2,2024-03-01\n',
    'eu',
    STUDY_NO_VAULT,
  );
  const other = await writeJsonPackage(await tempDir(), smallMetadata({ studyId: STUDY_NO_VAULT }), {
    'data/visits.csv': 'subject_id,full_name,visit_date,score,note\nRX-SUBJECT-0001,Rae One,2025-03-03,7,\n',
  });
  datasetNoVault = (await ingestDir(clients(), other)).datasetId;
  pipelineFile = path.join(await tempDir('steward-pipeline-'), 'scores.json');
  await writeFile(
    pipelineFile,
    JSON.stringify({
      name: 'scores-standardize',
      version: '1.0.0',
      executor: 'builtin',
      purpose: 'secondary-research',
      steps: [{ op: 'standardize', columns: ['score'] }],
    }),
  );
});

describe('a restriction of processing (GDPR Art. 18)', () => {
  it('is filed, identity-verified by an e-signed step, kept out of preprocessing until lifted, and audited', async () => {
    const { requestId, handle } = await file('restriction', 'RX-SUBJECT-0001', { studyId: STUDY });
    const received = await statusWhen(handle, filed);
    expect(received).toMatchObject({ state: 'received', kind: 'restriction', studyId: STUDY, overdue: false });
    // GDPR: one month from receipt, two more at most.
    expect(received.dueAt).toBe(shiftIso(received.receivedAt, 'P1M'));
    expect(received.latestDueAt).toBe(shiftIso(received.receivedAt, 'P3M'));

    const verified = await verifyIdentity(requestId);
    expect(verified.identity).toMatchObject({ method: 'id-document', evidenceRef: 'DPO-CASE-2026-117' });
    expect(verified.steps.at(-1)!.eSignature).toMatchObject({ role: 'dpo', meaning: 'verify-identity the request' });
    const restricted = await statusWhen(handle, (s) => s.state === 'restricted');
    expect(restricted.outcome).toMatchObject({ studies: 1, tokens: 1, cryptoErasedVersions: 0 });

    // The catalog holds the restriction by token only; visibility shows the state, never the subject.
    const key = await clients().keys.studyKey('eu', STUDY);
    const token = tokenize(key.material, key.version, 'RX-SUBJECT-0001');
    const record = await readRestriction(clients().s3, getJurisdiction('eu').buckets.catalog, requestId);
    expect(record).toMatchObject({ requestId, studies: [{ studyId: STUDY, tokens: [token] }], liftedAt: null });
    const attrs = (await handle.describe()).typedSearchAttributes;
    expect(attrs.get(SEARCH_ATTRIBUTES.requestState)).toBe('restricted');
    expect(attrs.get(SEARCH_ATTRIBUTES.requestKind)).toBe('dsr-restriction');
    expect(attrs.get(SEARCH_ATTRIBUTES.requestDeadline)?.toISOString()).toBe(received.dueAt);
    const raw = await rawHistory(clients().client, handle.workflowId);
    expect(containsAny([raw], ['RX-SUBJECT-0001', 'Rae One'])).toEqual([]);

    // Preprocessing leaves the subject out, counted as restricted.
    const during = await runSecondaryResearchJob();
    expect(during.document.consent.byReason).toEqual({ restricted: 1 });
    expect(during.document.inputs[0]).toMatchObject({ rowsIn: 3, rowsExcluded: 2 });

    const lifted = await decide(requestId, { decision: 'lift', requestId, reason: 'the accuracy dispute is settled' });
    expect(lifted.state).toBe('completed');
    expect((await handle.result()).state).toBe('completed');
    const after = await runSecondaryResearchJob();
    expect(after.document.consent.byReason).toEqual({});
    expect(after.document.inputs[0]).toMatchObject({ rowsIn: 3, rowsExcluded: 0 });
    expect(await readRestriction(clients().s3, getJurisdiction('eu').buckets.catalog, requestId)).toMatchObject({
      liftedAt: expect.any(String),
      liftReason: 'the accuracy dispute is settled',
    });

    const events = await eventsOf(requestId);
    expect(events.map((e) => [e.action, e.principal?.role ?? null])).toEqual([
      ['dsr.received', 'dpo'],
      ['dsr.identity-verified', 'dpo'],
      ['dsr.restricted', null],
      ['dsr.lifted', 'dpo'],
      ['dsr.completed', null],
    ]);
    expect(events.find((e) => e.action === 'dsr.restricted')!.targets.subjectTokens).toEqual([token]);
    expect(events.find((e) => e.action === 'dsr.identity-verified')!.details).toMatchObject({
      method: 'id-document',
      evidenceRef: 'DPO-CASE-2026-117',
    });
  });
});

/** A curated table's rows as plain values (dates as YYYY-MM-DD, integers as numbers), as a package's JSON holds them. */
function plain(row: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(row).map(([k, v]) => [
      k,
      v instanceof Date ? v.toISOString().slice(0, 10) : typeof v === 'bigint' ? Number(v) : v,
    ]),
  );
}

describe('a restriction and a key rotation', () => {
  it('keeps the subject out of processing in a package ingested under the new key version', async () => {
    const study = `ST-DSR-RK-${randomUUID().slice(0, 6)}`;
    const subject = `RK-${randomUUID()}`;
    await importConsentCsv(
      clients(),
      [
        'subject_id,scopes,status,icf_version,given_on',
        `${subject},primary-research;secondary-research,given,v1,2024-01-01`,
        'RK-OTHER-0002,primary-research;secondary-research,given,v1,2024-01-01',
      ].join('\n'),
      'eu',
      study,
    );
    const ingest = async (score: number) =>
      (
        await ingestDir(
          clients(),
          await writeJsonPackage(await tempDir(), smallMetadata({ studyId: study }), {
            'data/visits.csv': [
              'subject_id,full_name,visit_date,score,note',
              `${subject},Ria One,2025-01-02,${score},`,
              `RK-OTHER-0002,Rob Two,2025-01-03,${score + 1},`,
            ].join('\n'),
          }),
        )
      ).datasetId;
    await ingest(1);
    const { requestId, handle } = await file('restriction', subject, { studyId: study });
    await statusWhen(handle, filed);
    await verifyIdentity(requestId);
    await statusWhen(handle, (s) => s.state === 'restricted');
    const rotated = await clients().client.workflow.execute('rotateStudyKeyWorkflow', {
      taskQueue: ingestTaskQueue('eu'),
      workflowId: `test-rotate-${randomUUID()}`,
      args: [
        signedBy('steward', {
          action: 'keys.rotate',
          jurisdiction: 'eu',
          params: { jurisdiction: 'eu', studyId: study },
        }),
      ],
    });
    expect(rotated).toMatchObject({ currentVersion: 2 });
    // The restriction names the subject's v1 token; this package keys them under v2.
    const later = await ingest(10);
    expect((await readDatasetRecord(clients().s3, getJurisdiction('eu').buckets.catalog, later))!.keyVersions).toEqual([
      2,
    ]);
    const job = await runSecondaryResearchJob(later);
    expect(job.document.consent.byReason).toEqual({ restricted: 1 });
    expect(job.document.inputs[0]).toMatchObject({ rowsIn: 2, rowsExcluded: 1 });
  });
});

describe('an access request (GDPR Art. 15)', () => {
  it('packages exactly the subject’s rows of every study, signed; dsr export downloads and checks it; OpenSSL verifies it', async () => {
    const subject = 'RX-SUBJECT-0001';
    const { requestId, handle } = await file('access', subject);
    await statusWhen(handle, filed);
    // Nothing is disclosed before the identity is verified.
    const exportsBucket = getJurisdiction('eu').buckets.exports;
    expect(await listObjects(clients().s3, exportsBucket, accessPackagePrefix(requestId))).toEqual([]);
    await verifyIdentity(requestId);
    const done = await handle.result();
    expect(done.state).toBe('completed');

    const dpo = path.join(stackState().dataDir, 'identities', 'dpo');
    const out = path.join(await tempDir('steward-access-'), 'package');
    const exported = stackSteward('--identity', dpo, 'dsr', 'export', requestId, '--out', out);
    expect(exported.code, exported.stderr).toBe(0);
    const ca = path.join(stackState().dataDir, 'pki', 'ca.pem');
    const openssl = opensslCmsVerify({
      p7s: path.join(out, 'manifest.json.p7s'),
      content: path.join(out, 'manifest.json'),
      ca,
    });
    expect(openssl.status, openssl.stderr).toBe(0);

    // The oracle, by reading every table of both studies (preprocessing outputs of earlier tests included): each
    // dataset holding the subject is in the package with exactly the subject's rows, re-identified where the study
    // keeps a vault, under the token otherwise.
    const catalog = getJurisdiction('eu').buckets.catalog;
    const expected = { datasets: 0, rows: 0, reidentified: 0 };
    for (const record of await listDatasetRecords(clients().s3, catalog)) {
      if (record.studyId !== STUDY && record.studyId !== STUDY_NO_VAULT) continue;
      const key = await clients().keys.studyKey('eu', record.studyId);
      const token = tokenize(key.material, key.version, subject);
      for (const output of record.outputs) {
        const stored = (await readParquet(clients().s3, output.bucket, output.key)).rows.filter(
          (r) => r.subject_id === token,
        );
        const packagedFile = path.join(out, 'data', record.datasetId, `${output.table}.json`);
        if (stored.length === 0) {
          expect(existsSync(packagedFile)).toBe(false);
          continue;
        }
        expected.datasets += 1;
        expected.rows += stored.length;
        const shown = record.studyId === STUDY ? subject : token;
        if (record.studyId === STUDY) expected.reidentified += 1;
        const packaged = JSON.parse(await readFile(packagedFile, 'utf8')) as Record<string, unknown>[];
        expect(packaged).toEqual(stored.map((r) => plain({ ...r, subject_id: shown })));
        const csv = await readFile(packagedFile.replace(/\.json$/, '.csv'), 'utf8');
        expect(csv.trim().split('\n')).toHaveLength(stored.length + 1);
      }
    }
    expect(expected.datasets).toBeGreaterThanOrEqual(2);
    expect(done.outcome).toMatchObject({
      datasets: expected.datasets,
      rows: expected.rows,
      reidentifiedDatasets: expected.reidentified,
    });
    const facts = JSON.parse(await readFile(path.join(out, 'facts.json'), 'utf8'));
    const vaultless = facts.datasets.find((d: { datasetId: string }) => d.datasetId === datasetNoVault);
    expect(vaultless).toMatchObject({ identified: 'tokens', purpose: 'primary-research', rows: 1 });
    expect(vaultless.note).toContain('keeps no re-identification vault entry');
    expect(vaultless.retention).toMatchObject({ duration: 'P25Y' });
    expect(vaultless.source).toMatchObject({ system: 'test-edc' });
    const consent = JSON.parse(await readFile(path.join(out, 'consent.json'), 'utf8')) as Record<string, unknown>[];
    expect(consent.map((c) => [c.studyId, c.icfVersion])).toEqual(
      expect.arrayContaining([
        [STUDY, 'v1'],
        [STUDY_NO_VAULT, 'v2'],
      ]),
    );
    expect(JSON.stringify(consent)).not.toContain('v1.');

    // Nothing of another subject; a file altered after signing fails the check.
    const files = new Map<string, Buffer>();
    const walk = async (dir: string, base = ''): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const rel = base ? `${base}/${entry.name}` : entry.name;
        if (entry.isDirectory()) await walk(path.join(dir, entry.name), rel);
        else files.set(rel, await readFile(path.join(dir, entry.name)));
      }
    };
    await walk(out);
    expect(containsAny([...files.values()], ['RX-SUBJECT-0002', 'Rob Two'])).toEqual([]);
    expect(checkAccessPackage(files, await readFile(ca, 'utf8')).problems).toEqual([]);
    const csvPath = `data/${dataset}/visits.csv`;
    files.set(csvPath, Buffer.concat([files.get(csvPath)!, Buffer.from('RX-SUBJECT-0002,2025-01-03,20,\n')]));
    expect(checkAccessPackage(files, await readFile(ca, 'utf8')).problems).toEqual([
      `${csvPath}: SHA-256 differs from the manifest (altered)`,
    ]);

    const events = await eventsOf(requestId);
    expect(events.map((e) => e.action)).toEqual([
      'dsr.received',
      'dsr.identity-verified',
      'dsr.disclosed',
      'dsr.completed',
    ]);
    expect(events.find((e) => e.action === 'dsr.disclosed')!.details).toMatchObject({
      datasets: expected.datasets,
      rows: expected.rows,
    });
  });
});

describe('an access package past its expiry', () => {
  const sweep = (params: { dryRun: boolean; asOf?: string }) =>
    clients().client.workflow.execute('retentionSweepWorkflow', {
      taskQueue: ingestTaskQueue('eu'),
      workflowId: `dsr-sweep-${randomUUID()}`,
      args: [
        signedBy('steward', {
          action: params.dryRun ? 'retention.preview' : 'retention.sweep',
          jurisdiction: 'eu',
          params: { jurisdiction: 'eu', ...params },
        }),
      ],
    }) as Promise<SweepReport>;

  it('is swept like everything else: every version deleted with its record, certified, and gone from the index', async () => {
    const subject = 'RX-SUBJECT-0002';
    const { requestId, handle } = await file('access', subject, { studyId: STUDY });
    await statusWhen(handle, filed);
    await verifyIdentity(requestId);
    expect((await handle.result()).state).toBe('completed');
    const eu = getJurisdiction('eu');
    const prefix = accessPackagePrefix(requestId);
    expect((await listObjects(clients().s3, eu.buckets.exports, prefix)).length).toBeGreaterThan(0);

    // A dry run as of a month later lists it; nothing is deleted.
    const later = new Date(Date.now() + 31 * 86_400_000).toISOString();
    const preview = await sweep({ dryRun: true, asOf: later });
    expect(preview.items).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'export', id: requestId, outcome: 'would-delete' })]),
    );
    expect((await listObjects(clients().s3, eu.buckets.exports, prefix)).length).toBeGreaterThan(0);

    // Thirty days on (its record's expiry moved to the past), the sweep deletes it and certifies the deletion.
    const recordKey = exportRecordKey(requestId);
    const record = (await getJson(clients().s3, eu.buckets.catalog, recordKey, ExportRecordSchema))!;
    await putJson(clients().s3, eu.buckets.catalog, recordKey, ExportRecordSchema, {
      ...record,
      expiresAt: new Date(Date.now() - 60_000).toISOString(),
    });
    const report = await sweep({ dryRun: false });
    const item = report.items.find((i) => i.kind === 'export' && i.id === requestId);
    expect(item).toMatchObject({ outcome: 'deleted', rule: 'access-export' });
    expect(report.totals.exportsDeleted).toBeGreaterThanOrEqual(1);
    expect(await listObjects(clients().s3, eu.buckets.exports, prefix)).toEqual([]);
    expect(await objectVersions(clients().s3, eu.buckets.exports, prefix)).toBe(0);
    expect(await getJson(clients().s3, eu.buckets.catalog, recordKey, ExportRecordSchema)).toBeUndefined();
    const verified = stackSteward('cert', 'verify', item!.certificateId!);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const key = await clients().keys.studyKey('eu', STUDY);
    const places = await lookupTokens({ s3: clients().s3, jurisdiction: eu }, [
      tokenize(key.material, key.version, subject),
    ]);
    expect([...places.places.values()].filter((p) => p.place.kind === 'export')).toEqual([]);
  });
});

describe('an erasure request (GDPR Art. 17)', () => {
  it('rewrites every table without the subject, deletes older versions, keeps trial records with their basis, tombstones, certifies', async () => {
    const study = `ST-DSR-E-${randomUUID().slice(0, 6)}`;
    const subject = 'EX-SUBJECT-0001';
    await importConsentCsv(
      clients(),
      [
        'subject_id,scopes,status,icf_version,given_on',
        `${subject},primary-research,given,v1,2024-01-01`,
        'EX-OTHER-0002,primary-research,given,v1,2024-01-01',
        'EX-OTHER-0003,primary-research,given,v1,2024-01-01',
      ].join('\n'),
      'eu',
      study,
    );
    const rows = [
      'subject_id,full_name,visit_date,score,note',
      `${subject},Eve One,2025-01-02,1,`,
      'EX-OTHER-0002,Oz Two,2025-01-03,2,',
      `${subject},Eve One,2025-02-02,3,`,
      'EX-OTHER-0003,Tim Three,2025-01-04,4,',
    ].join('\n');
    const ingest = async (dataClass: string, table = rows) =>
      (
        await ingestDir(
          clients(),
          await writeJsonPackage(
            await tempDir(),
            smallMetadata({ studyId: study, dataClass, reidentificationVault: true }),
            { 'data/visits.csv': table },
          ),
        )
      ).datasetId;
    const realWorld = await ingest('real-world');
    const trial = await ingest('clinical-trial');

    const { requestId, handle } = await file('erasure', subject, { studyId: study });
    await statusWhen(handle, filed);
    await verifyIdentity(requestId);
    expect((await handle.query(subjectRequestStatusQuery)).state).toBe('pending-approval');
    const approved = await decide(requestId, { decision: 'approve', requestId, reason: 'no ground to refuse' });
    expect(approved.approval).toMatchObject({ role: 'dpo' });
    const done = await handle.result();
    expect(done.state).toBe('completed-with-exemptions');
    // Erased: the real-world table and its raw upload. Kept: the trial table and its raw upload, the consent records
    // and the consent file they were imported from, the vault (the trial records stay attributable).
    expect(done.outcome).toMatchObject({ erased: 2, kept: 5, rowsRemoved: 2, verified: true });
    const landing = getJurisdiction('eu').buckets.landing;
    const uploadOf = async (datasetId: string) =>
      (await readDatasetRecord(clients().s3, getJurisdiction('eu').buckets.catalog, datasetId))!.lineage.landing.prefix;
    expect(await listObjects(clients().s3, landing, await uploadOf(realWorld))).toEqual([]);
    expect((await listObjects(clients().s3, landing, await uploadOf(trial))).length).toBeGreaterThan(0);

    // The real-world table: a new version without the subject's two rows, every other row intact, no older version.
    const catalog = getJurisdiction('eu').buckets.catalog;
    const key = await clients().keys.studyKey('eu', study);
    const token = tokenize(key.material, key.version, subject);
    const erasedRecord = (await readDatasetRecord(clients().s3, catalog, realWorld))!;
    const out = erasedRecord.outputs[0]!;
    const now = (await readParquet(clients().s3, out.bucket, out.key)).rows;
    expect(now.map((r) => Number(r.score))).toEqual([2, 4]);
    expect(now.some((r) => r.subject_id === token)).toBe(false);
    expect(erasedRecord.erasures).toMatchObject([{ requestId, table: 'visits', rowsRemoved: 2 }]);
    expect(erasedRecord.erasures[0]!.after).toMatchObject({ versionId: out.versionId, sha256: out.sha256, rows: 2 });
    expect(await objectVersions(clients().s3, out.bucket, out.key)).toBe(1);
    // The trial table is kept, untouched, under its duty to keep.
    const trialOut = (await readDatasetRecord(clients().s3, catalog, trial))!.outputs[0]!;
    expect(
      (await readParquet(clients().s3, trialOut.bucket, trialOut.key)).rows.filter((r) => r.subject_id === token),
    ).toHaveLength(2);

    // One certificate for the request: OpenSSL and `steward cert verify` accept it, and it lists every item.
    const evidence = getJurisdiction('eu').buckets.evidence;
    const certificateId = String(done.outcome.certificateId);
    const keys = certificateKeys(certificateId);
    const dir = await tempDir('steward-cert-');
    const json = (await readObjectText(clients().s3, evidence, keys.json)) as Buffer;
    await writeFile(path.join(dir, 'c.json'), json);
    await writeFile(path.join(dir, 'c.p7s'), (await readObjectText(clients().s3, evidence, keys.p7s)) as Buffer);
    const ca = path.join(stackState().dataDir, 'pki', 'ca.pem');
    const openssl = opensslCmsVerify({ p7s: path.join(dir, 'c.p7s'), content: path.join(dir, 'c.json'), ca });
    expect(openssl.status, openssl.stderr).toBe(0);
    const verified = stackSteward('cert', 'verify', certificateId);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const certificate = JSON.parse(json.toString('utf8'));
    expect(certificate.reason).toMatchObject({ kind: 'erasure' });
    expect(certificate.approvedBy).toMatchObject([{ role: 'dpo', meaning: 'approve the request' }]);
    const items = certificate.subjectRequest.items as {
      itemId: string;
      decision: string;
      legalBasis: string;
      object: { before: { rows: number }; after: { rows: number } | null } | null;
    }[];
    expect(items.find((i) => i.itemId === `${realWorld}/visits`)).toMatchObject({
      decision: 'erased',
      object: { before: { rows: 4 }, after: { rows: 2 } },
    });
    expect(items.find((i) => i.itemId === `${trial}/visits`)!.legalBasis).toContain('EU CTR 536/2014 Art. 58');
    expect(items.find((i) => i.itemId === `consent/${study}`)).toMatchObject({ decision: 'kept' });
    expect(items.find((i) => i.itemId === `vault/${study}`)).toMatchObject({ decision: 'kept' });
    const uploads = items.filter((i) => i.itemId.startsWith('upload/landing/') && !i.itemId.includes('/consent/'));
    expect(uploads.map((i) => i.decision).sort()).toEqual(['erased', 'kept']);
    expect(uploads.find((i) => i.decision === 'kept')!.legalBasis).toContain(`kept with dataset ${trial}`);
    expect(certificate.subjectRequest.verification).toMatchObject({ passed: true });
    expect(certificate.subjectRequest.residuals.map((r: { what: string }) => r.what)).toEqual([
      expect.stringContaining('audit events'),
      expect.stringContaining('Temporal workflow histories'),
    ]);
    // The version that held the subject is among those sanitized.
    expect(certificate.sanitized.objects.map((o: { versionId: string }) => o.versionId)).toContain(
      erasedRecord.erasures[0]!.before.versionId,
    );
    expect(json.toString('utf8')).not.toContain(subject);

    // The tombstone: the subject comes back in no later ingestion.
    const again = await ingest('real-world', `${rows}\n`);
    const later = (await readDatasetRecord(clients().s3, catalog, again))!;
    expect(later.rows.excludedByReason).toMatchObject({ erased: 2 });
    const laterOut = later.outputs[0]!;
    expect((await readParquet(clients().s3, laterOut.bucket, laterOut.key)).rows.map((r) => Number(r.score))).toEqual([
      2, 4,
    ]);

    const actions = (await eventsOf(requestId)).map((e) => e.action);
    expect(actions).toEqual(
      expect.arrayContaining([
        'dsr.received',
        'dsr.identity-verified',
        'dsr.approved',
        'subject.erased',
        'certificate.issued',
        'dsr.completed',
      ]),
    );
  });

  it('finds the subject through the index, deletes their earlier access package, and leaves the index agreeing with a full scan', async () => {
    const study = `ST-DSR-X-${randomUUID().slice(0, 6)}`;
    const subject = `XS-${randomUUID()}`;
    const others = ['XO-0002', 'XO-0003'];
    await importConsentCsv(
      clients(),
      [
        'subject_id,scopes,status,icf_version,given_on',
        ...[subject, ...others].map((s) => `${s},primary-research,given,v1,2024-01-01`),
      ].join('\n'),
      'eu',
      study,
    );
    const ingest = async (ids: string[]) =>
      (
        await ingestDir(
          clients(),
          await writeJsonPackage(await tempDir(), smallMetadata({ studyId: study, dataClass: 'real-world' }), {
            'data/visits.csv': [
              'subject_id,full_name,visit_date,score,note',
              ...ids.map((id, i) => `${id},N N,2025-01-0${i + 1},${i},`),
            ].join('\n'),
          }),
        )
      ).datasetId;
    const holding = await ingest([subject, others[0]!, subject]);
    const without = await ingest(others);
    const deps = { s3: clients().s3, jurisdiction: getJurisdiction('eu') };
    const key = await clients().keys.studyKey('eu', study);
    const token = tokenize(key.material, key.version, subject);
    // Ingestion indexed both datasets: the lookup names the one holding the subject, and only it.
    const before = await lookupTokens(deps, [token]);
    expect([...before.places.values()].map((p) => p.place)).toEqual([
      expect.objectContaining({ kind: 'dataset', datasetId: holding, table: 'visits' }),
    ]);
    const otherToken = tokenize(key.material, key.version, others[1]!);
    expect(
      [...(await lookupTokens(deps, [otherToken])).places.values()].map(
        (p) => (p.place as { datasetId: string }).datasetId,
      ),
    ).toEqual([without]);

    // An access package first: it holds the subject's data, and the index knows it.
    const access = await file('access', subject, { studyId: study });
    await statusWhen(access.handle, filed);
    await verifyIdentity(access.requestId);
    expect((await access.handle.result()).state).toBe('completed');
    const exportsBucket = getJurisdiction('eu').buckets.exports;
    expect(
      (await listObjects(clients().s3, exportsBucket, accessPackagePrefix(access.requestId))).length,
    ).toBeGreaterThan(0);
    expect([...(await lookupTokens(deps, [token])).places.values()].map((p) => p.place.kind).sort()).toEqual([
      'dataset',
      'export',
    ]);

    const { requestId, handle } = await file('erasure', subject, { studyId: study });
    await statusWhen(handle, filed);
    await verifyIdentity(requestId);
    await decide(requestId, { decision: 'approve', requestId, reason: 'no ground to refuse' });
    const done = await handle.result();
    expect(done.outcome).toMatchObject({ rowsRemoved: 2, verified: true });
    // The access package is gone, every version, with its record; the certificate lists it.
    expect(await listObjects(clients().s3, exportsBucket, accessPackagePrefix(access.requestId))).toEqual([]);
    const certificate = JSON.parse(
      (
        (await readObjectText(
          clients().s3,
          getJurisdiction('eu').buckets.evidence,
          certificateKeys(String(done.outcome.certificateId)).json,
        )) as Buffer
      ).toString('utf8'),
    );
    expect(certificate.subjectRequest.items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ itemId: `export/${access.requestId}`, decision: 'erased' }),
        expect.objectContaining({ itemId: `${holding}/visits`, decision: 'erased' }),
      ]),
    );
    // The index names the subject nowhere, and no index object holds their token; the other subjects are still found.
    expect((await lookupTokens(deps, [token])).places.size).toBe(0);
    const catalog = getJurisdiction('eu').buckets.catalog;
    const indexObjects = await listObjects(clients().s3, catalog, SUBJECT_INDEX_PREFIX);
    const bodies = await Promise.all(
      indexObjects.map(async (o) => (await readObjectText(clients().s3, catalog, o.key)) as Buffer),
    );
    expect(containsAny(bodies, [token])).toEqual([]);
    const stillThere = await lookupTokens(deps, [tokenize(key.material, key.version, others[0]!)]);
    expect([...stillThere.places.values()].map((p) => (p.place as { datasetId: string }).datasetId).sort()).toEqual(
      [holding, without].sort(),
    );

    // `dsr index verify` (an auditor) agrees with a full scan; an index that lost a table is caught, and rebuilt (ops).
    const as = (role: DemoRole) => path.join(stackState().dataDir, 'identities', role);
    const verified = stackSteward('--identity', as('auditor'), 'dsr', 'index', 'verify', '--jurisdiction', 'eu');
    expect(verified.code, verified.stderr + verified.stdout).toBe(0);
    expect(verified.stdout).toContain('agrees with a full scan');
    const { manifest } = await readManifest(deps);
    const lost = Object.entries(manifest.places).find(([, p]) => p.kind === 'dataset' && p.datasetId === without)![0];
    delete manifest.places[lost];
    await putJson(clients().s3, catalog, `${SUBJECT_INDEX_PREFIX}manifest.json`, SubjectIndexManifestSchema, manifest);
    const caught = stackSteward('--identity', as('auditor'), 'dsr', 'index', 'verify', '--jurisdiction', 'eu');
    expect(caught.code).toBe(7);
    expect(caught.stdout).toContain(`dataset ${without} table visits`);
    expect(stackSteward('--identity', as('steward'), 'dsr', 'index', 'rebuild', '--jurisdiction', 'eu').code).toBe(6);
    const rebuilt = stackSteward('--identity', as('ops'), 'dsr', 'index', 'rebuild', '--jurisdiction', 'eu');
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    expect(stackSteward('--identity', as('auditor'), 'dsr', 'index', 'verify', '--jurisdiction', 'eu').code).toBe(0);
    expect(
      [...(await lookupTokens(deps, [otherToken])).places.values()].map(
        (p) => (p.place as { datasetId: string }).datasetId,
      ),
    ).toEqual([without]);
    const audited = (await sealedEvents(clients(), 'eu')).map((e) => e.event.action);
    expect(audited).toEqual(expect.arrayContaining(['dsr.index-verified', 'dsr.index-rebuilt']));
  });

  it('makes a derived output again without the subject, deletes the old one whole; erases a table kept by a duty to keep on the DPO’s signed override, and rewrites its raw upload; never one under a legal hold', async () => {
    const study = `ST-DSR-O-${randomUUID().slice(0, 6)}`;
    const subject = `OS-${randomUUID()}`;
    await importConsentCsv(
      clients(),
      [
        'subject_id,scopes,status,icf_version,given_on',
        ...[subject, 'OO-0002', 'OO-0003'].map((id) => `${id},primary-research;secondary-research,given,v1,2024-01-01`),
      ].join('\n'),
      'eu',
      study,
    );
    const table = [
      'subject_id,full_name,visit_date,score,note',
      `${subject},A,2025-01-01,1,`,
      'OO-0002,B,2025-01-02,2,',
      'OO-0003,C,2025-01-03,3,',
    ].join('\n');
    const ingest = async (dataClass: string, extra = '') =>
      (
        await ingestDir(
          clients(),
          await writeJsonPackage(await tempDir(), smallMetadata({ studyId: study, dataClass }), {
            'data/visits.csv': `${table}${extra}`,
          }),
        )
      ).datasetId;
    const realWorld = await ingest('real-world');
    const trial = await ingest('clinical-trial');
    // Another package (its own content), under a legal hold.
    const held = await ingest('real-world', '\nOO-0002,B,2025-02-02,5,');
    expect(new Set([realWorld, trial, held]).size).toBe(3);
    const holdId = `hold-${randomUUID()}`;
    await clients().client.workflow.execute('setLegalHoldWorkflow', {
      taskQueue: ingestTaskQueue('eu'),
      workflowId: `dsr-hold-${holdId}`,
      args: [
        signedBy('dpo', {
          action: 'hold.set',
          jurisdiction: 'eu',
          params: { jurisdiction: 'eu', scope: { datasetId: held }, reason: 'litigation hold, matter 12' },
        }),
      ],
    });
    const jobId = `dsr-pre-${randomUUID()}`;
    const job = (await clients().client.workflow.execute('preprocessJobWorkflow', {
      taskQueue: ingestTaskQueue('eu'),
      workflowId: preprocessJobWorkflowId('eu', jobId),
      args: [
        signedBy('steward', {
          action: 'preprocess.run',
          jurisdiction: 'eu',
          requestId: jobId,
          params: {
            datasetIds: [realWorld],
            pipeline: await loadPipeline(pipelineFile, {}),
            parameters: {},
            seed: 1,
            gpu: false,
          },
        }),
      ],
    })) as PreprocessJobResult;
    const derived = job.outputDatasets[0]!;

    const { requestId, handle } = await file('erasure', subject, { studyId: study });
    await statusWhen(handle, filed);
    await verifyIdentity(requestId);
    const override = 'the subject withdrew from the trial before any trial record relied on this visit';
    await decide(requestId, {
      decision: 'approve',
      requestId,
      reason: 'no ground to refuse',
      overrides: [
        { datasetId: trial, reason: override },
        { datasetId: held, reason: 'a hold cannot be overridden' },
      ],
    });
    const done = await handle.result();
    expect(done.outcome).toMatchObject({ verified: true });
    const catalog = getJurisdiction('eu').buckets.catalog;
    const key = await clients().keys.studyKey('eu', study);
    const token = tokenize(key.material, key.version, subject);
    const subjectRowsOf = async (datasetId: string) => {
      const out = (await readDatasetRecord(clients().s3, catalog, datasetId))!.outputs[0]!;
      return (await readParquet(clients().s3, out.bucket, out.key)).rows.filter((r) => r.subject_id === token).length;
    };
    // The overridden trial table and the real-world table lose the subject; the held one keeps them.
    expect(await subjectRowsOf(trial)).toBe(0);
    expect(await subjectRowsOf(realWorld)).toBe(0);
    expect(await subjectRowsOf(held)).toBe(1);
    // The derived output is gone whole: record and objects.
    expect(await readDatasetRecord(clients().s3, catalog, derived)).toBeUndefined();
    expect(await objectVersions(clients().s3, getJurisdiction('eu').buckets.curated, `datasets/${derived}/`)).toBe(0);
    const certificate = JSON.parse(
      (
        (await readObjectText(
          clients().s3,
          getJurisdiction('eu').buckets.evidence,
          certificateKeys(String(done.outcome.certificateId)).json,
        )) as Buffer
      ).toString('utf8'),
    );
    const items = certificate.subjectRequest.items as { itemId: string; decision: string; legalBasis: string }[];
    const item = (dataset: string) => items.find((i) => i.itemId.startsWith(`${dataset}/`))!;
    expect(item(trial)).toMatchObject({ decision: 'erased' });
    expect(item(trial).legalBasis).toContain(`erased by the DPO's override (`);
    expect(item(trial).legalBasis).toContain(override);
    expect(item(held)).toMatchObject({ decision: 'kept' });
    expect(item(held).legalBasis).toContain('legal hold');
    expect(item(derived)).toMatchObject({ decision: 'erased' });
    expect(item(derived).legalBasis).toContain('derived output');
    // Made again from its run documentation, on the rewritten real-world table, without the subject.
    const again = /made again without the subject from its run documentation as dataset (ds-eu-[0-9a-f]{24})/.exec(
      item(derived).legalBasis,
    )?.[1];
    expect(again).toBeDefined();
    expect(done.outcome).toMatchObject({ derivedMadeAgain: 1 });
    const remade = (await readDatasetRecord(clients().s3, catalog, again!))!;
    const rewrittenInput = (await readDatasetRecord(clients().s3, catalog, realWorld))!.outputs[0]!;
    expect(remade.derivedFrom).toMatchObject([{ datasetId: realWorld, versionId: rewrittenInput.versionId }]);
    expect(remade.run).toMatchObject({ jobId: `rerun-${derived}` });
    const remadeRows = (await readParquet(clients().s3, remade.outputs[0]!.bucket, remade.outputs[0]!.key)).rows;
    expect(remadeRows).toHaveLength(2);
    expect(remadeRows.some((r) => r.subject_id === token)).toBe(false);
    const completed = (await eventsOf(requestId)).find((e) => e.action === 'preprocess.completed')!;
    expect(completed.details).toMatchObject({ rerunOf: derived, erasureRequest: requestId });
    expect(completed.principal).toMatchObject({ role: 'dpo' });
    const approved = (await eventsOf(requestId)).find((e) => e.action === 'dsr.approved')!;
    expect(String(approved.details.overrides)).toContain(trial);

    // The trial's raw upload stays under the duty to keep for the other subjects: rewritten without the subject's row,
    // every other byte as it was, with a manifest that records the original package digest and the request.
    const landing = getJurisdiction('eu').buckets.landing;
    const prefix = (await readDatasetRecord(clients().s3, catalog, trial))!.lineage.landing.prefix;
    const stored = await listObjects(clients().s3, landing, prefix);
    expect(stored.map((o) => o.key.slice(prefix.length)).sort()).toEqual(['data/visits.csv', 'manifest.json']);
    expect(await objectVersions(clients().s3, landing, prefix)).toBe(2);
    const csv = (await readObjectText(clients().s3, landing, `${prefix}data/visits.csv`)) as Buffer;
    expect(csv.toString('utf8')).toBe(
      table
        .split('\n')
        .filter((l) => !l.startsWith(subject))
        .join('\n'),
    );
    const manifest = JSON.parse(
      ((await readObjectText(clients().s3, landing, `${prefix}manifest.json`)) as Buffer).toString('utf8'),
    );
    expect(manifest.erasures).toEqual([
      {
        requestId,
        at: expect.any(String),
        originalManifestSha256: expect.any(String),
        rowsRemoved: 1,
        sourceSignature: null,
      },
    ]);
    expect(`packages/${manifest.erasures[0].originalManifestSha256.slice(0, 24)}/`).toBe(prefix);
    // A valid package still: every file matches its new manifest.
    const copy = await tempDir('steward-rewritten-');
    await mkdir(path.join(copy, 'data'));
    await writeFile(path.join(copy, 'data', 'visits.csv'), csv);
    await writeFile(path.join(copy, 'manifest.json'), JSON.stringify(manifest));
    expect(await verifyLocalPackage(await readLocalPackage(copy))).toEqual([]);
    const uploadItem = certificate.subjectRequest.items.find(
      (i: { itemId: string }) => i.itemId === `upload/landing/${prefix.slice('packages/'.length, -1)}`,
    );
    expect(uploadItem).toMatchObject({ decision: 'erased' });
    expect(uploadItem.legalBasis).toContain("rewritten without the subject's rows");
    expect(uploadItem.files).toEqual([
      {
        key: `${prefix}data/visits.csv`,
        before: { versionId: expect.any(String), sha256: sha256(table), rows: 3 },
        after: { versionId: expect.any(String), sha256: sha256(csv), rows: 2 },
      },
      {
        key: `${prefix}manifest.json`,
        before: { versionId: expect.any(String), sha256: expect.any(String), rows: 0 },
        after: { versionId: expect.any(String), sha256: expect.any(String), rows: 0 },
      },
    ]);
    // The versions that held the subject are among those sanitized.
    expect(certificate.sanitized.objects.map((o: { versionId: string }) => o.versionId)).toEqual(
      expect.arrayContaining(uploadItem.files.map((f: { before: { versionId: string } }) => f.before.versionId)),
    );
    expect(done.outcome).toMatchObject({ uploadRowsRemoved: 1 });
  });

  it('an ingestion of the study running while the subject is erased does not bring them back', async () => {
    const study = `ST-DSR-C-${randomUUID().slice(0, 6)}`;
    const subject = `CS-${randomUUID()}`;
    const others = Array.from({ length: 500 }, (_, i) => `CO-${String(i).padStart(4, '0')}`);
    await importConsentCsv(
      clients(),
      [
        'subject_id,scopes,status,icf_version,given_on',
        ...[subject, ...others].map((id) => `${id},primary-research,given,v1,2024-01-01`),
      ].join('\n'),
      'eu',
      study,
    );
    // Large enough that its curation is still running when the erasure tombstones the subject.
    const rows = Array.from({ length: 60_000 }, (_, i) =>
      i % 100 === 0 ? `${subject},N N,2025-01-01,${i},` : `${others[i % others.length]},N N,2025-01-01,${i},`,
    );
    const subjectRows = rows.filter((r) => r.startsWith(subject)).length;
    const dir = await writeJsonPackage(await tempDir(), smallMetadata({ studyId: study, dataClass: 'real-world' }), {
      'data/visits.csv': ['subject_id,full_name,visit_date,score,note', ...rows].join('\n'),
    });
    const { handle: ingestion } = await submitPackage(
      { client: clients().client, s3: clients().s3, identity: identity('steward', clients().state) },
      await readLocalPackage(dir),
    );
    const { requestId, handle } = await file('erasure', subject, { studyId: study });
    await statusWhen(handle, filed);
    await verifyIdentity(requestId);
    await decide(requestId, { decision: 'approve', requestId, reason: 'no ground to refuse' });
    const [ingested, done] = await Promise.all([ingestion.result(), handle.result()]);
    expect(done.outcome).toMatchObject({ verified: true });
    // Either the ingestion saw the tombstone (the rows are excluded as erased), or the erasure waited for it and
    // rewrote what it curated: the table holds every other subject's row and none of the subject's.
    const record = (await readDatasetRecord(clients().s3, getJurisdiction('eu').buckets.catalog, ingested.datasetId))!;
    const out = record.outputs[0]!;
    const stored = (await readParquet(clients().s3, out.bucket, out.key)).rows;
    const key = await clients().keys.studyKey('eu', study);
    expect(stored.some((r) => r.subject_id === tokenize(key.material, key.version, subject))).toBe(false);
    expect(stored).toHaveLength(rows.length - subjectRows);
    const excluded = record.rows.excludedByReason.erased ?? 0;
    const rewritten = record.erasures.find((e) => e.requestId === requestId)?.rowsRemoved ?? 0;
    expect(excluded + rewritten).toBe(subjectRows);
    expect(await objectVersions(clients().s3, out.bucket, out.key)).toBe(1);
  });

  it('keeps an erased subject’s trial rows out of processing after the study key is rotated and the table re-keyed', async () => {
    const study = `ST-DSR-K-${randomUUID().slice(0, 6)}`;
    const subject = `KR-${randomUUID()}`;
    await importConsentCsv(
      clients(),
      [
        'subject_id,scopes,status,icf_version,given_on',
        `${subject},primary-research;secondary-research,given,v1,2024-01-01`,
        'KR-OTHER-0002,primary-research;secondary-research,given,v1,2024-01-01',
      ].join('\n'),
      'eu',
      study,
    );
    const table = [
      'subject_id,full_name,visit_date,score,note',
      `${subject},Kay One,2025-01-02,1,`,
      'KR-OTHER-0002,Kim Two,2025-01-03,2,',
      `${subject},Kay One,2025-02-02,3,`,
    ].join('\n');
    const ingest = async (csv = table) =>
      (
        await ingestDir(
          clients(),
          await writeJsonPackage(
            await tempDir(),
            smallMetadata({ studyId: study, dataClass: 'clinical-trial', reidentificationVault: true }),
            { 'data/visits.csv': csv },
          ),
        )
      ).datasetId;
    const trial = await ingest();
    const { requestId, handle } = await file('erasure', subject, { studyId: study });
    await statusWhen(handle, filed);
    await verifyIdentity(requestId);
    await decide(requestId, { decision: 'approve', requestId, reason: 'no ground to refuse' });
    // The trial table is kept under the duty to keep; processing leaves the subject's rows out.
    expect((await handle.result()).state).toBe('completed-with-exemptions');
    const before = await runSecondaryResearchJob(trial);
    expect(before.document.consent.byReason).toEqual({ erased: 1 });
    expect(before.document.inputs[0]).toMatchObject({ rowsIn: 3, rowsExcluded: 2 });

    const steward = { taskQueue: ingestTaskQueue('eu') };
    const rotated = await clients().client.workflow.execute('rotateStudyKeyWorkflow', {
      ...steward,
      workflowId: `test-rotate-${randomUUID()}`,
      args: [
        signedBy('steward', {
          action: 'keys.rotate',
          jurisdiction: 'eu',
          params: { jurisdiction: 'eu', studyId: study },
        }),
      ],
    });
    expect(rotated).toMatchObject({ currentVersion: 2 });
    const migrated = await clients().client.workflow.execute('rePseudonymizeDatasetWorkflow', {
      ...steward,
      workflowId: `test-repseudo-${randomUUID()}`,
      args: [
        signedBy('steward', { action: 'datasets.repseudonymize', jurisdiction: 'eu', params: { datasetId: trial } }),
      ],
    });
    expect(migrated).toMatchObject({ toVersion: 2, migrated: true, tokensCarried: 1 });
    // The rows now carry the subject's v2 token, which the tombstone (written under v1) did not name.
    const out = (await readDatasetRecord(clients().s3, getJurisdiction('eu').buckets.catalog, trial))!.outputs[0]!;
    const v2 = await clients().keys.studyKey('eu', study);
    expect(
      (await readParquet(clients().s3, out.bucket, out.key)).rows.filter(
        (r) => r.subject_id === tokenize(v2.material, v2.version, subject),
      ),
    ).toHaveLength(2);
    const after = await runSecondaryResearchJob(trial);
    expect(after.document.consent.byReason).toEqual({ erased: 1 });
    expect(after.document.inputs[0]).toMatchObject({ rowsIn: 3, rowsExcluded: 2 });
    // And a new package ingested under the new key does not bring the subject back.
    const again = (await readDatasetRecord(
      clients().s3,
      getJurisdiction('eu').buckets.catalog,
      await ingest(`${table}\n`),
    ))!;
    expect(again.keyVersions).toEqual([2]);
    expect(again.rows.excludedByReason).toMatchObject({ erased: 2 });
  });

  it('of a subject Steward holds nothing of completes with a signed "no data found" certificate', async () => {
    const { requestId, handle } = await file('erasure', `NONE-${randomUUID()}`);
    await statusWhen(handle, filed);
    await verifyIdentity(requestId);
    await decide(requestId, { decision: 'approve', requestId, reason: 'no ground to refuse' });
    const done = await handle.result();
    expect(done.state).toBe('completed');
    expect(done.outcome).toMatchObject({ erased: 0, kept: 0, rowsRemoved: 0, verified: true });
    const certificateId = String(done.outcome.certificateId);
    const verified = stackSteward('cert', 'verify', certificateId);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    const json = (await readObjectText(
      clients().s3,
      getJurisdiction('eu').buckets.evidence,
      certificateKeys(certificateId).json,
    )) as Buffer;
    const certificate = JSON.parse(json.toString('utf8'));
    expect(certificate.reason.detail).toBe(`erasure request ${requestId}: no data of the subject was found in eu`);
    expect(certificate.subjectRequest).toMatchObject({ items: [], verification: { passed: true } });
    expect(certificate.method.techniques).toContain(
      "tombstone of the subject's tokens and keyed digest: later ingestion and processing exclude them",
    );
  });

  it('in the US, where HIPAA grants no right to erasure, answers with that basis and erases nothing', async () => {
    const { requestId, handle } = await file('erasure', `US-${randomUUID()}`, { jurisdiction: 'us' });
    await statusWhen(handle, filed);
    await verifyIdentity(requestId, 'us');
    await decide(requestId, { decision: 'approve', requestId, reason: 'answer the request' }, { jurisdiction: 'us' });
    const done = await handle.result();
    expect(done.state).toBe('completed');
    expect(done.outcome).toMatchObject({ erased: 0, rowsRemoved: 0 });
    const certified = (await eventsOf(requestId, 'us')).find((e) => e.action === 'subject.erased')!;
    expect(certified.reason).toContain('HIPAA grants no right to erasure');
  });
});

describe('a raw upload in BagIt layout rewritten without a subject', () => {
  it('gets a new payload manifest, Payload-Oxum, erasure tag and tag manifest; a retry writes the same bytes', async () => {
    const study = `ST-DSR-BAG-${randomUUID().slice(0, 6)}`;
    const subject = `BG-${randomUUID()}`;
    const csv = [
      'subject_id,full_name,visit_date,score,note',
      `${subject},A,2025-01-01,1,`,
      'BG-OTHER,B,2025-01-02,2,',
      `${subject},A,2025-01-03,3,`,
    ].join('\n');
    const dir = await writeBag(await tempDir(), smallMetadata({ studyId: study }), { 'data/visits.csv': csv });
    const tagged = ['bagit.txt', 'bag-info.txt', 'manifest-sha256.txt', 'steward.json'];
    const tagLines = async () =>
      (await Promise.all(tagged.map(async (f) => `${sha256(await readFile(path.join(dir, f)))}  ${f}`))).join('\n');
    await writeFile(path.join(dir, 'tagmanifest-sha256.txt'), `${await tagLines()}\n`);
    await writeFile(path.join(dir, 'tagmanifest-sha256.txt.p7s'), 'a source signature over the original tag manifest');
    const landing = getJurisdiction('eu').buckets.landing;
    const prefix = `packages/test-${randomUUID().slice(0, 12)}/`;
    const names = [...tagged, 'data/visits.csv', 'tagmanifest-sha256.txt', 'tagmanifest-sha256.txt.p7s'];
    const metadata = { 'study-id': study, 'submitted-at': '2026-01-01T00:00:00.000Z' };
    for (const name of names) {
      const bytes = await readFile(path.join(dir, name));
      await putStream(clients().s3, landing, `${prefix}${name}`, Readable.from([bytes]), {
        bytes: bytes.length,
        metadata,
      });
    }
    const place = {
      kind: 'upload' as const,
      role: 'landing' as const,
      bucket: landing,
      prefix,
      packageId: null,
      studyId: study,
      files: 1,
    };
    const request = { requestId: `dsr-test-${randomUUID()}`, subjectId: subject, at: new Date().toISOString() };
    try {
      const first = await rewriteUploadWithoutSubject(clients().s3, place, request);
      // A retry (after a crash, say) rewrites from the originals: the same bytes again.
      const again = await rewriteUploadWithoutSubject(clients().s3, place, request);
      expect(again.files.map((f) => [f.key, f.before.sha256, f.after.sha256])).toEqual(
        first.files.map((f) => [f.key, f.before.sha256, f.after.sha256]),
      );
      expect(first).toMatchObject({ layout: 'bagit', rowsRemoved: 2, signatureRemoved: true });
      expect(first.files.map((f) => f.key.slice(prefix.length))).toEqual([
        'data/visits.csv',
        'manifest-sha256.txt',
        'bag-info.txt',
        'tagmanifest-sha256.txt',
      ]);
      expect(again.keep.map((k) => k.key.slice(prefix.length)).sort()).toEqual([...names.slice(0, -1)].sort());

      // The stored bag is valid as it is now, and says what was done.
      const copy = await tempDir('steward-bag-');
      await mkdir(path.join(copy, 'data'));
      for (const name of names.slice(0, -1)) {
        await writeFile(
          path.join(copy, name),
          (await readObjectText(clients().s3, landing, `${prefix}${name}`)) as Buffer,
        );
      }
      expect(await verifyLocalPackage(await readLocalPackage(copy))).toEqual([]);
      const rewritten = await readFile(path.join(copy, 'data', 'visits.csv'), 'utf8');
      expect(rewritten).toBe(['subject_id,full_name,visit_date,score,note', 'BG-OTHER,B,2025-01-02,2,\n'].join('\n'));
      const info = await readFile(path.join(copy, 'bag-info.txt'), 'utf8');
      expect(info).toContain(`Payload-Oxum: ${Buffer.byteLength(rewritten)}.1\n`);
      expect(info).toContain(
        `Steward-Erasure: request ${request.requestId} at ${request.at}, 2 rows removed, original package digest ${first.originalManifestSha256}, source signature removed`,
      );
      const tags = await readFile(path.join(copy, 'tagmanifest-sha256.txt'), 'utf8');
      for (const f of tagged) expect(tags).toContain(`${sha256(await readFile(path.join(copy, f)))}  ${f}`);
      // Submission time and study stay on the rewritten versions: retention and discovery read them.
      const head = await clients().s3.send(new HeadObjectCommand({ Bucket: landing, Key: `${prefix}data/visits.csv` }));
      expect(head.Metadata).toMatchObject(metadata);

      // Once the erasure has deleted the older versions (and the signature), running it again finds nothing to do.
      for (const name of names) {
        const kept = again.keep.find((k) => k.key === `${prefix}${name}`);
        await deleteOtherVersions(clients().s3, landing, `${prefix}${name}`, kept?.versionId ?? null);
      }
      const late = await rewriteUploadWithoutSubject(clients().s3, place, request);
      expect(late).toMatchObject({ rowsRemoved: 0, files: [], signatureRemoved: false });
      expect(late.keep.sort((a, b) => a.key.localeCompare(b.key))).toEqual(
        again.keep.sort((a, b) => a.key.localeCompare(b.key)),
      );
    } finally {
      await deleteAllVersions(clients().s3, landing, prefix, { bypassGovernance: true });
    }
  });
});

describe('decisions on a request', () => {
  it('refuse another role, a replayed or altered decision, one for another request, and one its state does not allow', async () => {
    const { requestId, handle } = await file('restriction', `Q-${randomUUID()}`);
    await statusWhen(handle, filed);

    // A steward's signature is not a DPO's.
    const steward = await refusal(
      decide(requestId, { decision: 'reject', requestId, reason: 'not mine to decide' }, { role: 'steward' }),
    );
    expect(steward).toMatchObject({ type: ErrorType.AccessDenied });
    expect(steward.message).toMatch(/role steward.*may not dsr\.reject/);

    // Approving is for erasure requests.
    const approve = await refusal(decide(requestId, { decision: 'approve', requestId, reason: 'looks fine' }));
    expect(approve).toMatchObject({ type: ErrorType.RequestConflict });
    expect(approve.message).toContain('in state received cannot take the decision "approve"');

    // A decision signed for another request.
    const other = `dsr-test-${randomUUID()}`;
    const misdirected = await refusal(decide(requestId, { decision: 'cancel', requestId: other, reason: 'oops' }));
    expect(misdirected.message).toContain(`is for request ${other}`);

    // One signed decision, sent twice: used once.
    const { request } = signedInput(identity('dpo'), {
      action: 'dsr.verify-identity',
      jurisdiction: 'eu',
      params: { decision: 'verify-identity', requestId, method: 'in-person', evidenceRef: 'DESK-9', reason: 'seen' },
      meaning: 'confirm the data subject’s identity was verified',
    });
    await handle.executeUpdate(subjectRequestDecisionUpdate, { args: [{ request }] });
    const replay = await refusal(handle.executeUpdate(subjectRequestDecisionUpdate, { args: [{ request }] }));
    expect(replay).toMatchObject({ type: ErrorType.AccessDenied });
    expect(replay.message).toMatch(/already used/);

    // Altered after signing: the signature no longer verifies.
    const altered = { ...request, body: request.body.replace('DESK-9', 'DESK-0') };
    const tampered = await refusal(
      handle.executeUpdate(subjectRequestDecisionUpdate, { args: [{ request: altered }] }),
    );
    expect(tampered.message).toMatch(/signature does not verify/);

    // Anyone holding only the payload key: not a signed decision at all.
    const intruder = payloadKeyOnlyClient(clients()).workflow.getHandle(handle.workflowId);
    const garbage = await refusal(
      intruder.executeUpdate(subjectRequestDecisionUpdate, { args: [{ request: { body: '{}' } } as never] }),
    );
    expect(garbage.message).toBe('not a signed decision');

    const events = await eventsOf(requestId);
    const denied = events.filter((e) => e.action === 'request.denied');
    expect(denied.map((e) => e.details.requested).sort()).toEqual([
      'dsr.reject',
      'dsr.verify-identity',
      'dsr.verify-identity',
    ]);
    expect(events.filter((e) => e.action === 'dsr.refused').map((e) => e.details.decision)).toEqual([
      'approve',
      'cancel',
    ]);
    await decide(requestId, { decision: 'lift', requestId, reason: 'x' }).catch(() => undefined);
  });

  it('a cancel or reset through Temporal does not end it: only a signed decision does', async () => {
    const subject = `Q-${randomUUID()}`;
    const { requestId, handle } = await file('restriction', subject);
    await statusWhen(handle, filed);
    const temporal = await ensureTool('temporal');
    const address = stackState().temporal.address;
    const cancel = spawnSync(
      temporal,
      ['workflow', 'cancel', '--address', address, '--workflow-id', handle.workflowId],
      {
        encoding: 'utf8',
      },
    );
    expect(cancel.status, cancel.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await handle.describe()).status.name).toBe('RUNNING');
    expect((await handle.query(subjectRequestStatusQuery)).state).toBe('received');

    // A reset to the start replays the filing in a new run: refused as a replay, and audited.
    const reset = spawnSync(
      temporal,
      [
        'workflow',
        'reset',
        '--address',
        address,
        '--workflow-id',
        handle.workflowId,
        '--type',
        'FirstWorkflowTask',
        '--reason',
        'attack',
      ],
      { encoding: 'utf8' },
    );
    expect(reset.status, reset.stderr).toBe(0);
    // The reset run: its own handle (the first run's ends as terminated by the reset).
    const latest = clients().client.workflow.getHandle(handle.workflowId);
    expect(rootApplicationFailure(await failureOf(latest.result())).type).toBe(ErrorType.AccessDenied);
    const denied = (await eventsOf(requestId)).filter((e) => e.action === 'request.denied');
    expect(denied.map((e) => e.reason)).toEqual([expect.stringMatching(/already used/)]);

    // The request reset away answers nobody: the next one for the subject takes its place instead of linking to it.
    const next = await file('restriction', subject);
    const status = await statusWhen(next.handle, filed);
    expect(status.state).toBe('received');
    expect(status.steps.map((s) => s.step)).toContain('superseded');
    await decide(next.requestId, { decision: 'cancel', requestId: next.requestId, reason: 'test over' });
  });
});

describe('deadlines', () => {
  it('reminds within the lead time, extends within the legal maximum, refuses past it', async () => {
    // Due in three days: the seven-day reminder is due at once.
    const received = shiftIso(new Date(Date.now() + 3 * 86_400_000).toISOString(), 'P1M', -1);
    const { requestId, handle } = await file('restriction', `D-${randomUUID()}`, { received });
    const reminded = await statusWhen(handle, (s) => s.remindersSent.length > 0);
    expect(reminded.remindersSent).toEqual([`P7D before ${reminded.dueAt}`]);
    expect(reminded.overdue).toBe(false);

    const once = await decide(requestId, { decision: 'extend', requestId, by: 'P1M', reason: 'complex request' });
    expect(once.dueAt).toBe(shiftIso(shiftIso(reminded.receivedAt, 'P1M'), 'P1M'));
    expect(once.extensions).toMatchObject([{ by: 'P1M', reason: 'complex request' }]);
    expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.requestDeadline)?.toISOString()).toBe(
      once.dueAt,
    );
    const twice = await decide(requestId, { decision: 'extend', requestId, by: 'P1M', reason: 'many datasets' });
    expect(twice.dueAt).toBe(twice.latestDueAt);
    const past = await refusal(decide(requestId, { decision: 'extend', requestId, by: 'P1D', reason: 'one more day' }));
    expect(past).toMatchObject({ type: ErrorType.RequestConflict });
    expect(past.message).toContain('passes the legal maximum of P2M (GDPR Art. 12(3), Art. 18)');

    const events = await eventsOf(requestId);
    expect(events.map((e) => e.action)).toEqual([
      'dsr.received',
      'dsr.reminder',
      'dsr.extended',
      'dsr.extended',
      'dsr.refused',
    ]);
    await decide(requestId, { decision: 'cancel', requestId, reason: 'done testing' });
  });

  it('a reminder fires on its durable timer when its lead time comes', async () => {
    // US: 30 days. The seven-day reminder falls four seconds from now.
    const received = new Date(Date.now() + 7 * 86_400_000 + 4_000 - 30 * 86_400_000).toISOString();
    const { requestId, handle } = await file('restriction', `T-${randomUUID()}`, { jurisdiction: 'us', received });
    const start = await statusWhen(handle, filed);
    expect(start.remindersSent).toEqual([]);
    const reminded = await statusWhen(handle, (s) => s.remindersSent.length > 0, 30_000);
    expect(reminded.remindersSent).toEqual([`P7D before ${start.dueAt}`]);
    await decide(requestId, { decision: 'cancel', requestId, reason: 'done testing' }, { jurisdiction: 'us' });
    expect((await eventsOf(requestId, 'us')).map((e) => e.action)).toEqual([
      'dsr.received',
      'dsr.reminder',
      'dsr.cancelled',
    ]);
  });

  it('escalates an overdue request, lists it as overdue, and refuses to extend it', async () => {
    const received = shiftIso(new Date(Date.now() - 86_400_000).toISOString(), 'P1M', -1);
    const { requestId, handle } = await file('restriction', `O-${randomUUID()}`, { received });
    const overdue = await statusWhen(handle, (s) => s.overdue);
    expect(overdue.state).toBe('received');
    const late = await refusal(decide(requestId, { decision: 'extend', requestId, by: 'P1M', reason: 'late' }));
    expect(late.message).toContain('an extension must be decided before the deadline');

    await expect
      .poll(async () =>
        (await listSubjectRequests(clients().client, { jurisdiction: 'eu', dueBefore: new Date() })).map(
          (r) => r.requestId,
        ),
      )
      .toContain(requestId);
    const dueLater = await listSubjectRequests(clients().client, {
      jurisdiction: 'eu',
      dueBefore: new Date(Date.now() - 3 * 86_400_000),
    });
    expect(dueLater.map((r) => r.requestId)).not.toContain(requestId);
    const overdueEvent = (await eventsOf(requestId)).find((e) => e.action === 'dsr.overdue')!;
    expect(overdueEvent).toMatchObject({ outcome: 'failure', details: { dueAt: overdue.dueAt } });
    await decide(requestId, { decision: 'reject', requestId, reason: 'manifestly unfounded' });
    expect((await handle.result()).state).toBe('rejected');
  });
});

describe('one request per subject and kind', () => {
  it('links a second request for the same subject while one is open, by keyed digest, not the identifier', async () => {
    const subject = `L-${randomUUID()}`;
    const first = await file('restriction', subject);
    await statusWhen(first.handle, filed);
    const second = await file('restriction', subject);
    const linked = await second.handle.result();
    expect(linked).toMatchObject({ state: 'linked', linkedTo: first.requestId });

    const catalog = getJurisdiction('eu').buckets.catalog;
    const markers = await listObjects(clients().s3, catalog, openRequestsPrefix('restriction'));
    const texts = await Promise.all(
      markers.map(async (m) => (await readObjectText(clients().s3, catalog, m.key)).toString('utf8')),
    );
    const mine = texts.find((t) => t.includes(first.requestId))!;
    expect(mine).toContain(second.requestId);
    expect(mine).not.toContain(subject);
    const digest = JSON.parse(mine).subjectDigest as string;
    expect(await readOpenRequest(clients().s3, catalog, 'restriction', digest)).toMatchObject({
      requestId: first.requestId,
      linked: [second.requestId],
    });

    await decide(first.requestId, { decision: 'cancel', requestId: first.requestId, reason: 'withdrawn by subject' });
    expect(await first.handle.result()).toMatchObject({ state: 'cancelled', linked: [second.requestId] });
    // Closed: the next request for the subject is a request of its own.
    const third = await file('restriction', subject);
    expect((await statusWhen(third.handle, filed)).state).toBe('received');
    await decide(third.requestId, { decision: 'cancel', requestId: third.requestId, reason: 'test over' });
  });

  it('refuses a filing by another role, and one received in the future', async () => {
    const byOps = await file('restriction', 'X-1', { role: 'steward' });
    await expect(byOps.handle.result()).rejects.toThrow();
    const denied = (await eventsOf(byOps.requestId)).filter((e) => e.action === 'request.denied');
    expect(denied.map((e) => e.reason)).toEqual([expect.stringMatching(/role steward.*may not dsr\.restrict/)]);

    const future = await file('restriction', 'X-2', { received: new Date(Date.now() + 86_400_000).toISOString() });
    const failure = rootApplicationFailure(await failureOf(future.handle.result()));
    expect(failure).toMatchObject({ type: ErrorType.InvalidInput, message: expect.stringMatching(/in the future/) });
  });
});

describe('a failed step', () => {
  it('waits for the DPO’s retry, then goes on from where it stopped', async () => {
    const study = `ST-DSR-F-${randomUUID().slice(0, 6)}`;
    await clients().keys.studyKey('eu', study);
    const keyFile = path.join(stackState().dataDir, 'keys', 'study', 'eu', study, 'v1.json');
    const good = await readFile(keyFile, 'utf8');
    await writeFile(keyFile, '{ "damaged": true }');
    try {
      const { requestId, handle } = await file('restriction', 'F-1', { studyId: study });
      await statusWhen(handle, filed);
      await verifyIdentity(requestId);
      const failed = await statusWhen(handle, (s) => s.state === 'failed', 120_000);
      expect(failed.failure).toMatchObject({ step: 'finding the subject’s tokens' });
      expect((await handle.describe()).typedSearchAttributes.get(SEARCH_ATTRIBUTES.requestState)).toBe('failed');

      await writeFile(keyFile, good);
      await decide(requestId, { decision: 'retry', requestId, reason: 'the key store is restored' });
      const restricted = await statusWhen(handle, (s) => s.state === 'restricted');
      expect(restricted.failure).toBeNull();
      expect(restricted.outcome).toMatchObject({ tokens: 1 });
      const actions = (await eventsOf(requestId)).map((e) => e.action);
      expect(actions).toEqual(['dsr.received', 'dsr.identity-verified', 'dsr.failed', 'dsr.retried', 'dsr.restricted']);
      await decide(requestId, { decision: 'lift', requestId, reason: 'test over' });
    } finally {
      await writeFile(keyFile, good);
    }
  });
});

describe('steward dsr', () => {
  it('files, verifies, shows, lists and lifts a restriction from the command line', async () => {
    const dpo = path.join(stackState().dataDir, 'identities', 'dpo');
    const subject = `C-${randomUUID()}`;
    const filedCli = stackSteward(
      '--identity',
      dpo,
      '--json',
      ...['dsr', 'restrict', '--subject', subject, '--jurisdiction', 'eu', '--received', today().slice(0, 10)],
      ...['--reason', 'letter of 1 December'],
    );
    expect(filedCli.code, filedCli.stderr).toBe(0);
    const status = JSON.parse(filedCli.stdout) as SubjectRequestStatus;
    expect(status).toMatchObject({ state: 'received', kind: 'restriction' });
    expect(filedCli.stdout + filedCli.stderr).not.toContain(subject);

    const id = status.requestId;
    const verified = stackSteward(
      '--identity',
      dpo,
      ...['dsr', 'verify-identity', id, '--method', 'account-login', '--evidence-ref', 'PORTAL-77'],
      ...['--reason', 'logged in to the patient portal'],
    );
    expect(verified.code, verified.stderr).toBe(0);
    const handle = clients().client.workflow.getHandle(subjectRequestWorkflowId('eu', id));
    await statusWhen(handle, (s) => s.state === 'restricted');

    const shown = stackSteward('--identity', dpo, 'dsr', 'show', id);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('state:     restricted');
    expect(shown.stdout).toMatch(/identity-verified by .* \(dpo\) \[e-signed/);
    const listed = stackSteward('--identity', dpo, 'dsr', 'list', '--jurisdiction', 'eu', '--state', 'restricted');
    expect(listed.stdout).toContain(id);

    // Only the DPO decides; the steward is refused before anything is signed.
    const bySteward = stackSteward('dsr', 'lift', id, '--reason', 'not mine');
    expect(bySteward.code).toBe(6);
    expect(bySteward.stderr).toContain('may not dsr.lift');
    const approve = stackSteward('--identity', dpo, 'dsr', 'approve', id, '--reason', 'fine');
    expect(approve.code).toBe(2);
    expect(approve.stderr).toContain('cannot take the decision "approve"');

    const lifted = stackSteward('--identity', dpo, 'dsr', 'lift', id, '--reason', 'dispute settled');
    expect(lifted.code, lifted.stderr).toBe(0);
    expect(lifted.stdout).toContain('state:     completed');
    const unknown = stackSteward('--identity', dpo, 'dsr', 'status', 'no-such-request');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no subject request no-such-request');
  });
});
