import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { canonicalJson } from '../crypto/canonical';
import { readJsonFile } from '../runtime/config';
import { UserError } from '../runtime/errors';
import { PipelineParametersSchema, type PipelineParameters, type PipelineSource } from '../../schemas/preprocess';
import { hashFile } from '../storage/objects';
import { PipelineError, resolvePipeline } from './pipeline';
import { INSTALL_ROOT } from '../runtime/install';

/** Pipelines that come with Steward: `pipelines/<name>/<version>.json`. */
export const BUNDLED_PIPELINES_DIR = path.join(INSTALL_ROOT, 'pipelines');

const NAMED = /^([a-z0-9][a-z0-9._-]{0,63})@(\d+\.\d+\.\d+)$/;

/** The directory `{pipeline}` stands for on this machine. */
export function pipelineDir(source: Pick<PipelineSource, 'dir' | 'bundled'>): string {
  return source.bundled ? path.join(BUNDLED_PIPELINES_DIR, source.dir) : source.dir;
}

/** The files an external pipeline's command names under `{pipeline}`, with their SHA-256: part of its code. */
export async function pipelineFiles(
  document: Record<string, unknown>,
  dir: string,
): Promise<{ path: string; sha256: string }[]> {
  const command = Array.isArray(document.command) ? (document.command as unknown[]) : [];
  const files: { path: string; sha256: string }[] = [];
  for (const arg of command) {
    if (typeof arg !== 'string' || !arg.startsWith('{pipeline}/')) continue;
    const rel = arg.slice('{pipeline}/'.length);
    const full = path.join(dir, rel);
    if (existsSync(full)) files.push({ path: rel, sha256: (await hashFile(full)).sha256 });
  }
  return files;
}

/** SHA-256 of a pipeline's code: its document (canonical JSON) and the files its command runs. */
export function pipelineCodeSha256(
  document: Record<string, unknown>,
  files: { path: string; sha256: string }[],
): string {
  return createHash('sha256').update(canonicalJson({ document, files })).digest('hex');
}

/**
 * A pipeline named `NAME@VERSION` (bundled) or given as a JSON file, with its code hash, checked against the
 * parameters: a missing parameter or a step that does not parse is refused here, naming the file and field.
 */
export async function loadPipeline(refOrFile: string, parameters: PipelineParameters): Promise<PipelineSource> {
  const named = NAMED.exec(refOrFile);
  let file: string;
  let bundled = false;
  if (named && !existsSync(refOrFile)) {
    file = path.join(BUNDLED_PIPELINES_DIR, named[1]!, `${named[2]}.json`);
    bundled = true;
    if (!existsSync(file)) {
      throw new UserError(`no bundled pipeline ${refOrFile}; bundled ones: ${(await bundledPipelines()).join(', ')}`);
    }
  } else {
    file = path.resolve(refOrFile);
    if (!existsSync(file)) throw new UserError(`${refOrFile}: no such pipeline file, and not NAME@VERSION`);
  }
  const document = readJsonFile(file) as Record<string, unknown>;
  const ref = bundled ? refOrFile : path.basename(file);
  try {
    const spec = resolvePipeline(ref, document, parameters);
    if (bundled && `${spec.name}@${spec.version}` !== refOrFile) {
      throw new UserError(`${file}: names itself ${spec.name}@${spec.version}, not ${refOrFile}`);
    }
  } catch (error) {
    if (error instanceof PipelineError) throw new UserError(`${file}: field ${error.field || '(root)'}: ${error.rule}`);
    throw error;
  }
  const dir = bundled ? named![1]! : path.dirname(file);
  const files = await pipelineFiles(document, pipelineDir({ dir, bundled }));
  return { ref, document, dir, bundled, codeSha256: pipelineCodeSha256(document, files), files };
}

/** Parameters from a JSON file: an object of names to values. */
export async function loadParameters(file: string | undefined): Promise<PipelineParameters> {
  if (!file) return {};
  const parsed = PipelineParametersSchema.safeParse(readJsonFile(file));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(`${file}: field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** `NAME@VERSION` of every bundled pipeline. */
export async function bundledPipelines(): Promise<string[]> {
  const found: string[] = [];
  for (const name of (await readdir(BUNDLED_PIPELINES_DIR).catch(() => [] as string[])).sort()) {
    for (const file of (await readdir(path.join(BUNDLED_PIPELINES_DIR, name)).catch(() => [] as string[])).sort()) {
      const version = /^(\d+\.\d+\.\d+)\.json$/.exec(file)?.[1];
      if (version) found.push(`${name}@${version}`);
    }
  }
  return found;
}
