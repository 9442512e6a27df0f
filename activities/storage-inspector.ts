import type { S3Client } from '@aws-sdk/client-s3';
import { inspectBuckets, type InventoryPart } from '../lib/qualification/inventory';
import type { Jurisdiction } from '../schemas/jurisdiction';

/**
 * The storage inspector's one activity: the jurisdiction's bucket settings, read with the storage administrator's
 * credentials (storage shows versioning and policies to its administrator and a bucket's owner only). It reads
 * settings and returns hashes and states: no object is read, written or deleted.
 */
export function createStorageInspectorActivities(deps: { s3: S3Client; jurisdiction: Jurisdiction }) {
  return {
    async inspectStorageActivity(): Promise<InventoryPart> {
      return inspectBuckets(deps.s3, deps.jurisdiction);
    },
  };
}
