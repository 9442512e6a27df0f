import {
  CreateBucketCommand,
  GetBucketVersioningCommand,
  PutBucketVersioningCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Jurisdiction } from '../../schemas/jurisdiction';

function alreadyThere(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists';
}

/**
 * Creates a jurisdiction's buckets if missing: all versioned; the evidence bucket with S3 Object Lock,
 * so audit events and certificates cannot be overwritten or deleted before their retention ends.
 */
export async function ensureJurisdictionBuckets(s3: S3Client, jurisdiction: Jurisdiction): Promise<void> {
  for (const [role, bucket] of Object.entries(jurisdiction.buckets)) {
    try {
      await s3.send(
        new CreateBucketCommand({
          Bucket: bucket,
          ...(role === 'evidence' ? { ObjectLockEnabledForBucket: true } : {}),
        }),
      );
    } catch (error) {
      if (!alreadyThere(error)) throw error;
    }
    const versioning = await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }));
    if (versioning.Status !== 'Enabled') {
      await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    }
  }
}
