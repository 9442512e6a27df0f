import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { datasetIdFor, ingestTaskQueue, ingestWorkflowId, RequestKind, SEARCH_ATTRIBUTES } from '../../contracts';
import { getJurisdiction } from '../../jurisdictions';
import type { IngestParams } from '../../schemas/ingest';
import type { Identity } from '../pki/identity';
import { signedInput } from './request';
import type { ingestPackageWorkflow } from '../../workflows';
import { LocalPackageRejected, verifyLocalPackage, type LocalPackage } from '../package/local';
import { inLanes } from '../runtime/lanes';
import { startOrAttach } from './start';
import { packageFileKey, packagePrefix } from '../storage/layout';
import { putStream } from '../storage/objects';
import { STUDY_METADATA, SUBMITTED_AT_METADATA } from '../storage/packages';

export { readLocalPackage, type LocalPackage } from '../package/local';

/** Where a package is uploaded in its jurisdiction's landing bucket. */
export const landingPrefix = packagePrefix;

export interface SubmitContext {
  client: Client;
  s3: S3Client;
  /** Who submits: the request is signed with this identity. */
  identity: Identity;
  onUpload?: (done: number, total: number) => void;
}

/**
 * Hands a package over: uploads it to its jurisdiction's landing bucket and starts its ingestion workflow.
 * A package already ingested (or being ingested) is not uploaded again: the existing workflow is returned.
 */
export async function submitPackage(
  ctx: SubmitContext,
  pkg: LocalPackage,
): Promise<{ handle: WorkflowHandle<typeof ingestPackageWorkflow>; started: boolean }> {
  const jurisdiction = getJurisdiction(pkg.metadata.jurisdiction);
  const workflowId = ingestWorkflowId(jurisdiction.id, pkg.packageId);
  const existing = ctx.client.workflow.getHandle<typeof ingestPackageWorkflow>(workflowId);
  try {
    const described = await existing.describe();
    if (described.status.name === 'RUNNING' || described.status.name === 'COMPLETED') {
      // Same manifest as a package already submitted: the files must still be the ones it lists, or what the steward
      // holds is damaged and must not pass for the dataset ingested earlier.
      const problems = await verifyLocalPackage(pkg);
      if (problems.length > 0) {
        throw new LocalPackageRejected(pkg.dir, problems, datasetIdFor(jurisdiction.id, pkg.packageId));
      }
      return { handle: existing, started: false };
    }
  } catch (error) {
    if ((error as Error).name !== 'WorkflowNotFoundError') throw error;
  }

  const bucket = jurisdiction.buckets.landing;
  const prefix = landingPrefix(pkg.packageId);
  const total = pkg.files.reduce((sum, f) => sum + f.bytes, 0);
  // Raw data counts its retention from submission: the sweep reads this (never later than storage's own date).
  const metadata = { [SUBMITTED_AT_METADATA]: new Date().toISOString(), [STUDY_METADATA]: pkg.metadata.studyId };
  let done = 0;
  // Two uploads at a time, largest files first: the small files go up while the largest one streams.
  const queue = [...pkg.files].sort((a, b) => b.bytes - a.bytes);
  const upload = async (file: (typeof pkg.files)[number]) => {
    const body = createReadStream(file.absolute, { highWaterMark: 1024 * 1024 }).pipe(
      new Transform({
        transform(chunk: Buffer, _encoding, next) {
          done += chunk.length;
          ctx.onUpload?.(done, total);
          next(null, chunk);
        },
      }),
    );
    await putStream(ctx.s3, bucket, packageFileKey(prefix, file.relative), body, { bytes: file.bytes, metadata });
  };
  await inLanes(queue, 2, upload);
  ctx.onUpload?.(total, total);

  const params: IngestParams = {
    packageId: pkg.packageId,
    manifestSha256: pkg.manifestSha256,
    layout: pkg.layout,
    jurisdiction: jurisdiction.id,
    landing: { bucket, prefix },
    metadata: pkg.metadata,
    unreadable: pkg.unreadable,
  };
  const requestId = randomUUID();
  const input = signedInput(ctx.identity, { action: 'ingest', jurisdiction: jurisdiction.id, params, requestId });
  return startOrAttach<typeof ingestPackageWorkflow>(ctx.client, 'ingestPackageWorkflow', {
    args: [input],
    taskQueue: ingestTaskQueue(jurisdiction.id),
    workflowId,
    workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
    typedSearchAttributes: [
      { key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction.id },
      { key: SEARCH_ATTRIBUTES.studyId, value: pkg.metadata.studyId },
      { key: SEARCH_ATTRIBUTES.datasetId, value: datasetIdFor(jurisdiction.id, pkg.packageId) },
      { key: SEARCH_ATTRIBUTES.requestId, value: requestId },
      { key: SEARCH_ATTRIBUTES.requestKind, value: RequestKind.Ingestion },
    ],
  });
}
