import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DuckDBInstance } from '@duckdb/node-api';
import { Context } from '@temporalio/activity';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse';
import { ErrorType, nonRetryable } from '../contracts';
import {
  CONSENT_CSV_COLUMNS,
  ConsentCsvRowSchema,
  FindSubjectDatasetsInputSchema,
  ImportConsentActivityInputSchema,
  WithdrawConsentInputSchema,
  type ConsentEntry,
  type FindSubjectDatasetsInput,
  type ImportConsentActivityInput,
  type ImportConsentResult,
  type SubjectDatasetHit,
  type WithdrawConsentInput,
  type WithdrawConsentResult,
} from '../schemas/consent';
import type { PackageProblem } from '../schemas/ingest';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { entriesUnderTokens, newestConsent } from '../lib/consent/decide';
import { consentPartId } from '../lib/consent/links';
import { consentDecisionDate, newerConsent, registrySubjects } from '../lib/consent/rules';
import type { KeyStore } from '../lib/crypto/keystore';
import { subjectTokens, Tokenizer } from '../lib/crypto/pseudonymize';
import { summarizeProblems } from '../lib/package/rules';
import { listDatasetRecords, readConsentRegistry, writeConsentPart } from '../lib/storage/catalog';
import { consentPartKey } from '../lib/storage/layout';
import { downloadHashed } from '../lib/storage/objects';
import { quoteIdent, quoteLiteral } from '../lib/tabular/sql';
import { parseInput } from '../contracts/parse';
import { assertOwnJurisdiction } from './guards';

export interface ConsentActivityDeps {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  scratchDir: string;
}

function sameDecision(a: ConsentEntry, b: ConsentEntry): boolean {
  return a.status === b.status && a.scopes.join(';') === b.scopes.join(';') && a.withdrawnOn === b.withdrawnOn;
}

/** One subject of a consent file: its decision (the file's newest row) and its tokens, oldest key version first. */
interface ImportedSubject {
  entry: ConsentEntry;
  tokens: string[];
}

/**
 * Reads a consent CSV from landing, validating every row; returns each subject's decision keyed by its token under
 * the current key version (the last of `live`), with its tokens under every live version.
 */
async function readConsentCsv(
  s3: S3Client,
  input: ImportConsentActivityInput,
  live: readonly Tokenizer[],
): Promise<{ rows: number; imported: Map<string, ImportedSubject> }> {
  const file = input.fileName;
  const problems: PackageProblem[] = [];
  const imported = new Map<string, ImportedSubject>();
  let rows = 0;
  const res = await s3.send(new GetObjectCommand({ Bucket: input.source.bucket, Key: input.source.key }));
  const parser = (res.Body as Readable).pipe(
    parse({
      bom: true,
      columns: (header: string[]) => header.map((h) => h.trim()),
      skip_empty_lines: true,
      trim: true,
    }),
  );
  let headerChecked = false;
  try {
    for await (const record of parser as AsyncIterable<Record<string, string>>) {
      rows += 1;
      if (!headerChecked) {
        headerChecked = true;
        for (const column of CONSENT_CSV_COLUMNS.slice(0, 5)) {
          if (!(column in record))
            problems.push({ file, field: column, rule: 'required column is missing from the header' });
        }
        if (problems.length > 0) break;
      }
      const parsed = ConsentCsvRowSchema.safeParse(record);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          if (problems.length < 50)
            problems.push({ file, row: rows, field: issue.path.join('.'), rule: issue.message });
        }
        continue;
      }
      const row = parsed.data;
      const entry: ConsentEntry = {
        token: live.at(-1)!.token(row.subject_id),
        scopes: row.scopes,
        status: row.status,
        icfVersion: row.icf_version,
        givenOn: row.given_on,
        withdrawnOn: row.withdrawn_on,
        expiresOn: row.expires_on,
        importedAt: input.importedAt,
      };
      const before = imported.get(entry.token);
      if (before) before.entry = newerConsent(before.entry, entry);
      else imported.set(entry.token, { entry, tokens: live.map((t) => t.token(row.subject_id)) });
    }
  } catch (error) {
    const line = (error as { lines?: number }).lines;
    problems.push({ file, ...(line ? { row: line } : {}), rule: 'malformed CSV: the file cannot be parsed' });
  }
  if (rows === 0 && problems.length === 0) problems.push({ file, rule: 'the file holds no consent records' });
  if (problems.length > 0) {
    throw nonRetryable(
      ErrorType.ConsentImportRejected,
      summarizeProblems(problems).replace('package rejected', 'consent import rejected'),
      { details: [{ problems }] },
    );
  }
  return { rows, imported };
}

export function createConsentActivities({ s3, keys, jurisdiction, scratchDir }: ConsentActivityDeps) {
  const registryOf = (studyId: string, now: string) =>
    readConsentRegistry(s3, jurisdiction.buckets.catalog, jurisdiction.id, studyId, now);

  return {
    /**
     * Records a withdrawal as a registry part, under the subject's token of every live key version, so that a look-up
     * with a token of any of them (a curated dataset holds one) finds it; the withdrawal, the later decision, wins over
     * older records. Retry-safe: the part's key comes from the requesting workflow, so a retry rewrites the same part.
     */
    async withdrawConsentActivity(raw: WithdrawConsentInput): Promise<WithdrawConsentResult> {
      const input = parseInput(WithdrawConsentInputSchema, raw, 'withdrawConsentActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const { tokens, versions } = await subjectTokens(keys, jurisdiction.id, input.studyId, input.subjectId);
      const registry = await registryOf(input.studyId, input.recordedAt);
      const byToken = new Map(registry.entries.map((e) => [e.token, e]));
      const current = newestConsent(byToken, tokens);
      const remaining =
        current && input.scopes.length > 0 ? current.scopes.filter((s) => !input.scopes.includes(s)) : [];
      const entry: ConsentEntry = {
        token: tokens.at(-1)!,
        scopes: remaining.length > 0 ? remaining : (current?.scopes ?? input.scopes),
        status: remaining.length > 0 ? 'given' : 'withdrawn',
        icfVersion: current?.icfVersion ?? 'unknown',
        givenOn: current?.givenOn ?? input.effectiveOn,
        withdrawnOn: remaining.length > 0 ? null : (current?.withdrawnOn ?? input.effectiveOn),
        expiresOn: current?.expiresOn ?? null,
        importedAt: input.recordedAt,
        withdrawal: { effectiveOn: input.effectiveOn, scopes: input.scopes, reason: input.reason },
      };
      // Nothing to write when every token already holds this decision.
      const recorded = tokens.every((t) => {
        const stored = byToken.get(t);
        return stored !== undefined && sameDecision(stored, entry);
      });
      if (!recorded) {
        await writeConsentPart(s3, jurisdiction.buckets.catalog, {
          format: 'steward-consent-part/1',
          jurisdiction: jurisdiction.id,
          studyId: input.studyId,
          partId: consentPartId('withdrawal', input.requestRef),
          kind: 'withdrawal',
          createdAt: input.recordedAt,
          entries: entriesUnderTokens(entry, tokens, byToken),
        });
      }
      return {
        status: entry.status === 'withdrawn' ? 'withdrawn' : 'scopes-withdrawn',
        token: entry.token,
        remainingScopes: entry.status === 'withdrawn' ? [] : entry.scopes,
        keyVersionsSearched: versions,
      };
    },

    /**
     * Which curated datasets of the study hold rows of the subject, by token under every live key version.
     * Reads only. Scans the study's datasets; the erasure discovery index replaces this scan.
     */
    async findSubjectDatasetsActivity(raw: FindSubjectDatasetsInput): Promise<SubjectDatasetHit[]> {
      const input = parseInput(FindSubjectDatasetsInputSchema, raw, 'findSubjectDatasetsActivity');
      const { tokens } = await subjectTokens(keys, jurisdiction.id, input.studyId, input.subjectId);
      const hits: SubjectDatasetHit[] = [];
      const work = path.join(scratchDir, `find-${process.pid}-${Date.now()}`);
      await mkdir(work, { recursive: true });
      const db = await DuckDBInstance.create(':memory:', { threads: '1', autoinstall_known_extensions: 'false' });
      const conn = await db.connect();
      try {
        for (const record of await listDatasetRecords(s3, jurisdiction.buckets.catalog)) {
          if (record.studyId !== input.studyId) continue;
          Context.current().heartbeat({ datasetId: record.datasetId });
          for (const output of record.outputs) {
            const subject = output.columns.find((c) => c.role === 'subject-id');
            if (!subject) continue;
            const file = path.join(work, 'table.parquet');
            await downloadHashed(s3, output.bucket, output.key, file);
            const reader = await conn.runAndReadAll(
              `SELECT count(*) AS n FROM read_parquet(${quoteLiteral(file)}) WHERE ${quoteIdent(subject.name)} IN (${tokens.map(quoteLiteral).join(', ')})`,
            );
            const rows = Number(reader.getRowObjectsJS()[0]!.n);
            if (rows > 0) hits.push({ datasetId: record.datasetId, table: output.table, rows });
            await rm(file, { force: true });
          }
        }
      } finally {
        conn.closeSync();
        db.closeSync();
        await rm(work, { recursive: true, force: true });
      }
      return hits;
    },

    /**
     * Validates every row of a consent CSV, then writes its records as one registry part, each subject's decision under
     * its token of every live key version. Retry-safe: the part is named by the file's checksum, so importing the same
     * file again writes the same part.
     */
    async importConsentActivity(raw: ImportConsentActivityInput): Promise<ImportConsentResult> {
      const input = parseInput(ImportConsentActivityInputSchema, raw, 'importConsentActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      if (input.source.bucket !== jurisdiction.buckets.landing) {
        throw nonRetryable(
          ErrorType.JurisdictionViolation,
          `consent must be read from ${jurisdiction.id}'s landing bucket, not ${input.source.bucket}`,
        );
      }
      // The current version first: a study's first import creates it.
      const key = await keys.studyKey(jurisdiction.id, input.studyId);
      const live = (await keys.liveStudyKeys(jurisdiction.id, input.studyId)).map(
        (k) => new Tokenizer(k.material, k.version),
      );
      const { rows, imported } = await readConsentCsv(s3, input, live);

      const before = new Map((await registryOf(input.studyId, input.importedAt)).entries.map((e) => [e.token, e]));
      let conflicts = 0;
      const entries: ConsentEntry[] = [];
      for (const { entry, tokens } of imported.values()) {
        const stored = newestConsent(before, tokens);
        const sameDay = stored && consentDecisionDate(stored) === consentDecisionDate(entry);
        if (sameDay && !sameDecision(stored, entry)) conflicts += 1;
        entries.push(...entriesUnderTokens(entry, tokens, before));
      }
      const importPart = consentPartId('import', input.source.sha256);
      await writeConsentPart(s3, jurisdiction.buckets.catalog, {
        format: 'steward-consent-part/1',
        jurisdiction: jurisdiction.id,
        studyId: input.studyId,
        partId: importPart,
        kind: 'import',
        createdAt: input.importedAt,
        entries,
      });
      const after = await registryOf(input.studyId, input.importedAt);
      const values = [...imported.values()].map((s) => s.entry);
      return {
        jurisdiction: jurisdiction.id,
        studyId: input.studyId,
        rows,
        given: values.filter((e) => e.status === 'given').length,
        withdrawn: values.filter((e) => e.status === 'withdrawn').length,
        subjectsInRegistry: registrySubjects(after.entries),
        conflicts,
        part: { bucket: jurisdiction.buckets.catalog, key: consentPartKey(input.studyId, importPart) },
        keysCreated: key.created ? [key.id] : [],
      };
    },
  };
}

export type ConsentActivities = ReturnType<typeof createConsentActivities>;
