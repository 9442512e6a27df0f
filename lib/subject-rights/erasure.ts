import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectTaggingCommand, type S3Client } from '@aws-sdk/client-s3';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import type { ErasureOverride, SubjectPlace } from '../../schemas/subject-request';
import type { DatasetOutput } from '../../schemas/dataset';
import { datasetFacts, decideRetention, explainDecision } from '../retention/precedence';
import { readDatasetRecord, readStudyRecord } from '../storage/catalog';
import { downloadHashed, hashFile, putFileOnce } from '../storage/objects';
import { quoteIdent, quoteLiteral } from '../tabular/sql';
import { itemIdOf } from './places';
import { datasetIdFor } from '../../contracts';

/** Why consent records stay after an erasure: the controller must be able to show the consent it relied on. */
export const CONSENT_KEPT_BASIS =
  'GDPR Art. 7(1) and Art. 17(3)(e): the controller must be able to demonstrate the consent it processed on (kept by token only)';

/** One place found, decided: erased, or kept with its legal basis (and until when). */
export interface ErasureItem {
  itemId: string;
  place: SubjectPlace;
  decision: 'erase' | 'keep';
  /** How a table is erased: rewritten without the subject (the default), or, a derived output, deleted whole. */
  action?: 'rewrite' | 'delete';
  /** A derived output's job and input, to make it again from its run documentation without the subject. */
  rerun?: { jobId: string; fromDatasetId: string };
  /** The DPO's signed override of the exemption that would have kept it. */
  override?: ErasureOverride;
  legalBasis: string;
  until: string | null;
  /** For a table to rewrite: the S3 Object Lock its new version gets. */
  lock: { mode: 'GOVERNANCE' | 'COMPLIANCE'; until: string } | null;
}

/**
 * Decides each place of an erasure request with the precedence engine: a legal hold, or a duty to keep (the data
 * class's minimum retention, e.g. EU CTR Art. 58 for trial records: GDPR Art. 17(3)(b)/(c)/(d)), outweighs the
 * request; an object under COMPLIANCE Object Lock cannot lose a version, so it is kept until its lock ends. Where the
 * jurisdiction gives no right to erasure (`noRight`), everything is kept on that basis. Consent records are kept (the
 * consent must be demonstrable); a study's vault entries go unless a dataset of the study is kept.
 */
export async function decideErasureItems(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  places: readonly SubjectPlace[],
  asOf: string,
  noRight: string | undefined,
  overrides: readonly ErasureOverride[] = [],
): Promise<ErasureItem[]> {
  const items: ErasureItem[] = [];
  const keptStudies = new Set<string>();
  for (const place of places) {
    const itemId = itemIdOf(place);
    if (noRight) {
      items.push({ itemId, place, decision: 'keep', legalBasis: noRight, until: null, lock: null });
      continue;
    }
    if (place.kind === 'consent') {
      items.push({ itemId, place, decision: 'keep', legalBasis: CONSENT_KEPT_BASIS, until: null, lock: null });
      continue;
    }
    if (place.kind !== 'dataset') continue;
    const record = await readDatasetRecord(s3, jurisdiction.buckets.catalog, place.datasetId);
    if (!record) continue;
    const study = await readStudyRecord(s3, jurisdiction.buckets.catalog, jurisdiction.id, record.studyId);
    const facts = datasetFacts(record, study, asOf, true);
    const decision = decideRetention(facts);
    const lockedUntil = record.retention.lockedUntil ?? null;
    const locked = lockedUntil !== null && lockedUntil > asOf;
    const override = overrides.find((o) => o.datasetId === place.datasetId);
    // A duty to keep may be overridden by the DPO's signed decision; a legal hold and a COMPLIANCE lock never are.
    const overridden =
      decision.action === 'keep' && decision.reason !== 'legal-hold' && override !== undefined
        ? `${record.retention.legalBasis}: ${explainDecision(decision, facts)}`
        : undefined;
    if (decision.action === 'keep' && !overridden) {
      keptStudies.add(place.studyId);
      const holds = [...record.holds, ...(study?.holds ?? [])].filter((h) => !h.releasedAt);
      const legalBasis =
        decision.reason === 'legal-hold'
          ? `legal hold ${holds.map((h) => `${h.holdId} (${h.reason})`).join(', ')}: GDPR Art. 17(3)(e), establishment, exercise or defence of legal claims`
          : `${record.retention.legalBasis}: a legal duty to keep (GDPR Art. 17(3)(b), (c) and (d)); ${explainDecision(decision, facts)}`;
      items.push({ itemId, place, decision: 'keep', legalBasis, until: record.retention.until, lock: null });
      continue;
    }
    if (locked && record.retention.objectLock === 'COMPLIANCE') {
      keptStudies.add(place.studyId);
      items.push({
        itemId,
        place,
        decision: 'keep',
        legalBasis: `S3 Object Lock in COMPLIANCE mode until ${lockedUntil}: no version can be deleted before then`,
        until: lockedUntil,
        lock: null,
      });
      continue;
    }
    // A preprocessing output was computed with the subject's rows (means, models): removing their rows would not
    // remove them, so it is deleted whole, and made again from its run documentation without them where it can be.
    const derived = record.derivedFrom.length > 0;
    const basis = overridden
      ? `erased by the DPO's override (${override!.by}, ${override!.at}): ${override!.reason}; the exemption overridden: ${overridden}`
      : 'GDPR Art. 17(1): the data subject’s request, approved by the DPO, and no duty to keep outweighs it';
    items.push({
      itemId,
      place,
      decision: 'erase',
      action: derived ? 'delete' : 'rewrite',
      ...(derived && record.run && record.derivedFrom.length === 1
        ? { rerun: { jobId: record.run.jobId, fromDatasetId: record.derivedFrom[0]!.datasetId } }
        : {}),
      ...(override && overridden ? { override } : {}),
      legalBasis: derived
        ? `${basis}; a derived output computed with the subject's data, deleted whole${record.run ? ` (job ${record.run.jobId}, run documentation s3://${record.run.bucket}/${record.run.key})` : ''}`
        : basis,
      until: null,
      lock: locked ? { mode: record.retention.objectLock, until: lockedUntil } : null,
    });
  }
  for (const place of places) {
    if (place.kind !== 'upload' || noRight) continue;
    // A package's raw upload goes with its dataset: kept where a table of it is kept, on the same basis.
    if (!place.packageId) {
      // A consent file: it shows the consent the registry holds, as the registry's records do.
      items.push({
        itemId: itemIdOf(place),
        place,
        decision: 'keep',
        legalBasis: `${CONSENT_KEPT_BASIS}; the uploaded consent file, until its raw-staging retention ends`,
        until: null,
        lock: null,
      });
      continue;
    }
    const dataset = datasetIdFor(jurisdiction.id, place.packageId);
    const keptWith = items.find(
      (i) => i.decision === 'keep' && i.place.kind === 'dataset' && i.place.datasetId === dataset,
    );
    // Its dataset erased by the DPO's override of a duty to keep: that duty still holds for the other subjects' rows,
    // so the upload is rewritten without the subject's, not deleted.
    const overriddenWith = items.find(
      (i) => i.decision === 'erase' && i.override && i.place.kind === 'dataset' && i.place.datasetId === dataset,
    );
    if (!keptWith && overriddenWith) {
      items.push({
        itemId: itemIdOf(place),
        place,
        decision: 'erase',
        action: 'rewrite',
        override: overriddenWith.override!,
        legalBasis: `${overriddenWith.legalBasis}; the raw upload of dataset ${dataset}, kept under that duty for the other subjects: rewritten without the subject's rows, with a new manifest recording the original package digest and this request`,
        until: null,
        lock: null,
      });
      continue;
    }
    items.push({
      itemId: itemIdOf(place),
      place,
      decision: keptWith ? 'keep' : 'erase',
      legalBasis: keptWith
        ? `kept with dataset ${dataset}, curated from it: ${keptWith.legalBasis}`
        : 'GDPR Art. 17(1): a raw upload kept only for staging (its retention is a limit, not a duty to keep): deleted whole',
      until: keptWith?.until ?? null,
      lock: null,
    });
  }
  for (const place of places) {
    if (place.kind !== 'export' || noRight) continue;
    items.push({
      itemId: itemIdOf(place),
      place,
      decision: 'erase',
      legalBasis: 'GDPR Art. 17(1): a copy made for the subject’s own access request; nothing requires keeping it',
      until: null,
      lock: null,
    });
  }
  for (const place of places) {
    if (place.kind !== 'vault' || noRight) continue;
    const kept = keptStudies.has(place.studyId);
    items.push({
      itemId: itemIdOf(place),
      place,
      decision: kept ? 'keep' : 'erase',
      legalBasis: kept
        ? 'kept with the study’s records the law requires keeping: they must stay attributable for source-data verification (EU CTR 536/2014 Art. 58)'
        : 'GDPR Art. 17(1): nothing of the study kept about the subject needs re-identifying',
      until: null,
      lock: null,
    });
  }
  return items;
}

export interface RewriteResult {
  itemId: string;
  rowsBefore: number;
  rowsAfter: number;
  before: { versionId: string | null; sha256: string; bytes: number };
  after: { versionId: string; sha256: string; bytes: number };
  /** The table's output entry as the dataset record lists it after the rewrite. */
  output: DatasetOutput;
}

/**
 * Rewrites one table without the subject's rows, as a new version of the same object (same Object Lock retention as
 * the dataset), from exactly the version discovery found. Every other subject's row is kept, in order; the counts
 * before and after differ by exactly the subject's rows, or nothing is written. Retry-safe: the same input gives the
 * same bytes, and a version already holding them is not written again.
 */
export async function rewriteWithoutSubject(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  conn: DuckDBConnection,
  workDir: string,
  item: { itemId: string; place: Extract<SubjectPlace, { kind: 'dataset' }>; lock: ErasureItem['lock'] },
  tokens: readonly string[],
): Promise<RewriteResult> {
  const { place } = item;
  const record = await readDatasetRecord(s3, jurisdiction.buckets.catalog, place.datasetId);
  const output = record?.outputs.find((o) => o.table === place.table);
  if (!record || !output) throw new Error(`dataset ${place.datasetId} has no table ${place.table} any more`);
  await mkdir(workDir, { recursive: true });
  const source = path.join(workDir, 'before.parquet');
  const target = path.join(workDir, 'after.parquet');
  const before = await downloadHashed(s3, place.bucket, place.key, source, () => {}, place.versionId);
  if (before.sha256 !== place.sha256) {
    throw new Error(`s3://${place.bucket}/${place.key} version ${place.versionId} changed since it was found`);
  }
  const column = quoteIdent(place.subjectColumn);
  const list = tokens.map(quoteLiteral).join(', ');
  const counted = await conn.runAndReadAll(
    `SELECT count(*), count(*) FILTER (WHERE CAST(${column} AS VARCHAR) IN (${list})) FROM read_parquet(${quoteLiteral(source)})`,
  );
  const [rowsBefore, subjectRows] = counted.getRows()[0]!.map(Number) as [number, number];
  // One thread reads and writes in the input's order.
  await conn.run(
    `COPY (SELECT * FROM read_parquet(${quoteLiteral(source)}) WHERE ${column} IS NULL OR CAST(${column} AS VARCHAR) NOT IN (${list}))
     TO ${quoteLiteral(target)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  const rowsAfter = Number(
    (await conn.runAndReadAll(`SELECT count(*) FROM read_parquet(${quoteLiteral(target)})`)).getRows()[0]![0],
  );
  if (rowsBefore - rowsAfter !== subjectRows) {
    throw new Error(
      `rewriting ${place.key} would remove ${rowsBefore - rowsAfter} rows, not the subject's ${subjectRows}: nothing written`,
    );
  }
  const after = await hashFile(target);
  // The new version carries the tags of the one it replaces (data class, classification, retention).
  const tagging = await s3.send(
    new GetObjectTaggingCommand({
      Bucket: place.bucket,
      Key: place.key,
      ...(place.versionId ? { VersionId: place.versionId } : {}),
    }),
  );
  const tags = Object.fromEntries((tagging.TagSet ?? []).map((t) => [t.Key!, t.Value ?? '']));
  const written = await putFileOnce(s3, place.bucket, place.key, target, after.sha256, {
    contentType: 'application/vnd.apache.parquet',
    tags,
    ...(item.lock ? { lock: { mode: item.lock.mode, until: new Date(item.lock.until) } } : {}),
  });
  await rm(source, { force: true });
  await rm(target, { force: true });
  if (!written.versionId) throw new Error(`bucket ${place.bucket} is not versioned: the rewrite has no version id`);
  return {
    itemId: item.itemId,
    rowsBefore,
    rowsAfter,
    before: { versionId: place.versionId, sha256: before.sha256, bytes: before.bytes },
    after: { versionId: written.versionId, sha256: after.sha256, bytes: after.bytes },
    output: {
      ...output,
      versionId: written.versionId,
      sha256: after.sha256,
      bytes: after.bytes,
      rows: { ...output.rows, curated: rowsAfter },
    },
  };
}
