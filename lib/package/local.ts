import { lstat, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import {
  JSON_MANIFEST_FILE,
  JsonManifestSchema,
  PACKAGE_METADATA_FILE,
  PackageMetadataSchema,
  type PackageMetadata,
} from '../../schemas/package';
import type { PackageProblem, UnreadableFile } from '../../schemas/ingest';
import { EXIT, UserError } from '../runtime/errors';
import { hashFile } from '../storage/objects';
import { checksumProblems, inspectPackage } from './check';
import { packageDigest, parseJsonFile } from './rules';

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
      return parseJsonFile(await readFile(path.join(root, file)));
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

/**
 * Checks a package on the steward's machine with the rules the worker applies in landing, checksums included:
 * missing, extra, unreadable or changed files, a wrong Payload-Oxum. Returns the problems (none: the package is whole).
 */
export async function verifyLocalPackage(pkg: LocalPackage): Promise<PackageProblem[]> {
  const stored = new Map(pkg.files.map((f) => [f.relative, f.bytes]));
  const inspected = await inspectPackage({
    layout: pkg.layout,
    stored,
    unreadable: new Map(pkg.unreadable.map((u) => [u.path, u.reason])),
    read: (name) => (stored.has(name) ? readFile(path.join(pkg.dir, ...name.split('/'))) : Promise.resolve(undefined)),
  });
  // Every listed file that is there is hashed, whatever else is wrong: the steward learns which files changed.
  const actual = [];
  for (const entry of inspected.entries) actual.push(await hashFile(path.join(pkg.dir, ...entry.path.split('/'))));
  return [...checksumProblems(inspected.entries, actual), ...inspected.problems];
}

/** A package found damaged on the steward's machine: nothing was submitted (exit code 3). */
export class LocalPackageRejected extends UserError {
  constructor(
    readonly dir: string,
    readonly problems: PackageProblem[],
    readonly datasetId: string,
  ) {
    super(
      `${dir} does not match its manifest; nothing was submitted, and dataset ${datasetId} ingested from this manifest earlier is untouched`,
      EXIT.rejected,
    );
  }
}
