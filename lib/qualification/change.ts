import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { DateTime, Duration } from 'luxon';
import { JURISDICTIONS, parseJurisdiction } from '../../jurisdictions';
import type { DatasetRecord, StudyRecord } from '../../schemas/dataset';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  ChangeRecordSchema,
  type Baseline,
  type ChangeImpact,
  type ChangeRecord,
  type ControlledKind,
  type RequirementsFile,
} from '../../schemas/qualification';
import type { RunDocument } from '../../schemas/preprocess';
import { canonicalJson } from '../crypto/canonical';
import { PipelineError, resolvePipeline } from '../preprocess/pipeline';
import { retentionUnder } from '../retention/rules';
import { getJson, putJson } from '../storage/json';
import { hashFile, listObjects } from '../storage/objects';
import { parseRequirements, REQUIREMENTS_FILE } from './requirements';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** The requirements file's path in the installation. */
export const REQUIREMENTS_PATH = 'qualification/requirements.yaml';

/**
 * What a path is as a controlled file: a jurisdiction's rules (`jurisdictions/<id>.json`), a pipeline's definition or
 * code (`pipelines/<name>/…`), or the qualification requirements; null for anything else.
 */
export function controlledKind(file: string): ControlledKind | null {
  if (/^jurisdictions\/[a-z]{2,8}\.json$/.test(file)) return 'jurisdiction';
  if (/^pipelines\/[a-z0-9][a-z0-9._-]{0,63}\/[A-Za-z0-9._-]{1,100}$/.test(file) && !file.includes('..')) {
    return 'pipeline';
  }
  if (file === REQUIREMENTS_PATH) return 'requirements';
  return null;
}

/**
 * The controlled files of a jurisdiction's installation: its own rules, every pipeline file, the requirements. Their
 * SHA-256 is part of its baseline; a change to any goes through change control.
 */
export async function controlledFiles(jurisdiction: string, root: string): Promise<string[]> {
  const own = `jurisdictions/${jurisdiction}.json`;
  const pipelines = (await readdir(path.join(root, 'pipelines'), { withFileTypes: true, recursive: true }))
    .filter((e) => e.isFile() && !e.name.endsWith('.pyc') && !e.parentPath.includes('__pycache__'))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)).split(path.sep).join('/'));
  return [...(existsSync(path.join(root, own)) ? [own] : []), ...pipelines, REQUIREMENTS_PATH].sort();
}

/** The baseline item id of a controlled file, and of the rules a worker loaded from a jurisdiction file. */
export const controlledItemId = (file: string) => `file.${file}`;
export const loadedItemId = (jurisdiction: string) => `loaded.jurisdictions/${jurisdiction}.json`;

/** The SHA-256 of a jurisdiction's rules as a worker holds them once loaded (parsed, defaults filled). */
export const loadedRulesSha256 = (rules: Jurisdiction) => sha256(canonicalJson(rules));

/** Changes QA approved that are applied, or being applied, and not yet in a baseline: their content is allowed too. */
export function pendingApprovedChanges(records: readonly ChangeRecord[]): Map<string, string | null> {
  const pending = new Map<string, string | null>();
  for (const r of records) {
    if (r.decision?.decision !== 'approve') continue;
    if (r.state === 'applying' || r.state === 'awaiting-restart' || r.state === 'awaiting-baseline') {
      pending.set(r.file, r.impact.after);
    }
  }
  return pending;
}

/**
 * The controlled files on disk whose SHA-256 is not the one the baseline records (or that it does not record, or that
 * are gone), unless an approved change being applied wrote exactly that: a worker refuses to start on any of them.
 */
export async function uncontrolledFiles(
  baseline: Baseline,
  root: string,
  pending: ReadonlyMap<string, string | null> = new Map(),
): Promise<string[]> {
  const problems: string[] = [];
  const approved = new Map(
    baseline.items.filter((i) => i.id.startsWith('file.')).map((i) => [i.id.slice('file.'.length), i.value]),
  );
  const onDisk = await controlledFiles(baseline.jurisdiction, root);
  for (const file of onDisk) {
    const hash = (await hashFile(path.join(root, file))).sha256;
    const was = approved.get(file);
    if (was === hash || pending.get(file) === hash) continue;
    if (was === undefined) problems.push(`${file} (SHA-256 ${hash}) is not in baseline ${baseline.version}`);
    else problems.push(`${file} has SHA-256 ${hash}, baseline ${baseline.version} records ${was}`);
  }
  for (const file of approved.keys()) {
    if (!onDisk.includes(file) && controlledKind(file) !== null && pending.get(file) !== null) {
      problems.push(`${file}, recorded in baseline ${baseline.version}, is gone`);
    }
  }
  return problems;
}

/** Leaf paths (to `depth` levels) whose values differ between two JSON documents. */
export function changedFields(a: unknown, b: unknown, depth = 3, at = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (depth === 0 || !isObject(a) || !isObject(b)) {
    return canonicalJson(a ?? null) === canonicalJson(b ?? null) ? [] : [at || '(root)'];
  }
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.flatMap((k) => changedFields(a[k], b[k], depth - 1, at ? `${at}.${k}` : k));
}

/** The checks to re-run once a file of the kind is applied: its requirements are re-tested by the next qualification. */
const RETEST_CHECKS: Record<ControlledKind, readonly string[]> = {
  jurisdiction: ['iq.controlled-files', 'iq.workflow-code', 'iq.buckets', 'iq.policies', 'iq.temporal'],
  pipeline: ['iq.controlled-files'],
  requirements: [],
};

export interface ChangeInputs {
  jurisdiction: Jurisdiction;
  file: string;
  /** The file's bytes now (undefined where it does not exist) and as proposed (null for a removal). */
  current: Buffer | undefined;
  proposed: Buffer | null;
  datasets: readonly DatasetRecord[];
  studies: ReadonlyMap<string, StudyRecord>;
  runs: ReadonlyMap<string, RunDocument>;
  requirements: RequirementsFile;
  /** When the impact is computed (retain-until dates before it are already past). */
  now: string;
}

/** `to` minus `from` in whole days; null when either is open. */
function daysBetween(from: string | null, to: string | null): number | null {
  if (!from || !to) return null;
  return Math.round(DateTime.fromISO(to, { zone: 'utc' }).diff(DateTime.fromISO(from, { zone: 'utc' }), 'days').days);
}

/** A duration's length in days, counted from one fixed date, to compare two rules' durations. */
function durationDays(duration: string): number {
  const from = DateTime.fromISO('2000-01-01T00:00:00.000Z', { zone: 'utc' });
  return Math.round(from.plus(Duration.fromISO(duration)).diff(from, 'days').days);
}

function parseJson(bytes: Buffer, file: string): { ok: true; value: unknown } | { ok: false; detail: string } {
  try {
    return { ok: true, value: JSON.parse(bytes.toString('utf8')) };
  } catch (error) {
    return { ok: false, detail: `${file}: not valid JSON (${(error as Error).message})` };
  }
}

/** A jurisdiction file's impact: the dry run of its rules, and each dataset whose retain-until would move. */
function jurisdictionImpact(input: ChangeInputs, impact: ChangeImpact): void {
  const { file, jurisdiction } = input;
  const dry = impact.dryRun;
  if (input.proposed === null) {
    dry.push({ check: 'kept', ok: false, detail: `${file} may not be removed: ${jurisdiction.id} is served` });
    return;
  }
  const json = parseJson(input.proposed, file);
  if (!json.ok) {
    dry.push({ check: 'parses', ok: false, detail: json.detail });
    return;
  }
  let rules: Jurisdiction;
  try {
    rules = parseJurisdiction(path.basename(file), json.value, Object.values(JURISDICTIONS));
    dry.push({ check: 'parses', ok: true, detail: `${file} loads as the worker loads it (schema, id)` });
  } catch (error) {
    dry.push({ check: 'parses', ok: false, detail: (error as Error).message.slice(0, 1500) });
    return;
  }
  impact.changedFields = changedFields(jurisdiction, rules);
  impact.loadedSha256 = loadedRulesSha256(rules);
  const bucketsSame = canonicalJson(rules.buckets) === canonicalJson(jurisdiction.buckets);
  dry.push({
    check: 'buckets unchanged',
    ok: bucketsSame,
    detail: bucketsSame
      ? 'the bucket names are the ones the data is in'
      : 'buckets: the data is in the buckets the current file names; a new name would leave it behind',
  });
  const used = [...new Set(input.datasets.map((d) => d.dataClass))].sort();
  const missing = used.filter((c) => !rules.retention[c]);
  dry.push({
    check: 'retention rules in use kept',
    ok: missing.length === 0,
    detail:
      missing.length === 0
        ? `every data class in use has a rule (${used.join(', ') || 'none in use'})`
        : `retention: ${missing.join(', ')} removed, but datasets of that class exist`,
  });
  const shortened = Object.entries(jurisdiction.retention)
    .filter(([, r]) => r.minimum)
    .filter(([c, r]) => {
      const next = rules.retention[c];
      return next && durationDays(next.duration) < durationDays(r.duration);
    })
    .map(([c, r]) => `${c} (${r.duration} → ${rules.retention[c]!.duration})`);
  dry.push({
    check: 'legal minimums not shortened',
    ok: shortened.length === 0,
    detail:
      shortened.length === 0
        ? 'no legal minimum is shortened'
        : `retention: shortens a legal minimum: ${shortened.join(', ')}`,
  });
  for (const record of input.datasets) {
    const rule = rules.retention[record.dataClass];
    if (!rule) continue;
    const trialEnd = input.studies.get(record.studyId)?.trialEnd?.date;
    const next = retentionUnder(record, rule, trialEnd);
    if (next.until === record.retention.until) continue;
    impact.retention.push({
      datasetId: record.datasetId,
      rule: record.dataClass,
      from: record.retention.until,
      to: next.until,
      days: daysBetween(record.retention.until, next.until),
    });
  }
}

/** A pipeline file's impact: the dry run of its definition, and the outputs of the pipelines it belongs to. */
function pipelineImpact(input: ChangeInputs, impact: ChangeImpact): void {
  const { file } = input;
  const [, name, base] = file.split('/') as [string, string, string];
  const version = /^(\d+\.\d+\.\d+)\.json$/.exec(base)?.[1];
  const dry = impact.dryRun;
  // The pipelines the file is part of: its own version, or every version of the pipeline for a file they run.
  const refs = version
    ? [`${name}@${version}`]
    : [...new Set([...input.runs.values()].map((r) => r.pipeline.ref))].filter((ref) => ref.startsWith(`${name}@`));
  for (const ref of refs.sort()) {
    const outputs = input.datasets
      .filter((d) => d.run && input.runs.get(d.run.jobId)?.pipeline.ref === ref)
      .map((d) => d.datasetId)
      .sort();
    impact.pipelines.push({ pipeline: ref, outputs });
  }
  const made = impact.pipelines.flatMap((p) => p.outputs);
  if (input.current !== undefined) {
    dry.push({
      check: 'no outputs made by what it replaces',
      ok: made.length === 0,
      detail:
        made.length === 0
          ? 'no dataset was made by the version it replaces'
          : `${made.length} dataset(s) were made by ${refs.join(', ')} (${made.slice(0, 5).join(', ')}${made.length > 5 ? ' …' : ''}): their run documentation must stay true; publish a new version instead`,
    });
  }
  if (input.proposed === null || !version) {
    if (input.proposed !== null) dry.push({ check: 'present', ok: true, detail: `${file}: a file its command runs` });
    return;
  }
  const json = parseJson(input.proposed, file);
  if (!json.ok) {
    dry.push({ check: 'parses', ok: false, detail: json.detail });
    return;
  }
  // Parameters are given per job: any name the definition references stands for a placeholder here.
  const placeholders = new Proxy({}, { has: () => true, get: () => 0 });
  try {
    const spec = resolvePipeline(`${name}@${version}`, json.value as Record<string, unknown>, placeholders);
    const named = `${spec.name}@${spec.version}` === `${name}@${version}`;
    dry.push({
      check: 'parses',
      ok: named,
      detail: named
        ? `${file} loads as a job loads it`
        : `${file}: names itself ${spec.name}@${spec.version}, not ${name}@${version}`,
    });
  } catch (error) {
    const detail =
      error instanceof PipelineError ? `${file}: field ${error.field || '(root)'}: ${error.rule}` : String(error);
    dry.push({ check: 'parses', ok: false, detail });
  }
  if (input.current) {
    const before = parseJson(input.current, file);
    if (before.ok) impact.changedFields = changedFields(before.value, json.value);
  }
}

/** The requirements file's impact: it must parse, and every requirement it drops is named. */
function requirementsImpact(input: ChangeInputs, impact: ChangeImpact): void {
  if (input.proposed === null) {
    impact.dryRun.push({ check: 'kept', ok: false, detail: `${REQUIREMENTS_PATH} may not be removed` });
    return;
  }
  try {
    const next = parseRequirements(input.proposed.toString('utf8'), REQUIREMENTS_FILE);
    impact.dryRun.push({
      check: 'parses',
      ok: true,
      detail: `${next.requirements.length} requirements, each with its check`,
    });
    const before = new Map(input.requirements.requirements.map((r) => [r.id, canonicalJson(r)]));
    const after = new Map(next.requirements.map((r) => [r.id, canonicalJson(r)]));
    impact.changedFields = [...new Set([...before.keys(), ...after.keys()])]
      .filter((id) => before.get(id) !== after.get(id))
      .map((id) => (!after.has(id) ? `${id} removed` : !before.has(id) ? `${id} added` : `${id} changed`))
      .sort();
    impact.retest = next.requirements.map((r) => r.id);
  } catch (error) {
    impact.dryRun.push({ check: 'parses', ok: false, detail: (error as Error).message.slice(0, 1500) });
  }
}

/**
 * What a proposed change to a controlled file would do, before anyone approves it: the dry run (the new content loaded
 * as the product loads it, with the rules a change may not break), the datasets whose retain-until would move and by
 * how much, the pipelines and outputs it touches, and the requirements to re-test.
 */
export function assessChange(input: ChangeInputs): ChangeImpact {
  const kind = controlledKind(input.file)!;
  const impact: ChangeImpact = {
    file: input.file,
    kind,
    before: input.current === undefined ? null : sha256(input.current),
    after: input.proposed === null ? null : sha256(input.proposed),
    changedFields: [],
    retention: [],
    pipelines: [],
    retest: [],
    dryRun: [],
    restartNeeded: kind === 'jurisdiction',
    loadedSha256: null,
  };
  if (impact.before === impact.after) {
    impact.dryRun.push({
      check: 'changes something',
      ok: false,
      detail: `${input.file}: the proposal is the file as it is`,
    });
    return impact;
  }
  if (input.current === undefined && input.proposed === null) {
    impact.dryRun.push({ check: 'exists', ok: false, detail: `${input.file}: no such file to remove` });
    return impact;
  }
  if (kind === 'jurisdiction') jurisdictionImpact(input, impact);
  else if (kind === 'pipeline') pipelineImpact(input, impact);
  else requirementsImpact(input, impact);
  if (kind !== 'requirements') {
    const checks = RETEST_CHECKS[kind];
    impact.retest = input.requirements.requirements.filter((r) => checks.includes(r.check)).map((r) => r.id);
  }
  return impact;
}

/** Where the catalog bucket keeps each change's record, and the evidence bucket each proposed content. */
export const CHANGES_PREFIX = 'qualification/changes/';
export const changeRecordKey = (changeId: string) => `${CHANGES_PREFIX}${changeId}.json`;
export const changeContentKey = (changeId: string, file: string) =>
  `${CHANGES_PREFIX}${changeId}/proposed/${path.basename(file)}`;

export async function writeChangeRecord(s3: S3Client, bucket: string, record: ChangeRecord): Promise<void> {
  await putJson(s3, bucket, changeRecordKey(record.changeId), ChangeRecordSchema, record, { pretty: true });
}

/** Every change record of the jurisdiction, oldest first. */
export async function readChangeRecords(s3: S3Client, bucket: string): Promise<ChangeRecord[]> {
  const records: ChangeRecord[] = [];
  for (const o of await listObjects(s3, bucket, CHANGES_PREFIX)) {
    if (!o.key.endsWith('.json') || o.key.slice(CHANGES_PREFIX.length).includes('/')) continue;
    const record = await getJson(s3, bucket, o.key, ChangeRecordSchema);
    if (record) records.push(record);
  }
  return records.sort((a, b) => a.proposedAt.localeCompare(b.proposedAt));
}
