import { createHash, randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { datasetIdFor } from '../../contracts';
import type { DatasetOutput, DatasetRecord } from '../../schemas/dataset';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import { datasetRetention } from '../../lib/retention/rules';
import { inLanes } from '../../lib/runtime/lanes';
import { writeDatasetRecord } from '../../lib/storage/catalog';
import { datasetObjectKey, packagePrefix } from '../../lib/storage/layout';
import { putBytes } from '../../lib/storage/objects';

export interface ExpiredDemoOptions {
  studyId: string;
  datasets: number;
  objectsPerDataset: number;
  /** Bytes per object. */
  bytes?: number;
  /** Curated this long ago (default: 11 years, past every 10-year rule). */
  curatedAt?: string;
  /** Data class (default `real-world`, whose retention counts from curation). */
  dataClass?: string;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Writes synthetic datasets whose retention has ended, straight into a jurisdiction's curated and catalog buckets (no
 * ingestion, no subject data: random bytes), so that a retention sweep has something to find. Their objects carry
 * GOVERNANCE retention until tomorrow, as curated objects do while Steward keeps them: deleting them takes the sweep's
 * override. Returns the dataset ids.
 */
export async function writeExpiredDemoDatasets(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  options: ExpiredDemoOptions,
): Promise<string[]> {
  const dataClass = options.dataClass ?? 'real-world';
  const rule = jurisdiction.retention[dataClass];
  if (!rule) throw new Error(`jurisdiction ${jurisdiction.id} has no retention rule for ${dataClass}`);
  const curatedAt = options.curatedAt ?? new Date(Date.now() - 11 * 365.25 * 86_400_000).toISOString();
  const lockedUntil = new Date(Date.now() + 86_400_000);
  const retention = {
    ...datasetRetention(dataClass, rule, { curation: curatedAt }),
    lockedUntil: lockedUntil.toISOString(),
  };
  const ids: string[] = [];
  let done = 0;
  await inLanes(
    Array.from({ length: options.datasets }, (_, i) => i),
    8,
    async () => {
      const packageId = randomBytes(12).toString('hex');
      const datasetId = datasetIdFor(jurisdiction.id, packageId);
      const outputs: DatasetOutput[] = [];
      for (let t = 0; t < options.objectsPerDataset; t++) {
        const body = randomBytes(options.bytes ?? 256);
        const sha256 = createHash('sha256').update(body).digest();
        const key = datasetObjectKey(datasetId, `table-${t}.parquet`);
        const put = await putBytes(s3, jurisdiction.buckets.curated, key, body, {
          contentType: 'application/vnd.apache.parquet',
          lock: rule.objectLock ? { mode: rule.objectLock, until: lockedUntil } : null,
        });
        outputs.push({
          table: `table-${t}`,
          source: `data/table-${t}.csv`,
          bucket: jurisdiction.buckets.curated,
          key,
          versionId: put.versionId,
          sha256: sha256.toString('hex'),
          bytes: body.length,
          columns: [],
          rows: { in: 0, curated: 0, excluded: 0, excludedByReason: {} },
        });
      }
      const record: DatasetRecord = {
        format: 'steward-dataset/1',
        datasetId,
        packageId,
        jurisdiction: jurisdiction.id,
        studyId: options.studyId,
        protocolId: 'DEMO-EXPIRED',
        derivedFrom: [],
        erasures: [],
        run: null,
        dataClass,
        classification: rule.classification,
        purpose: 'primary-research',
        consentScopes: ['primary-research'],
        sourceSystem: 'steward-demo',
        keyVersions: [1],
        dateShiftDays: 0,
        createdAt: curatedAt,
        retention,
        holds: [],
        rows: { in: 0, curated: 0, excluded: 0, excludedByReason: {} },
        inputs: [],
        outputs,
        lineage: {
          landing: { bucket: jurisdiction.buckets.landing, prefix: packagePrefix(packageId) },
          manifestSha256: createHash('sha256').update(packageId).digest('hex'),
          workflowId: `demo-expired-${packageId}`,
          runId: 'demo',
          submittedBy: { id: 'Steward demo', role: 'steward' },
          source: null,
        },
      };
      await writeDatasetRecord(s3, jurisdiction.buckets.catalog, record);
      ids.push(datasetId);
      options.onProgress?.(++done, options.datasets);
    },
  );
  return ids.sort();
}
