import { existsSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { createConsentActivities } from '../../activities/consent';
import { createKeyActivities } from '../../activities/keys';
import { createAuditActivities } from '../../activities/audit';
import { datasetIdFor, ingestTaskQueue, keyRotationWorkflowId } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import type { IngestPackageInput } from '../../schemas/ingest';
import type { ingestPackageWorkflow, rotateStudyKeyWorkflow } from '../../workflows';
import { consentPartsPrefix } from '../../lib/storage/catalog';
import { listObjects } from '../../lib/storage/objects';
import {
  importConsentCsv,
  ingestRejected,
  rawHistory,
  smallMetadata,
  signedBy,
  submitUntilCurating,
  tempDir,
  writeBag,
} from '../helpers';
import {
  failureChain,
  failureOf,
  ingestActivitiesOf,
  rootApplicationFailure,
  useClients,
  withWorker,
} from '../harness';

const clients = useClients();
const eu = getJurisdiction('eu');
const us = getJurisdiction('us');

describe('workflow inputs', () => {
  it('are parsed first: a bad one fails at once as InvalidInput naming each field, never its value', async () => {
    const error = await failureOf(
      clients().client.workflow.execute<typeof ingestPackageWorkflow>('ingestPackageWorkflow', {
        args: [
          signedBy('steward', {
            action: 'ingest',
            jurisdiction: 'eu',
            params: { packageId: 'not-a-package', jurisdiction: 'EU', landing: { bucket: 'b' } },
          }),
        ],
        taskQueue: ingestTaskQueue('eu'),
        workflowId: `test-invalid-${randomUUID()}`,
      }),
    );
    expect(failureChain(error)).toEqual(['WorkflowFailedError', 'ApplicationFailure(InvalidInput)']);
    expect(rootApplicationFailure(error).message).toMatchInlineSnapshot(
      `"invalid input to ingest request: packageId: must be 24 lowercase hex digits; manifestSha256: Invalid input: expected string, received undefined; layout: Invalid option: expected one of "bagit"|"json"; jurisdiction: must be a known jurisdiction: ch, eu, uk, us; landing.prefix: Invalid input: expected string, received undefined; metadata: Invalid input: expected object, received undefined; unreadable: Invalid input: expected array, received undefined"`,
    );
  });
});

describe('keys', () => {
  it('a destroyed key fails its activity at once as KeyUnavailable, the key store error kept as the cause', async () => {
    const study = 'ST-KEYGONE';
    await clients().keys.studyKey('eu', study);
    await clients().keys.destroyStudyKey('eu', study, 1);
    const workflowId = keyRotationWorkflowId('eu', study, randomUUID());
    const error = await withWorker(clients(), 'eu', (taskQueue) =>
      failureOf(
        clients().client.workflow.execute<typeof rotateStudyKeyWorkflow>('rotateStudyKeyWorkflow', {
          args: [
            signedBy('steward', {
              action: 'keys.rotate',
              jurisdiction: 'eu',
              params: { jurisdiction: 'eu', studyId: study },
            }),
          ],
          taskQueue,
          workflowId,
        }),
      ),
    );
    expect(failureChain(error)).toEqual([
      'WorkflowFailedError',
      'ActivityFailure',
      'ApplicationFailure(KeyUnavailable)',
      'ApplicationFailure(KeyStoreError)',
    ]);
    expect(rootApplicationFailure(error).message).toBe('key study/eu/ST-KEYGONE/v1 was destroyed');
    // Not retried: one attempt only.
    const history = await clients().client.workflow.getHandle(workflowId).fetchHistory();
    const attempts = history
      .events!.filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt);
    // Only a last attempt's start is recorded: every activity succeeded or failed at its first.
    expect(attempts.length).toBeGreaterThan(0);
    expect(attempts.every((a) => a === 1)).toBe(true);
  });
});

describe('failure messages', () => {
  it('are encrypted in the history like payloads, and readable through the codec', async () => {
    const dir = await writeBag(
      await tempDir(),
      smallMetadata({ studyId: 'ST-SECRET-FAIL' }),
      {
        'data/visits.csv': 'subject_id,full_name,visit_date,score,note\nF-1,Al,2025-01-02,3,\n',
      },
      { manifestLines: (lines) => lines.map((l) => l.replace(/^[0-9a-f]{64}/, 'f'.repeat(64))) },
    );
    const rejected = await ingestRejected(clients(), dir);
    expect(rejected.app.message).toContain('SHA-256 mismatch');
    const raw = await rawHistory(clients().client, rejected.workflowId);
    expect(raw.includes(Buffer.from('SHA-256 mismatch'))).toBe(false);
    expect(raw.includes(Buffer.from('package rejected'))).toBe(false);
    expect(raw.includes(Buffer.from('Encoded failure'))).toBe(true);
  });
});

describe('jurisdiction guards in activities', () => {
  it('refuse another jurisdiction and its buckets, even when called directly', async () => {
    const { s3, keys } = clients();
    const scratchDir = await tempDir();
    const ingest = ingestActivitiesOf(clients(), 'eu', scratchDir);
    const consent = createConsentActivities({ s3, keys, jurisdiction: eu, scratchDir });
    const keyActivities = createKeyActivities({ keys, jurisdiction: eu });
    const audit = createAuditActivities({
      s3,
      keys,
      jurisdiction: eu,
      signer: () => Promise.reject(new Error('unused')),
    });
    const run = <A extends unknown[]>(fn: (...args: A) => Promise<unknown>, ...args: A) =>
      new MockActivityEnvironment().run(fn, ...args).then(
        () => 'accepted',
        (e: Error & { type?: string }) => `${e.type}: ${e.message}`,
      );
    const packageInput: IngestPackageInput = {
      packageId: 'abcdefabcdefabcdefabcdef',
      manifestSha256: 'a'.repeat(64),
      layout: 'bagit',
      jurisdiction: 'eu',
      landing: { bucket: us.buckets.landing, prefix: 'packages/abcdefabcdefabcdefabcdef/' },
      metadata: smallMetadata(),
      unreadable: [],
      submittedBy: { id: 'Demo Steward', role: 'steward' },
    };
    const results = {
      verifyForeignBucket: await run(ingest.verifyPackageActivity, packageInput),
      verifyForeignJurisdiction: await run(ingest.verifyPackageActivity, { ...packageInput, jurisdiction: 'us' }),
      curateForeignBucket: await run(ingest.curatePackageActivity, {
        ...packageInput,
        datasetId: datasetIdFor('eu', packageInput.packageId),
        files: [],
        asOf: '2026-01-01',
        curatedAt: '2026-01-01T00:00:00.000Z',
      }),
      quarantineForeignBucket: await run(ingest.quarantinePackageActivity, {
        packageId: packageInput.packageId,
        landing: packageInput.landing,
        problems: [],
        workflowId: 'w',
        runId: 'r',
        rejectedAt: '2026-01-01T00:00:00.000Z',
      }),
      consentForeignBucket: await run(consent.importConsentActivity, {
        jurisdiction: 'eu',
        studyId: 'S',
        source: { bucket: us.buckets.landing, key: 'consent/S/x.csv', sha256: 'a'.repeat(64) },
        fileName: 'x.csv',
        submittedBy: { id: 'Demo Steward', role: 'steward' },
        importedAt: '2026-01-01T00:00:00.000Z',
      }),
      keysForeignJurisdiction: await run(keyActivities.currentStudyKeyVersionActivity, {
        jurisdiction: 'us',
        studyId: 'S',
      }),
      sealForeignJurisdiction: await run(audit.sealAuditSegmentActivity, {
        jurisdiction: 'us',
        head: { seq: 0, position: 0, prevEventHash: '0'.repeat(64), prevSegmentHash: '0'.repeat(64) },
        sealedAt: '2026-01-01T00:00:00.000Z',
        events: [
          {
            id: 'e',
            at: '2026-01-01T00:00:00.000Z',
            jurisdiction: 'us',
            principal: null,
            action: 'request.denied',
            outcome: 'denied',
            targets: {},
            details: {},
          },
        ],
      }),
    };
    expect(results).toMatchInlineSnapshot(`
      {
        "consentForeignBucket": "JurisdictionViolation: consent must be read from eu's landing bucket, not steward-us-landing",
        "curateForeignBucket": "JurisdictionViolation: bucket steward-us-landing does not belong to jurisdiction eu",
        "keysForeignJurisdiction": "JurisdictionViolation: this worker serves jurisdiction eu and refuses work for us",
        "quarantineForeignBucket": "JurisdictionViolation: bucket steward-us-landing does not belong to jurisdiction eu",
        "sealForeignJurisdiction": "JurisdictionViolation: this worker serves jurisdiction eu and refuses work for us",
        "verifyForeignBucket": "JurisdictionViolation: bucket steward-us-landing does not belong to jurisdiction eu",
        "verifyForeignJurisdiction": "JurisdictionViolation: this worker serves jurisdiction eu and refuses work for us",
      }
    `);
  });
});

describe('consent files', () => {
  it('a bad one is rejected naming file, row, field and rule, and nothing is imported', async () => {
    const study = 'ST-BADCONSENT';
    const error = await failureOf(
      importConsentCsv(
        clients(),
        'subject_id,scopes,status,icf_version,given_on,withdrawn_on\nB-1,primary-research,given,v1,2025-02-30,\nB-2,Primary,withdrawn,v1,2025-01-01,\n',
        'eu',
        study,
      ),
    );
    expect(failureChain(error)).toEqual([
      'WorkflowFailedError',
      'ActivityFailure',
      'ApplicationFailure(ConsentImportRejected)',
    ]);
    const root = rootApplicationFailure(error);
    expect((root.details?.[0] as { problems: unknown[] }).problems).toMatchInlineSnapshot(`
      [
        {
          "field": "given_on",
          "file": "consent.csv",
          "row": 1,
          "rule": "must be a date in YYYY-MM-DD form",
        },
        {
          "field": "scopes.0",
          "file": "consent.csv",
          "row": 2,
          "rule": "must be lowercase letters, digits or "-"",
        },
        {
          "field": "withdrawn_on",
          "file": "consent.csv",
          "row": 2,
          "rule": "is required when status is withdrawn",
        },
      ]
    `);
    expect(await listObjects(clients().s3, eu.buckets.catalog, consentPartsPrefix(study))).toEqual([]);
  });
});

describe('cancellation', () => {
  it('stops an ingestion mid-curation: nothing is curated or recorded, and the worker cleans its scratch', async () => {
    const { pkg, handle } = await submitUntilCurating(clients(), {
      studyId: 'ST-CANCEL',
      rows: 600_000,
      subjects: 2000,
      seed: 41,
    });
    await sleep(500);
    await handle.cancel();
    const error = await failureOf(handle.result());
    expect(failureChain(error)).toEqual(['WorkflowFailedError', 'CancelledFailure']);
    // The curation activity removes its scratch last: once it is gone, nothing of this attempt can still be written.
    const work = path.join(clients().state.dataDir, 'scratch', 'eu', 'work', 'curated', pkg.packageId);
    const deadlineClean = Date.now() + 30_000;
    while (existsSync(work)) {
      if (Date.now() > deadlineClean) throw new Error(`${work} was not cleaned`);
      await sleep(200);
    }
    const datasetId = datasetIdFor('eu', pkg.packageId);
    expect(await listObjects(clients().s3, eu.buckets.curated, `datasets/${datasetId}/`)).toEqual([]);
    expect(await listObjects(clients().s3, eu.buckets.catalog, `datasets/${datasetId}`)).toEqual([]);
  });
});
