import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ErrorType, nonRetryable } from '../contracts';
import { CatalogMutationSchema, type CatalogMutation, type CatalogMutationResult } from '../schemas/catalog';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../schemas/parse';
import { destroyVaultEntries } from '../lib/crypto/vault';
import { readDatasetRecord, writeDatasetRecord } from '../lib/storage/catalog';
import { getObjectOrUndefined } from '../lib/storage/objects';

/** Changes to shared catalog objects, run only by each object's single writer (`catalogWriterWorkflow`). */
export function createCatalogActivities({ s3, jurisdiction }: { s3: S3Client; jurisdiction: Jurisdiction }) {
  const bucket = jurisdiction.buckets.catalog;
  return {
    /** Idempotent: each change states the object's new content, so applying it again changes nothing. */
    async applyCatalogMutationActivity(raw: CatalogMutation): Promise<CatalogMutationResult> {
      const mutation = parseInput(CatalogMutationSchema, raw, 'applyCatalogMutationActivity');
      switch (mutation.kind) {
        case 'dataset.outputs-replaced': {
          const record = await readDatasetRecord(s3, bucket, mutation.datasetId);
          if (!record) {
            throw nonRetryable(
              ErrorType.DatasetNotFound,
              `dataset ${mutation.datasetId} is not in the ${jurisdiction.id} catalog`,
            );
          }
          const same =
            JSON.stringify(record.outputs) === JSON.stringify(mutation.outputs) &&
            JSON.stringify(record.keyVersions) === JSON.stringify(mutation.keyVersions);
          if (same) return { changed: false, count: 0 };
          await writeDatasetRecord(s3, bucket, {
            ...record,
            outputs: mutation.outputs,
            keyVersions: mutation.keyVersions,
            rePseudonymizedAt: mutation.at,
          });
          return { changed: true, count: mutation.outputs.length };
        }
        case 'request.claimed': {
          const key = `requests/${mutation.requestId}.json`;
          const stored = await getObjectOrUndefined(s3, bucket, key);
          if (stored) {
            const claim = JSON.parse(stored.toString('utf8')) as { workflowId: string };
            if (claim.workflowId === mutation.workflowId) return { changed: false, count: 0 };
            throw nonRetryable(
              ErrorType.AccessDenied,
              `request ${mutation.requestId} was already used by workflow ${claim.workflowId}: a replayed request is refused`,
            );
          }
          await s3.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: key,
              Body: JSON.stringify({ ...mutation, claimedAt: new Date().toISOString() }),
              ContentType: 'application/json',
            }),
          );
          return { changed: true, count: 1 };
        }
        case 'vault.entries-destroyed': {
          const destroyed = await destroyVaultEntries(s3, bucket, mutation.studyId, mutation.tokens);
          return { changed: destroyed > 0, count: destroyed };
        }
      }
    },
  };
}
