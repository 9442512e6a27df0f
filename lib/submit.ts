import { createReadStream } from 'node:fs';
import { lstat, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { z } from 'zod';
import { getJurisdiction } from '../jurisdictions';
import type { Principal } from '../schemas/common';
import {
  JSON_MANIFEST_FILE,
  JsonManifestSchema,
  PACKAGE_METADATA_FILE,
  PackageMetadataSchema,
  type PackageMetadata,
} from '../schemas/package';
import type { IngestPackageInput, UnreadableFile } from '../schemas/workflows';
import type { ingestPackageWorkflow } from '../workflows';
import { datasetIdFor, ingestTaskQueue, ingestWorkflowId, SEARCH_ATTRIBUTES } from '../workflows/contracts';
import { inLanes } from './lanes';
import { UserError } from './errors';
import { packageDigest } from './package';

export interface LocalPackage {
  dir: string;
  layout: 'bagit' | 'json';
  metadata: PackageMetadata;
  manifestSha256: string;
  packageId: string;
  files: { relative: string; absolute: string; bytes: number }[];
  unreadable: UnreadableFile[];
}

async function walk(root: string, dir = root, out: LocalPackage['files'] = [], bad: UnreadableFile[] = []) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const absolute = path.join(dir, entry.name);
    const relative = path.relative(root, absolute).split(path.sep).join('/');
    const stats = await lstat(absolute);
    if (stats.isSymbolicLink()) bad.push({ path: relative, reason: 'symbolic links are not accepted' });
    else if (stats.isDirectory()) await walk(root, absolute, out, bad);
    else if (!stats.isFile()) bad.push({ path: relative, reason: 'not a regular file' });
    else out.push({ relative, absolute, bytes: stats.size });
  }
  return { files: out, unreadable: bad };
}

function metadataError(file: string, error: z.ZodError): UserError {
  return new UserError(`${file}: invalid package metadata\n${z.prettifyError(error)}`);
}

/**
 * Reads a package directory far enough to submit it: its layout, metadata (validated) and file list.
 * Checksums are not verified here; the ingestion workflow does that, inside the jurisdiction.
 */
export async function readLocalPackage(dir: string): Promise<LocalPackage> {
  const root = path.resolve(dir);
  const stats = await lstat(root).catch(() => undefined);
  if (!stats?.isDirectory())
    throw new UserError(`${dir}: not a directory; a package is a BagIt bag or a directory with ${JSON_MANIFEST_FILE}`);
  const { files, unreadable } = await walk(root);
  const names = new Set(files.map((f) => f.relative));
  const readJson = async (file: string) => {
    try {
      return JSON.parse(await readFile(path.join(root, file), 'utf8')) as unknown;
    } catch (error) {
      throw new UserError(`${path.join(dir, file)}: not valid JSON (${(error as Error).message})`);
    }
  };

  if (names.has('bagit.txt')) {
    if (!names.has(PACKAGE_METADATA_FILE)) {
      throw new UserError(
        `${dir}: BagIt bag without ${PACKAGE_METADATA_FILE}; Steward needs it as a tag file (see README, "Package format")`,
      );
    }
    if (!names.has('manifest-sha256.txt')) throw new UserError(`${dir}: BagIt bag without manifest-sha256.txt`);
    const parsed = PackageMetadataSchema.safeParse(await readJson(PACKAGE_METADATA_FILE));
    if (!parsed.success) throw metadataError(path.join(dir, PACKAGE_METADATA_FILE), parsed.error);
    const digest = packageDigest(
      await readFile(path.join(root, 'manifest-sha256.txt')),
      await readFile(path.join(root, PACKAGE_METADATA_FILE)),
    );
    return { dir: root, layout: 'bagit', metadata: parsed.data, ...digest, files, unreadable };
  }
  if (names.has(JSON_MANIFEST_FILE)) {
    const parsed = JsonManifestSchema.safeParse(await readJson(JSON_MANIFEST_FILE));
    if (!parsed.success) throw metadataError(path.join(dir, JSON_MANIFEST_FILE), parsed.error);
    const { files: _listed, format: _format, ...metadata } = parsed.data;
    const digest = packageDigest(await readFile(path.join(root, JSON_MANIFEST_FILE)), Buffer.alloc(0));
    return { dir: root, layout: 'json', metadata, ...digest, files, unreadable };
  }
  throw new UserError(`${dir}: not a package: found neither bagit.txt (BagIt bag) nor ${JSON_MANIFEST_FILE}`);
}

export function landingPrefix(packageId: string): string {
  return `packages/${packageId}/`;
}

export interface SubmitContext {
  client: Client;
  s3: S3Client;
  principal: Principal;
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
    if (described.status.name === 'RUNNING' || described.status.name === 'COMPLETED')
      return { handle: existing, started: false };
  } catch (error) {
    if ((error as Error).name !== 'WorkflowNotFoundError') throw error;
  }

  const bucket = jurisdiction.buckets.landing;
  const prefix = landingPrefix(pkg.packageId);
  const total = pkg.files.reduce((sum, f) => sum + f.bytes, 0);
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
    await ctx.s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${file.relative}`, Body: body, ContentLength: file.bytes }),
    );
  };
  await inLanes(queue, 2, upload);
  ctx.onUpload?.(total, total);

  const input: IngestPackageInput = {
    packageId: pkg.packageId,
    manifestSha256: pkg.manifestSha256,
    layout: pkg.layout,
    jurisdiction: jurisdiction.id,
    landing: { bucket, prefix },
    metadata: pkg.metadata,
    unreadable: pkg.unreadable,
    submittedBy: ctx.principal,
  };
  try {
    const handle = await ctx.client.workflow.start<typeof ingestPackageWorkflow>('ingestPackageWorkflow', {
      args: [input],
      taskQueue: ingestTaskQueue(jurisdiction.id),
      workflowId,
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      typedSearchAttributes: [
        { key: SEARCH_ATTRIBUTES.jurisdiction, value: jurisdiction.id },
        { key: SEARCH_ATTRIBUTES.studyId, value: pkg.metadata.studyId },
        { key: SEARCH_ATTRIBUTES.datasetId, value: datasetIdFor(jurisdiction.id, pkg.packageId) },
      ],
    });
    return { handle, started: true };
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) return { handle: existing, started: false };
    throw error;
  }
}
