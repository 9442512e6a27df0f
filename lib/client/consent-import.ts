import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { getJurisdiction } from '../../jurisdictions';
import type { Identity } from '../pki/identity';
import { signedInput } from './request';
import type { ImportConsentResult } from '../../schemas/consent';
import type { importConsentWorkflow } from '../../workflows';
import { consentImportWorkflowId, ingestTaskQueue, RequestKind, SEARCH_ATTRIBUTES } from '../../contracts';
import { startOrAttach } from './start';
import { STUDY_METADATA, SUBMITTED_AT_METADATA } from '../storage/packages';
import { consentUploadKey } from '../storage/layout';
import { hashFile, putStream } from '../storage/objects';
import { UserError } from '../runtime/errors';

/** Checks that a consent file names a readable regular file, before anything is uploaded or started. */
export async function assertConsentFile(file: string): Promise<void> {
  const stats = await stat(file).catch(() => undefined);
  if (!stats) throw new UserError(`${file}: no such file; consent import expects a CSV file`);
  if (stats.isDirectory()) throw new UserError(`${file} is a directory; consent import expects a CSV file`);
  if (!stats.isFile()) throw new UserError(`${file} is not a regular file; consent import expects a CSV file`);
}

/** Uploads a consent CSV to the jurisdiction's landing bucket and runs its import; the same file twice is one import. */
export async function importConsent(
  ctx: { client: Client; s3: S3Client; identity: Identity },
  file: string,
  jurisdictionId: string,
  studyId: string,
): Promise<ImportConsentResult> {
  const jurisdiction = getJurisdiction(jurisdictionId);
  await assertConsentFile(file);
  const { sha256, bytes } = await hashFile(file);
  const key = consentUploadKey(studyId, sha256);
  await putStream(ctx.s3, jurisdiction.buckets.landing, key, createReadStream(file), {
    bytes,
    sha256Hex: sha256,
    metadata: { [SUBMITTED_AT_METADATA]: new Date().toISOString(), [STUDY_METADATA]: studyId },
  });
  const workflowId = consentImportWorkflowId(jurisdiction.id, studyId, sha256);
  const requestId = randomUUID();
  const { handle } = await startOrAttach<typeof importConsentWorkflow>(ctx.client, 'importConsentWorkflow', {
    args: [
      signedInput(ctx.identity, {
        requestId,
        action: 'consent.import',
        jurisdiction: jurisdiction.id,
        params: {
          jurisdiction: jurisdiction.id,
          studyId,
          source: { bucket: jurisdiction.buckets.landing, key, sha256 },
          fileName: path.basename(file),
        },
      }),
    ],
    taskQueue: ingestTaskQueue(jurisdiction.id),
    workflowId,
    workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
    typedSearchAttributes: [
      { key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction.id },
      { key: SEARCH_ATTRIBUTES.studyId, value: studyId },
      { key: SEARCH_ATTRIBUTES.requestId, value: requestId },
      { key: SEARCH_ATTRIBUTES.requestKind, value: RequestKind.ConsentImport },
    ],
  });
  return handle.result();
}
