import {
  CreateBucketCommand,
  GetBucketPolicyCommand,
  GetBucketVersioningCommand,
  GetObjectLockConfigurationCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { BucketRole, Jurisdiction } from '../../schemas/jurisdiction';

function alreadyThere(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return name === 'BucketAlreadyOwnedByYou' || name === 'BucketAlreadyExists';
}

/** Buckets whose objects S3 Object Lock protects: curated data (retention, legal holds) and evidence (write-once). */
export const LOCKED: readonly BucketRole[] = ['curated', 'evidence'];

async function ensureObjectLock(s3: S3Client, bucket: string): Promise<void> {
  const config = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: bucket })).catch(() => undefined);
  if (config?.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled') return;
  // A bucket made before Steward locked it: versioned buckets can be given Object Lock afterwards.
  await s3.send(
    new PutObjectLockConfigurationCommand({
      Bucket: bucket,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' },
    }),
  );
}

/**
 * Creates a jurisdiction's buckets if missing: all versioned; curated and evidence with S3 Object Lock, so storage
 * itself refuses to delete a version before its retention ends or while it is under legal hold.
 */
export async function ensureJurisdictionBuckets(s3: S3Client, jurisdiction: Jurisdiction): Promise<void> {
  for (const [role, bucket] of Object.entries(jurisdiction.buckets) as [BucketRole, string][]) {
    try {
      await s3.send(
        new CreateBucketCommand({
          Bucket: bucket,
          ...(LOCKED.includes(role) ? { ObjectLockEnabledForBucket: true } : {}),
        }),
      );
    } catch (error) {
      if (!alreadyThere(error)) throw error;
    }
    const versioning = await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }));
    if (versioning.Status !== 'Enabled') {
      await s3.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    }
    if (LOCKED.includes(role)) await ensureObjectLock(s3, bucket);
  }
}

/**
 * The bucket policy that confines a bucket to its jurisdiction's storage account: that account may do everything in
 * it (the curated bucket included: overriding GOVERNANCE retention is what a retention sweep does for versions
 * Steward's own precedence engine found expired; a legal hold or a duty to keep is never overridden, Steward checks
 * those itself, and COMPLIANCE retention cannot be overridden at all), and no other account is named. Once a bucket
 * has a policy, versitygw decides by it alone, so another jurisdiction's account gets AccessDenied from storage; on
 * AWS the same statement is the bucket policy (or the account's IAM policy) of README's "Residency".
 *
 * The evidence bucket also denies that account every way to remove evidence: deleting an object or a version (a
 * delete marker included), overriding retention, and changing the bucket's policy, versioning or lock configuration.
 * Writing evidence needs `s3:PutObjectRetention` (a write with a lock date is one); evidence is locked in COMPLIANCE
 * mode, which nobody can shorten. Evidence is written, never deleted, by every Steward account.
 */
export function residencyPolicy(bucket: string, accessKeyIds: readonly string[], role?: BucketRole) {
  const account = { AWS: [...accessKeyIds] };
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'StewardJurisdictionAccount',
        Effect: 'Allow',
        Principal: account,
        Action: ['s3:*'],
        Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`],
      },
      ...(role === 'evidence'
        ? [
            {
              Sid: 'StewardEvidenceIsNeverDeleted',
              Effect: 'Deny',
              Principal: account,
              Action: [...EVIDENCE_DENIED],
              Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`],
            },
          ]
        : []),
    ],
  };
}

/** What no Steward account may do in an evidence bucket. */
export const EVIDENCE_DENIED = [
  's3:DeleteObject',
  's3:DeleteObjectVersion',
  's3:BypassGovernanceRetention',
  's3:PutBucketPolicy',
  's3:DeleteBucketPolicy',
  's3:PutBucketVersioning',
  's3:PutBucketObjectLockConfiguration',
  's3:DeleteBucket',
] as const;

/** Puts the residency policy on every bucket of a jurisdiction (unchanged policies are left alone). */
export async function confineBuckets(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  accessKeyIds: readonly string[],
): Promise<void> {
  for (const [role, bucket] of Object.entries(jurisdiction.buckets) as [BucketRole, string][]) {
    const policy = residencyPolicy(bucket, accessKeyIds, role);
    const current = await s3.send(new GetBucketPolicyCommand({ Bucket: bucket })).catch(() => undefined);
    if (current?.Policy && JSON.stringify(JSON.parse(current.Policy)) === JSON.stringify(policy)) continue;
    await s3.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(policy) }));
  }
}
