import { createHash } from 'node:crypto';
import type { ManifestEntry } from '../../schemas/package';
import type { PackageProblem } from '../../schemas/ingest';

/** Why a payload path may not be used: absolute, `..`, backslashes, empty segments. `undefined` when it is fine. */
export function unsafePathReason(p: string): string | undefined {
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return 'absolute paths are not allowed';
  if (p.includes('\\')) return 'backslashes are not allowed in paths';
  const segments = p.split('/');
  if (segments.includes('..')) return 'path traversal ("..") is not allowed';
  if (segments.some((s) => s === '' || s === '.')) return 'empty or "." path segments are not allowed';
  if ([...p].some((ch) => ch.charCodeAt(0) < 0x20)) return 'control characters are not allowed in paths';
  return undefined;
}

/** RFC 8493 §2.1.3: manifest paths percent-encode CR, LF and %. */
function decodeBagPath(p: string): string {
  return p.replace(/%0D/gi, '\r').replace(/%0A/gi, '\n').replace(/%25/g, '%');
}

export function parseBagitDeclaration(text: string, problems: PackageProblem[]): void {
  const fields = parseTagFile(text);
  const version = fields.get('BagIt-Version');
  if (!version || !/^1\.\d+$|^0\.9[67]$/.test(version)) {
    problems.push({ file: 'bagit.txt', field: 'BagIt-Version', rule: 'must declare BagIt-Version 1.0 (RFC 8493)' });
  }
  const encoding = fields.get('Tag-File-Character-Encoding');
  if (!encoding || encoding.toUpperCase() !== 'UTF-8') {
    problems.push({ file: 'bagit.txt', field: 'Tag-File-Character-Encoding', rule: 'must be UTF-8' });
  }
}

/** `Label: value` lines, with continuation lines starting with whitespace. */
export function parseTagFile(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    if (/^\s/.test(line) && last) {
      fields.set(last, `${fields.get(last)} ${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    last = line.slice(0, colon).trim();
    fields.set(last, line.slice(colon + 1).trim());
  }
  return fields;
}

export function parseOxum(value: string | undefined): { bytes: number; files: number } | undefined {
  const match = value ? /^(\d+)\.(\d+)$/.exec(value) : null;
  return match ? { bytes: Number(match[1]), files: Number(match[2]) } : undefined;
}

/** `manifest-sha256.txt`: `<hex digest> <path>` per line. Malformed lines become problems naming the line. */
/** A JSON metadata file as other tools write it: a UTF-8 byte order mark before it is no part of it. */
export function parseJsonFile(bytes: Buffer): unknown {
  return JSON.parse(bytes.toString('utf8').replace(/^\uFEFF/, ''));
}

export function parseBagManifest(text: string, file: string, problems: PackageProblem[]): ManifestEntry[] {
  const entries: ManifestEntry[] = [];
  // A byte order mark before the first line is no part of it, as in the other tag files.
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const match = /^([0-9a-fA-F]{64})[ \t]+\*?(.+)$/.exec(line);
    if (!match) {
      problems.push({ file, row: i + 1, rule: 'expected "<sha256 hex> <path>"' });
      return;
    }
    entries.push({ sha256: match[1]!.toLowerCase(), path: decodeBagPath(match[2]!) });
  });
  return entries;
}

/**
 * Identity of a package: SHA-256 over its manifest and metadata bytes. The same package submitted twice has the
 * same id, so it maps to the same workflow and the same dataset.
 */
export function packageDigest(manifest: Buffer, metadata: Buffer): { manifestSha256: string; packageId: string } {
  const manifestSha256 = createHash('sha256')
    .update(manifest)
    .update(Buffer.from([0]))
    .update(metadata)
    .digest('hex');
  return { manifestSha256, packageId: manifestSha256.slice(0, 24) };
}

export function describeProblem(p: PackageProblem): string {
  const where = [p.file, p.row !== undefined ? `row ${p.row}` : undefined, p.field ? `field "${p.field}"` : undefined]
    .filter(Boolean)
    .join(', ');
  return `${where}: ${p.rule}`;
}

export function summarizeProblems(problems: PackageProblem[], max = 5): string {
  const shown = problems.slice(0, max).map(describeProblem);
  const more = problems.length > max ? `; and ${problems.length - max} more` : '';
  return `package rejected: ${shown.join('; ')}${more}`;
}

/** A rejection as ops read it in the Web UI and a steward in the quarantine note: the problems, then what to do. */
export function rejectionMessage(problems: PackageProblem[]): string {
  return `${summarizeProblems(problems)}. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again`;
}
