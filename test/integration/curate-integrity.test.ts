import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curatePackage, type CuratePackageInput, type CuratePackageResult } from '../../activities/curate';
import { stagedFile } from '../../activities/verify';
import { getJurisdiction } from '../../jurisdictions';
import { FileKeyStore } from '../../lib/keystore';
import { createS3Client } from '../../lib/s3';
import { TokenPool } from '../../lib/token-pool';
import { sha256, smallMetadata, stackState, tempDir } from '../helpers';

// Curation re-checks each file against the checksum verification saw, whether it reads the copy verification staged
// on this worker or fetches the file from landing again (another worker, or after a restart).
const eu = getJurisdiction('eu');
const s3 = createS3Client(stackState().s3);
const pool = new TokenPool();
const GOOD = 'subject_id,full_name,visit_date,score,note\nI-1,Ann,2025-01-02,3,\n';
const TAMPERED = GOOD.replace('Ann', 'Eve');

let scratchDir: string;
let deps: Parameters<typeof curatePackage>[0];

beforeAll(async () => {
  scratchDir = await tempDir('steward-curate-');
  deps = {
    s3,
    keys: await FileKeyStore.open(path.join(scratchDir, 'keys')),
    jurisdiction: eu,
    scratchDir,
    stageDir: path.join(scratchDir, 'staged'),
    duckdbMemoryLimit: '256MB',
    pool,
  };
});

afterAll(async () => {
  await pool.close();
  s3.destroy();
});

async function landed(packageId: string, body: string): Promise<CuratePackageInput> {
  const prefix = `packages/${packageId}/`;
  await s3.send(new PutObjectCommand({ Bucket: eu.buckets.landing, Key: `${prefix}data/visits.csv`, Body: body }));
  return {
    packageId,
    datasetId: `ds-eu-${packageId}`,
    jurisdiction: 'eu',
    landing: { bucket: eu.buckets.landing, prefix },
    metadata: smallMetadata({ studyId: 'ST-INTEGRITY' }),
    // What verification saw: the good bytes.
    files: [{ path: 'data/visits.csv', sha256: sha256(GOOD), bytes: Buffer.byteLength(GOOD) }],
    asOf: '2026-01-01',
  };
}

async function curatedObjects(datasetId: string): Promise<number> {
  const listed = await s3.send(
    new ListObjectsV2Command({ Bucket: eu.buckets.curated, Prefix: `datasets/${datasetId}/` }),
  );
  return listed.KeyCount ?? 0;
}

describe('curation re-checks checksums', () => {
  it('rejects a staged copy that no longer matches, and curates nothing', async () => {
    const input = await landed('integrity000000000000001', GOOD);
    const staged = stagedFile(deps.stageDir, input.packageId, input.files[0]!.sha256);
    await mkdir(path.dirname(staged), { recursive: true });
    await writeFile(staged, TAMPERED);
    await expect(
      new MockActivityEnvironment().run(curatePackage, deps, input),
    ).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ApplicationFailure: package rejected: data/visits.csv: changed in landing after verification (SHA-256 differs)]`,
    );
    expect(await curatedObjects(input.datasetId)).toBe(0);
  });

  it('rejects a landing object replaced after verification, and curates nothing', async () => {
    const input = await landed('integrity000000000000002', TAMPERED);
    await expect(
      new MockActivityEnvironment().run(curatePackage, deps, input),
    ).rejects.toThrowErrorMatchingInlineSnapshot(
      `[ApplicationFailure: package rejected: data/visits.csv: changed in landing after verification (SHA-256 differs)]`,
    );
    expect(await curatedObjects(input.datasetId)).toBe(0);
  });

  it('curates the same package when its bytes are the ones verified', async () => {
    const input = await landed('integrity000000000000003', GOOD);
    const result: CuratePackageResult = await new MockActivityEnvironment().run(curatePackage, deps, input);
    expect(result.rows).toMatchObject({ in: 1 });
    expect(await curatedObjects(input.datasetId)).toBe(1);
  });
});
