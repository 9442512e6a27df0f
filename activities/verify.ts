import type { S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { type z } from 'zod';
import type { Jurisdiction } from '../schemas/jurisdiction';
import {
  JSON_MANIFEST_FILE,
  JsonManifestSchema,
  PACKAGE_METADATA_FILE,
  PackageMetadataSchema,
  type ManifestEntry,
  type PackageMetadata,
} from '../schemas/package';
import type { IngestPackageInput, PackageProblem } from '../schemas/workflows';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { inLanes } from '../lib/lanes';
import { downloadHashed, getObjectOrUndefined, hashObject, listObjects } from '../lib/objects';
import {
  packageDigest,
  parseTagFile,
  parseBagManifest,
  parseBagitDeclaration,
  parseOxum,
  summarizeProblems,
  unsafePathReason,
} from '../lib/package';
import { ErrorType } from '../workflows/contracts';

export interface VerifiedFile {
  path: string;
  sha256: string;
  bytes: number;
}

export interface VerifiedPackage {
  metadata: PackageMetadata;
  files: VerifiedFile[];
}

export function rejectPackage(problems: PackageProblem[]): ApplicationFailure {
  return ApplicationFailure.nonRetryable(summarizeProblems(problems), ErrorType.PackageRejected, { problems });
}

const BAG_TAG_FILES = new Set([
  'bagit.txt',
  'bag-info.txt',
  'manifest-sha256.txt',
  'tagmanifest-sha256.txt',
  PACKAGE_METADATA_FILE,
]);

function zodProblems(file: string, error: z.ZodError): PackageProblem[] {
  return error.issues.map((issue) => ({
    file,
    ...(issue.path.length ? { field: issue.path.join('.') } : {}),
    rule: issue.message,
  }));
}

/**
 * Reads the package's manifest and metadata from landing and checks every file against them: path safety,
 * missing and extra files, Payload-Oxum, and each file's SHA-256 streamed from storage.
 * Reads only; a retry repeats the same checks.
 */
export function stagedFile(stageDir: string, packageId: string, sha256: string): string {
  return path.join(stageDir, packageId, sha256);
}

export async function verifyPackage(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  input: IngestPackageInput,
  stageDir?: string,
): Promise<VerifiedPackage> {
  const { bucket, prefix } = input.landing;
  const problems: PackageProblem[] = [];
  const stored = new Map((await listObjects(s3, bucket, prefix)).map((o) => [o.key.slice(prefix.length), o.size]));
  const read = (name: string) => getObjectOrUndefined(s3, bucket, `${prefix}${name}`);

  let entries: ManifestEntry[];
  let metadataBytes: Buffer | undefined;
  let manifestBytes: Buffer | undefined;
  let payloadFiles: string[];
  let oxum: { bytes: number; files: number } | undefined;
  if (input.layout === 'bagit') {
    const bagit = await read('bagit.txt');
    if (!bagit) problems.push({ file: 'bagit.txt', rule: 'required BagIt declaration is missing' });
    else parseBagitDeclaration(bagit.toString('utf8'), problems);
    const info = await read('bag-info.txt');
    if (!info) problems.push({ file: 'bag-info.txt', rule: 'required bag-info.txt is missing' });
    else {
      const rawOxum = parseTagFile(info.toString('utf8')).get('Payload-Oxum');
      oxum = parseOxum(rawOxum);
      if (!oxum)
        problems.push({
          file: 'bag-info.txt',
          field: 'Payload-Oxum',
          rule: 'must be present as <octets>.<file count>',
        });
    }
    manifestBytes = await read('manifest-sha256.txt');
    if (!manifestBytes) problems.push({ file: 'manifest-sha256.txt', rule: 'required SHA-256 manifest is missing' });
    entries = manifestBytes ? parseBagManifest(manifestBytes.toString('utf8'), 'manifest-sha256.txt', problems) : [];
    metadataBytes = await read(PACKAGE_METADATA_FILE);
    payloadFiles = [...stored.keys()].filter((p) => !BAG_TAG_FILES.has(p));
    for (const entry of entries) {
      if (!entry.path.startsWith('data/') && !unsafePathReason(entry.path)) {
        problems.push({ file: 'manifest-sha256.txt', field: entry.path, rule: 'payload files must be under data/' });
      }
    }
  } else {
    manifestBytes = await read(JSON_MANIFEST_FILE);
    metadataBytes = manifestBytes;
    entries = [];
    if (manifestBytes) {
      try {
        const parsed = JsonManifestSchema.safeParse(JSON.parse(manifestBytes.toString('utf8')));
        if (parsed.success) entries = parsed.data.files;
        else problems.push(...zodProblems(JSON_MANIFEST_FILE, parsed.error));
      } catch {
        problems.push({ file: JSON_MANIFEST_FILE, rule: 'is not valid JSON' });
      }
    }
    payloadFiles = [...stored.keys()].filter((p) => p !== JSON_MANIFEST_FILE);
  }

  if (!metadataBytes) {
    const file = input.layout === 'bagit' ? PACKAGE_METADATA_FILE : JSON_MANIFEST_FILE;
    problems.push({ file, rule: 'required package metadata is missing' });
  }
  if (manifestBytes && metadataBytes) {
    const digest = packageDigest(manifestBytes, input.layout === 'bagit' ? metadataBytes : Buffer.alloc(0));
    if (digest.manifestSha256 !== input.manifestSha256) {
      problems.push({
        file: input.layout === 'bagit' ? 'manifest-sha256.txt' : JSON_MANIFEST_FILE,
        rule: 'changed after submission',
      });
    }
  }

  let metadata: PackageMetadata | undefined;
  if (metadataBytes) {
    const file = input.layout === 'bagit' ? PACKAGE_METADATA_FILE : JSON_MANIFEST_FILE;
    try {
      const raw = JSON.parse(metadataBytes.toString('utf8')) as Record<string, unknown>;
      if (input.layout === 'json') {
        delete raw.files;
        delete raw.format;
      }
      const parsed = PackageMetadataSchema.safeParse(raw);
      if (parsed.success) metadata = parsed.data;
      else problems.push(...zodProblems(file, parsed.error));
    } catch {
      problems.push({ file, rule: 'is not valid JSON' });
    }
  }
  if (metadata) {
    if (metadata.jurisdiction !== jurisdiction.id) {
      problems.push({
        file: PACKAGE_METADATA_FILE,
        field: 'jurisdiction',
        rule: `package is for "${metadata.jurisdiction}", not "${jurisdiction.id}"`,
      });
    }
    if (!jurisdiction.retention[metadata.dataClass]) {
      problems.push({
        file: PACKAGE_METADATA_FILE,
        field: 'dataClass',
        rule: `jurisdiction ${jurisdiction.id} has no retention rule for data class "${metadata.dataClass}" (known: ${Object.keys(jurisdiction.retention).join(', ')})`,
      });
    }
  }

  const unreadable = new Map(input.unreadable.map((u) => [u.path, u.reason]));
  const listed = new Set<string>();
  const safeEntries: ManifestEntry[] = [];
  const manifestFile = input.layout === 'bagit' ? 'manifest-sha256.txt' : JSON_MANIFEST_FILE;
  for (const entry of entries) {
    const unsafe = unsafePathReason(entry.path);
    if (unsafe) {
      problems.push({ file: entry.path, rule: unsafe });
      continue;
    }
    if (listed.has(entry.path)) {
      problems.push({ file: entry.path, rule: `listed twice in ${manifestFile}` });
      continue;
    }
    listed.add(entry.path);
    const reason = unreadable.get(entry.path);
    if (reason) problems.push({ file: entry.path, rule: `unreadable: ${reason}` });
    else if (!stored.has(entry.path))
      problems.push({ file: entry.path, rule: `listed in ${manifestFile} but missing from the package` });
    else safeEntries.push(entry);
  }
  for (const [path, reason] of unreadable) {
    if (!listed.has(path)) problems.push({ file: path, rule: `unreadable: ${reason}` });
  }
  for (const path of payloadFiles) {
    if (!listed.has(path)) problems.push({ file: path, rule: `not listed in ${manifestFile}` });
  }
  if (metadata) {
    for (const table of metadata.tables) {
      if (!listed.has(table.path))
        problems.push({ file: table.path, rule: `declared in the package metadata but not listed in ${manifestFile}` });
    }
  }
  // Unreadable files have no known size, and are already a reason to reject.
  if (oxum && unreadable.size === 0) {
    const bytes = payloadFiles.reduce((sum, p) => sum + (stored.get(p) ?? 0), 0);
    const count = payloadFiles.length;
    if (oxum.bytes !== bytes || oxum.files !== count) {
      problems.push({
        file: 'bag-info.txt',
        field: 'Payload-Oxum',
        rule: `declares ${oxum.bytes} bytes in ${oxum.files} files, the payload holds ${bytes} bytes in ${count} files`,
      });
    }
  }
  if (problems.length > 0) throw rejectPackage(problems);

  const files: VerifiedFile[] = [];
  let done = 0;
  let lastBeat = 0;
  const onBytes = (n: number) => {
    done += n;
    // Heartbeat details are encoded (and encrypted) on every call: beat twice a second, not once per chunk.
    if (Date.now() - lastBeat > 500) {
      lastBeat = Date.now();
      Context.current().heartbeat({ phase: 'verifying', bytes: done });
    }
  };
  // Table files are kept in this worker's stage directory, so curation on the same worker need not fetch them again.
  const tablePaths = new Set(metadata!.tables.map((t) => t.path));
  if (stageDir) await mkdir(path.join(stageDir, input.packageId), { recursive: true });
  const check = async (entry: ManifestEntry): Promise<{ sha256: string; bytes: number }> => {
    const key = `${prefix}${entry.path}`;
    if (!stageDir || !tablePaths.has(entry.path)) return hashObject(s3, bucket, key, onBytes);
    const partial = path.join(stageDir, input.packageId, `${entry.sha256}.partial`);
    const actual = await downloadHashed(s3, bucket, key, partial, onBytes);
    if (actual.sha256 === entry.sha256) await rename(partial, stagedFile(stageDir, input.packageId, entry.sha256));
    else await rm(partial, { force: true });
    return actual;
  };
  // Two streams at a time, largest files first, so the small files are checked while the largest one streams;
  // results are reported in manifest order.
  const queue = [...safeEntries.keys()].sort(
    (a, b) => (stored.get(safeEntries[b]!.path) ?? 0) - (stored.get(safeEntries[a]!.path) ?? 0),
  );
  const results = new Array<{ sha256: string; bytes: number }>(safeEntries.length);
  await inLanes(queue, 2, async (i) => {
    results[i] = await check(safeEntries[i]!);
  });
  safeEntries.forEach((entry, i) => {
    const actual = results[i]!;
    if (actual.sha256 !== entry.sha256) {
      problems.push({
        file: entry.path,
        rule: `SHA-256 mismatch: manifest says ${entry.sha256}, file has ${actual.sha256}`,
      });
    } else if (entry.bytes !== undefined && entry.bytes !== actual.bytes) {
      problems.push({
        file: entry.path,
        rule: `size mismatch: manifest says ${entry.bytes} bytes, file has ${actual.bytes}`,
      });
    } else {
      files.push({ path: entry.path, sha256: actual.sha256, bytes: actual.bytes });
    }
  });
  if (problems.length > 0) {
    if (stageDir) await rm(path.join(stageDir, input.packageId), { recursive: true, force: true });
    throw rejectPackage(problems);
  }
  return { metadata: metadata!, files };
}
