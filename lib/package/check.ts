import type { z } from 'zod';
import { JURISDICTION_IDS, JURISDICTIONS } from '../../jurisdictions';
import type { PackageProblem } from '../../schemas/ingest';
import { STEWARD_CLASSES } from '../../schemas/jurisdiction';
import {
  JSON_MANIFEST_FILE,
  JsonManifestSchema,
  PACKAGE_METADATA_FILE,
  PackageMetadataSchema,
  type ManifestEntry,
  type PackageMetadata,
} from '../../schemas/package';
import {
  packageDigest,
  parseBagitDeclaration,
  parseBagManifest,
  parseJsonFile,
  parseOxum,
  parseTagFile,
  unsafePathReason,
} from './rules';
import { signatureFileOf } from './source';

/** Where a package's files are, locally or in landing: what is there, how large, and the tag files' bytes. */
export interface PackageSource {
  layout: 'bagit' | 'json';
  /** Every stored file, by path relative to the package root, with its size. */
  stored: Map<string, number>;
  /** Files that exist but cannot be read as regular files, with why. */
  unreadable: Map<string, string>;
  read(name: string): Promise<Buffer | undefined>;
}

export interface InspectedPackage {
  problems: PackageProblem[];
  metadata: PackageMetadata | undefined;
  /** Manifest entries that are safe, listed once and present: the files whose checksums are to be checked. */
  entries: ManifestEntry[];
  manifestSha256: string | undefined;
}

const BAG_TAG_FILES = new Set([
  'bagit.txt',
  'bag-info.txt',
  'manifest-sha256.txt',
  'tagmanifest-sha256.txt',
  PACKAGE_METADATA_FILE,
  signatureFileOf('bagit'),
]);

function zodProblems(file: string, error: z.ZodError): PackageProblem[] {
  return error.issues.map((issue) => ({
    file,
    ...(issue.path.length ? { field: issue.path.join('.') } : {}),
    rule: issue.message,
  }));
}

/**
 * Every check of a package short of its checksums: BagIt declaration, Payload-Oxum, manifest entries (safe paths,
 * listed once, present, readable), files not in the manifest, tables not in the manifest, and the metadata against
 * its schema and the jurisdiction (retention rule for the data class). The same rules run on the steward's machine
 * before a package is submitted and in the jurisdiction's worker on what reached landing.
 */
export async function inspectPackage(
  source: PackageSource,
  expect: { jurisdiction?: string; manifestSha256?: string } = {},
): Promise<InspectedPackage> {
  const { stored, layout } = source;
  const problems: PackageProblem[] = [];
  const manifestFile = layout === 'bagit' ? 'manifest-sha256.txt' : JSON_MANIFEST_FILE;
  const metadataFile = layout === 'bagit' ? PACKAGE_METADATA_FILE : JSON_MANIFEST_FILE;

  let entries: ManifestEntry[] = [];
  let oxum: { bytes: number; files: number } | undefined;
  const manifestBytes = await source.read(manifestFile);
  const metadataBytes = layout === 'bagit' ? await source.read(PACKAGE_METADATA_FILE) : manifestBytes;
  let payloadFiles: string[];
  if (layout === 'bagit') {
    const bagit = await source.read('bagit.txt');
    if (!bagit) problems.push({ file: 'bagit.txt', rule: 'required BagIt declaration is missing' });
    else parseBagitDeclaration(bagit.toString('utf8'), problems);
    const info = await source.read('bag-info.txt');
    if (!info) problems.push({ file: 'bag-info.txt', rule: 'required bag-info.txt is missing' });
    else {
      oxum = parseOxum(parseTagFile(info.toString('utf8')).get('Payload-Oxum'));
      if (!oxum) {
        problems.push({
          file: 'bag-info.txt',
          field: 'Payload-Oxum',
          rule: 'must be present as <octets>.<file count>',
        });
      }
    }
    if (!manifestBytes) problems.push({ file: manifestFile, rule: 'required SHA-256 manifest is missing' });
    else entries = parseBagManifest(manifestBytes.toString('utf8'), manifestFile, problems);
    payloadFiles = [...stored.keys()].filter((p) => !BAG_TAG_FILES.has(p));
    for (const entry of entries) {
      if (!entry.path.startsWith('data/') && !unsafePathReason(entry.path)) {
        problems.push({ file: manifestFile, field: entry.path, rule: 'payload files must be under data/' });
      }
    }
  } else {
    if (manifestBytes) {
      try {
        const parsed = JsonManifestSchema.safeParse(parseJsonFile(manifestBytes));
        if (parsed.success) entries = parsed.data.files;
        else problems.push(...zodProblems(JSON_MANIFEST_FILE, parsed.error));
      } catch {
        problems.push({ file: JSON_MANIFEST_FILE, rule: 'is not valid JSON' });
      }
    }
    payloadFiles = [...stored.keys()].filter((p) => p !== JSON_MANIFEST_FILE && p !== signatureFileOf('json'));
  }
  if (!metadataBytes) problems.push({ file: metadataFile, rule: 'required package metadata is missing' });

  const manifestSha256 =
    manifestBytes && metadataBytes
      ? packageDigest(manifestBytes, layout === 'bagit' ? metadataBytes : Buffer.alloc(0)).manifestSha256
      : undefined;
  if (manifestSha256 && expect.manifestSha256 && manifestSha256 !== expect.manifestSha256) {
    problems.push({ file: manifestFile, rule: 'changed after submission' });
  }

  let metadata: PackageMetadata | undefined;
  if (metadataBytes) {
    try {
      const raw = parseJsonFile(metadataBytes) as Record<string, unknown>;
      if (layout === 'json') {
        delete raw.files;
        delete raw.format;
        delete raw.erasures;
      }
      const parsed = PackageMetadataSchema.safeParse(raw);
      if (parsed.success) metadata = parsed.data;
      else problems.push(...zodProblems(metadataFile, parsed.error));
    } catch {
      // A JSON manifest is its own metadata: already reported above.
      if (layout === 'bagit') problems.push({ file: metadataFile, rule: 'is not valid JSON' });
    }
  }
  if (metadata) {
    if (expect.jurisdiction && metadata.jurisdiction !== expect.jurisdiction) {
      problems.push({
        file: metadataFile,
        field: 'jurisdiction',
        rule: `package is for "${metadata.jurisdiction}", not "${expect.jurisdiction}"`,
      });
    }
    const retention = JURISDICTIONS[metadata.jurisdiction]?.retention;
    if (!retention) {
      problems.push({
        file: metadataFile,
        field: 'jurisdiction',
        rule: `unknown jurisdiction "${metadata.jurisdiction}" (known: ${JURISDICTION_IDS.join(', ')})`,
      });
    } else if (!retention[metadata.dataClass] || STEWARD_CLASSES.includes(metadata.dataClass)) {
      const known = Object.keys(retention).filter((c) => !STEWARD_CLASSES.includes(c));
      problems.push({
        file: metadataFile,
        field: 'dataClass',
        rule: `jurisdiction ${metadata.jurisdiction} has no retention rule for data class "${metadata.dataClass}" (known: ${known.join(', ')})`,
      });
    }
  }

  const listed = new Set<string>();
  const safe: ManifestEntry[] = [];
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
    const reason = source.unreadable.get(entry.path);
    if (reason) problems.push({ file: entry.path, rule: `unreadable: ${reason}` });
    else if (!stored.has(entry.path)) {
      problems.push({ file: entry.path, rule: `listed in ${manifestFile} but missing from the package` });
    } else safe.push(entry);
  }
  for (const [path, reason] of source.unreadable) {
    if (!listed.has(path)) problems.push({ file: path, rule: `unreadable: ${reason}` });
  }
  for (const path of payloadFiles) {
    if (!listed.has(path)) problems.push({ file: path, rule: `not listed in ${manifestFile}` });
  }
  for (const table of metadata?.tables ?? []) {
    if (!listed.has(table.path)) {
      problems.push({ file: table.path, rule: `declared in the package metadata but not listed in ${manifestFile}` });
    }
  }
  // Unreadable files have no known size, and are already a reason to reject.
  if (oxum && source.unreadable.size === 0) {
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
  return { problems, metadata, entries: safe, manifestSha256 };
}

/** Compares each file's digest with its manifest entry; problems name the file and both digests or sizes. */
export function checksumProblems(
  entries: readonly ManifestEntry[],
  actual: readonly { sha256: string; bytes: number }[],
): PackageProblem[] {
  const problems: PackageProblem[] = [];
  entries.forEach((entry, i) => {
    const got = actual[i]!;
    if (got.sha256 !== entry.sha256) {
      problems.push({
        file: entry.path,
        rule: `SHA-256 mismatch: manifest says ${entry.sha256}, file has ${got.sha256}`,
      });
    } else if (entry.bytes !== undefined && entry.bytes !== got.bytes) {
      problems.push({
        file: entry.path,
        rule: `size mismatch: manifest says ${entry.bytes} bytes, file has ${got.bytes}`,
      });
    }
  });
  return problems;
}
