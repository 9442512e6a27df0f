import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curatePackage, type CurateDeps } from '../../activities/curate';
import { stagedFile, verifyPackage } from '../../activities/verify';
import { getJurisdiction } from '../../jurisdictions';
import type { CurateProgress, CuratePackageInput, CuratePackageResult, IngestPackageInput } from '../../schemas/ingest';
import { FileKeyStore } from '../../lib/crypto/keystore';
import { TrustAnchor } from '../../lib/pki/authority';
import { tokenize } from '../../lib/crypto/pseudonymize';
import { TokenPool } from '../../lib/crypto/token-pool';
import { packageDigest } from '../../lib/package/rules';
import { writeConsentPart } from '../../lib/storage/catalog';
import { createS3Client } from '../../lib/storage/s3';
import { readParquet, sha256, smallMetadata, stackState, tempDir } from '../helpers';

// Curation re-checks each file against the checksum verification saw, whether it reads the copy verification staged
// on this worker or fetches the file from landing again (another worker, or after a restart).
const eu = getJurisdiction('eu');
const s3 = createS3Client(stackState().s3);
const pool = new TokenPool();
const STUDY = 'ST-INTEGRITY';
const GOOD = 'subject_id,full_name,visit_date,score,note\nI-1,Ann,2025-01-02,3,\n';
const TAMPERED = GOOD.replace('Ann', 'Eve');

let scratchDir: string;
let deps: CurateDeps;

beforeAll(async () => {
  scratchDir = await tempDir('steward-curate-');
  const keys = await FileKeyStore.open(path.join(scratchDir, 'keys'));
  deps = {
    s3,
    keys,
    jurisdiction: eu,
    scratchDir,
    workDir: path.join(scratchDir, 'work'),
    stageDir: path.join(scratchDir, 'staged'),
    duckdbMemoryLimit: '256MB',
    pool,
  };
  // I-1 consented to the package's purpose, under this test's own key store.
  const key = await keys.studyKey('eu', STUDY);
  await writeConsentPart(s3, eu.buckets.catalog, {
    format: 'steward-consent-part/1',
    jurisdiction: 'eu',
    studyId: STUDY,
    partId: 'import-integrity',
    kind: 'import',
    createdAt: '2025-01-01T00:00:00.000Z',
    entries: [
      {
        token: tokenize(key.material, key.version, 'I-1'),
        scopes: ['primary-research'],
        status: 'given',
        icfVersion: 'v1',
        givenOn: '2024-01-01',
        withdrawnOn: null,
        expiresOn: null,
        importedAt: '2025-01-01T00:00:00.000Z',
      },
    ],
  });
});

afterAll(async () => {
  await pool.close();
  s3.destroy();
});

async function landed(packageId: string, files: Record<string, string>): Promise<CuratePackageInput> {
  const prefix = `packages/${packageId}/`;
  for (const [name, body] of Object.entries(files)) {
    await s3.send(new PutObjectCommand({ Bucket: eu.buckets.landing, Key: `${prefix}${name}`, Body: body }));
  }
  return {
    packageId,
    datasetId: `ds-eu-${packageId}`,
    jurisdiction: 'eu',
    landing: { bucket: eu.buckets.landing, prefix },
    metadata: smallMetadata({ studyId: STUDY }),
    // What verification saw: the good bytes.
    files: [{ path: 'data/visits.csv', sha256: sha256(GOOD), bytes: Buffer.byteLength(GOOD) }],
    asOf: '2026-01-01',
    curatedAt: new Date().toISOString(),
  };
}

/** How an activity run failed, as a test pins it: the failure's class, type, whether a retry may help, message, details. */
async function failureOf(run: Promise<unknown>): Promise<Record<string, unknown>> {
  const error = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (error instanceof ApplicationFailure) {
    const { type, nonRetryable, message, details } = error;
    return { failure: 'ApplicationFailure', type, nonRetryable, message, details };
  }
  if (error instanceof Error) return { failure: error.name, message: error.message };
  throw new Error('expected the activity to fail');
}

async function curatedObjects(datasetId: string): Promise<number> {
  const listed = await s3.send(
    new ListObjectsV2Command({ Bucket: eu.buckets.curated, Prefix: `datasets/${datasetId}/` }),
  );
  return listed.KeyCount ?? 0;
}

describe('curation re-checks checksums', () => {
  it('rejects a staged copy that no longer matches, and curates nothing', async () => {
    const input = await landed('1e7e0000000000000000a001', { 'data/visits.csv': GOOD });
    const staged = stagedFile(deps.stageDir, input.packageId, input.files[0]!.sha256);
    await mkdir(path.dirname(staged), { recursive: true });
    await writeFile(staged, TAMPERED);
    expect(await failureOf(new MockActivityEnvironment().run(curatePackage, deps, input))).toMatchInlineSnapshot(`
      {
        "details": [
          {
            "problems": [
              {
                "file": "data/visits.csv",
                "rule": "changed in landing after verification (SHA-256 differs)",
              },
            ],
          },
        ],
        "failure": "ApplicationFailure",
        "message": "package rejected: data/visits.csv: changed in landing after verification (SHA-256 differs). Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again",
        "nonRetryable": true,
        "type": "PackageRejected",
      }
    `);
    expect(await curatedObjects(input.datasetId)).toBe(0);
  });

  it('rejects a landing object replaced after verification, and curates nothing', async () => {
    const input = await landed('1e7e0000000000000000a002', { 'data/visits.csv': TAMPERED });
    expect(await failureOf(new MockActivityEnvironment().run(curatePackage, deps, input))).toMatchInlineSnapshot(`
      {
        "details": [
          {
            "problems": [
              {
                "file": "data/visits.csv",
                "rule": "changed in landing after verification (SHA-256 differs)",
              },
            ],
          },
        ],
        "failure": "ApplicationFailure",
        "message": "package rejected: data/visits.csv: changed in landing after verification (SHA-256 differs). Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again",
        "nonRetryable": true,
        "type": "PackageRejected",
      }
    `);
    expect(await curatedObjects(input.datasetId)).toBe(0);
  });

  it('curates the same package when its bytes are the ones verified', async () => {
    const input = await landed('1e7e0000000000000000a003', { 'data/visits.csv': GOOD });
    const result: CuratePackageResult = await new MockActivityEnvironment().run(curatePackage, deps, input);
    expect(result.rows).toEqual({ in: 1, curated: 1, excluded: 0, excludedByReason: {} });
    expect(await curatedObjects(input.datasetId)).toBe(1);
    const { rows } = await readParquet(s3, eu.buckets.curated, result.outputs[0]!.key);
    const key = await deps.keys.studyKey('eu', STUDY);
    expect(rows).toEqual([
      {
        subject_id: tokenize(key.material, key.version, 'I-1'),
        full_name: tokenize(key.material, key.version, 'Ann'),
        visit_date: new Date('2025-01-02T00:00:00Z'),
        score: 3n,
      },
    ]);
  });
});

describe('long activities resume', () => {
  const twoTables = () => {
    const meta = smallMetadata({ studyId: STUDY });
    const visits = meta.tables[0]!;
    return {
      ...meta,
      tables: [visits, { ...visits, path: 'data/more.csv', name: 'more' }],
    };
  };

  it('a curation retry reuses the tables its previous attempt finished', async () => {
    const packageId = '1e7e0000000000000000b001';
    const input: CuratePackageInput = {
      ...(await landed(packageId, { 'data/visits.csv': GOOD })),
      metadata: twoTables(),
      files: [
        { path: 'data/visits.csv', sha256: sha256(GOOD), bytes: Buffer.byteLength(GOOD) },
        { path: 'data/more.csv', sha256: sha256(GOOD), bytes: Buffer.byteLength(GOOD) },
      ],
    };
    // Attempt 1: data/more.csv is not in landing yet, so the attempt fails after finishing visits, with storage's own
    // error (no ApplicationFailure), which Temporal retries.
    const first = new MockActivityEnvironment({ attempt: 1 });
    let progress: CurateProgress | undefined;
    first.on('heartbeat', (details: CurateProgress) => {
      if (details.tables) progress = details;
    });
    expect(await failureOf(first.run(curatePackage, deps, input))).toMatchInlineSnapshot(`
      {
        "failure": "NoSuchKey",
        "message": "The specified key does not exist.",
      }
    `);
    expect(progress?.tables.map((t) => t.index)).toEqual([0]);

    // Attempt 2: more.csv arrived and visits.csv is gone from landing: only a reused visits output can succeed.
    await s3.send(
      new PutObjectCommand({ Bucket: eu.buckets.landing, Key: `${input.landing.prefix}data/more.csv`, Body: GOOD }),
    );
    await s3.send(
      new DeleteObjectCommand({ Bucket: eu.buckets.landing, Key: `${input.landing.prefix}data/visits.csv` }),
    );
    const second = new MockActivityEnvironment({ attempt: 2, heartbeatDetails: progress });
    const result: CuratePackageResult = await second.run(curatePackage, deps, input);
    expect(result.outputs.map((o) => [o.table, o.rows.curated])).toEqual([
      ['visits', 1],
      ['more', 1],
    ]);
    expect(await curatedObjects(input.datasetId)).toBe(2);
  });

  it('a verification retry does not read again the files its previous attempt checked', async () => {
    const packageId = '1e7e0000000000000000b002';
    const metadata = smallMetadata({ studyId: STUDY });
    const manifest = Buffer.from(`${sha256(GOOD)}  data/visits.csv\n`);
    const tagFiles = {
      'bagit.txt': 'BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n',
      'bag-info.txt': `Payload-Oxum: ${Buffer.byteLength(GOOD)}.1\n`,
      'manifest-sha256.txt': manifest.toString(),
      'steward.json': JSON.stringify(metadata),
    };
    // Landing holds bytes of the right size that do not match the manifest.
    const { landing } = await landed(packageId, { ...tagFiles, 'data/visits.csv': TAMPERED });
    const input: IngestPackageInput = {
      packageId,
      manifestSha256: packageDigest(manifest, Buffer.from(tagFiles['steward.json'])).manifestSha256,
      layout: 'bagit',
      jurisdiction: 'eu',
      landing,
      metadata,
      unreadable: [],
      submittedBy: { id: 'Demo Steward', role: 'steward' },
    };
    const options = { trust: new TrustAnchor(path.join(stackState().dataDir, 'pki')) };
    expect(await failureOf(new MockActivityEnvironment().run(verifyPackage, s3, eu, input, options)))
      .toMatchInlineSnapshot(`
      {
        "details": [
          {
            "problems": [
              {
                "file": "data/visits.csv",
                "rule": "SHA-256 mismatch: manifest says 05454c624deefb643debba98023fd0e125fba156b6ccb8f2814571353af86dfb, file has ebad0ba4cda4a06d7106435c5998d12053ea963aaace5fd05095da7adaff24e8",
              },
            ],
          },
        ],
        "failure": "ApplicationFailure",
        "message": "package rejected: data/visits.csv: SHA-256 mismatch: manifest says 05454c624deefb643debba98023fd0e125fba156b6ccb8f2814571353af86dfb, file has ebad0ba4cda4a06d7106435c5998d12053ea963aaace5fd05095da7adaff24e8. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again",
        "nonRetryable": true,
        "type": "PackageRejected",
      }
    `);
    expect(await curatedObjects(`ds-eu-${packageId}`)).toBe(0);
    // A retry whose previous attempt reported the file checked (with the manifest's digest) does not read it again.
    const checked = [{ path: 'data/visits.csv', sha256: sha256(GOOD), bytes: Buffer.byteLength(GOOD) }];
    const retry = new MockActivityEnvironment({
      attempt: 2,
      heartbeatDetails: { phase: 'verifying', checked, bytes: 0 },
    });
    expect(await retry.run(verifyPackage, s3, eu, input, options)).toMatchObject({ files: checked });
  });
});
