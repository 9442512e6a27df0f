import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import { ErrorType, nonRetryable } from '../contracts';
import {
  VerifyProgressSchema,
  type IngestPackageInput,
  type PackageProblem,
  type VerifiedFile,
  type VerifiedPackage,
  type VerifyProgress,
} from '../schemas/ingest';
import type { Jurisdiction } from '../schemas/jurisdiction';
import type { ManifestEntry } from '../schemas/package';
import { checksumProblems, inspectPackage, type PackageSource } from '../lib/package/check';
import { rejectionMessage } from '../lib/package/rules';
import { checkSourceSignature } from '../lib/package/source';
import type { TrustAnchor } from '../lib/pki/authority';
import { readSourceRegistry } from '../lib/storage/catalog';
import { inLanes } from '../lib/runtime/lanes';
import { downloadHashed, getObjectOrUndefined, hashObject, listObjects } from '../lib/storage/objects';

export function rejectPackage(problems: PackageProblem[]) {
  return nonRetryable(ErrorType.PackageRejected, rejectionMessage(problems), { details: [{ problems }] });
}

/** Where verification keeps a table file it has checked, for curation on the same worker. */
export function stagedFile(stageDir: string, packageId: string, sha256: string): string {
  return path.join(stageDir, packageId, sha256);
}

/** The files a previous attempt of this activity checked, from its last heartbeat. */
function checkedBefore(): Map<string, VerifiedFile> {
  const parsed = VerifyProgressSchema.safeParse(Context.current().info.heartbeatDetails);
  return new Map(parsed.success ? parsed.data.checked.map((f) => [f.path, f]) : []);
}

async function landingSource(s3: S3Client, input: IngestPackageInput): Promise<PackageSource> {
  const { bucket, prefix } = input.landing;
  const stored = new Map((await listObjects(s3, bucket, prefix)).map((o) => [o.key.slice(prefix.length), o.size]));
  return {
    layout: input.layout,
    stored,
    unreadable: new Map(input.unreadable.map((u) => [u.path, u.reason])),
    read: (name) => getObjectOrUndefined(s3, bucket, `${prefix}${name}`),
  };
}

/**
 * Checks a package in landing against its manifest and metadata: path safety, missing and extra files, Payload-Oxum,
 * the manifest digest the submitter computed, and each file's SHA-256 streamed from storage. Table files are kept in
 * this worker's stage directory, so curation on the same worker need not fetch them again.
 * Reads only. Resumable: a retry skips the files its previous attempt reported checked in heartbeats.
 */
export async function verifyPackage(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  input: IngestPackageInput,
  options: { stageDir?: string | undefined; trust: TrustAnchor },
): Promise<VerifiedPackage> {
  const { stageDir } = options;
  const { bucket, prefix } = input.landing;
  const source = await landingSource(s3, input);
  const inspected = await inspectPackage(source, {
    jurisdiction: jurisdiction.id,
    manifestSha256: input.manifestSha256,
  });
  const { problems, entries } = inspected;
  if (problems.length > 0) throw rejectPackage(problems);
  const metadata = inspected.metadata!;
  // Source authentication, before any payload byte is read: who signed the manifest, against the study's sources.
  const registry = await readSourceRegistry(s3, jurisdiction.buckets.catalog, metadata.studyId);
  const signed = await checkSourceSignature(input.layout, source.read, {
    registry,
    required: jurisdiction.requireSourceSignature || registry?.required === true,
    caPem: options.trust.caPem(),
    revoked: await options.trust.revoked(),
    now: new Date(),
  });
  if (signed.problems.length > 0) throw rejectPackage(signed.problems);

  const resumed = checkedBefore();
  const checked: VerifiedFile[] = [...resumed.values()];
  let done = 0;
  let lastBeat = 0;
  const beat = (force = false) => {
    // Heartbeat details are encoded (and encrypted) on every call: beat twice a second, not once per chunk.
    if (force || Date.now() - lastBeat > 500) {
      lastBeat = Date.now();
      Context.current().heartbeat({ phase: 'verifying', checked, bytes: done } satisfies VerifyProgress);
    }
  };
  const tablePaths = new Set(metadata.tables.map((t) => t.path));
  if (stageDir) await mkdir(path.join(stageDir, input.packageId), { recursive: true });
  const check = async (entry: ManifestEntry): Promise<{ sha256: string; bytes: number }> => {
    const key = `${prefix}${entry.path}`;
    const onBytes = (n: number) => {
      done += n;
      beat();
    };
    if (!stageDir || !tablePaths.has(entry.path)) return hashObject(s3, bucket, key, onBytes);
    const partial = path.join(stageDir, input.packageId, `${entry.sha256}.partial-${process.pid}`);
    const actual = await downloadHashed(s3, bucket, key, partial, onBytes);
    if (actual.sha256 === entry.sha256) await rename(partial, stagedFile(stageDir, input.packageId, entry.sha256));
    else await rm(partial, { force: true });
    return actual;
  };
  // A file an earlier attempt checked against this same manifest entry is not read again (curation re-checks every
  // table file's checksum before using it).
  const results = entries.map((e) => {
    const earlier = resumed.get(e.path);
    return earlier && earlier.sha256 === e.sha256 ? { sha256: earlier.sha256, bytes: earlier.bytes } : undefined;
  });
  // Two streams at a time, largest files first, so the small files are checked while the largest one streams;
  // results are reported in manifest order.
  const queue = [...entries.keys()]
    .filter((i) => results[i] === undefined)
    .sort((a, b) => (source.stored.get(entries[b]!.path) ?? 0) - (source.stored.get(entries[a]!.path) ?? 0));
  await inLanes(queue, 2, async (i) => {
    const actual = await check(entries[i]!);
    results[i] = actual;
    if (actual.sha256 === entries[i]!.sha256) {
      checked.push({ path: entries[i]!.path, ...actual });
      beat(true);
    }
  });
  const mismatches = checksumProblems(
    entries,
    results.map((r) => r!),
  );
  if (mismatches.length > 0) {
    if (stageDir) await rm(path.join(stageDir, input.packageId), { recursive: true, force: true });
    throw rejectPackage(mismatches);
  }
  return {
    metadata,
    files: entries.map((e, i) => ({ path: e.path, sha256: results[i]!.sha256, bytes: results[i]!.bytes })),
    source: signed.signature,
  };
}
