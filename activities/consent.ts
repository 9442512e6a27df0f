import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { DuckDBInstance } from '@duckdb/node-api';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { parse } from 'csv-parse';
import { CONSENT_CSV_COLUMNS, ConsentCsvRowSchema, type ConsentEntry } from '../schemas/consent';
import type { Jurisdiction } from '../schemas/jurisdiction';
import type { ImportConsentInput, ImportConsentResult, PackageProblem } from '../schemas/workflows';
import { consentDecisionDate, newerConsent } from '../lib/consent';
import type { KeyStore } from '../lib/keystore';
import { downloadHashed } from '../lib/objects';
import { quoteIdent, quoteLiteral } from '../lib/tabular';
import { summarizeProblems } from '../lib/package';
import { subjectTokens, Tokenizer } from '../lib/pseudonymize';
import { ErrorType } from '../workflows/contracts';
import { listDatasetRecords, readConsentRegistry, writeConsentRegistry } from '../lib/catalog';

export interface ConsentActivityDeps {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  scratchDir: string;
}

export interface WithdrawConsentInput {
  jurisdiction: string;
  studyId: string;
  subjectId: string;
  /** Scopes to withdraw; none means all of them. */
  scopes: string[];
  reason: string;
  effectiveOn: string;
  recordedAt: string;
}

export interface WithdrawConsentResult {
  status: 'withdrawn' | 'scopes-withdrawn';
  remainingScopes: string[];
  keyVersionsSearched: number[];
}

export interface SubjectDatasetHit {
  datasetId: string;
  table: string;
  rows: number;
}

function sameDecision(a: ConsentEntry, b: ConsentEntry): boolean {
  return a.status === b.status && a.scopes.join(';') === b.scopes.join(';') && a.withdrawnOn === b.withdrawnOn;
}

export function createConsentActivities({ s3, keys, jurisdiction, scratchDir }: ConsentActivityDeps) {
  return {
    /**
     * Records a withdrawal in the study's registry under every live key version's token of the subject, so no later
     * ingestion curates their rows. Retry-safe: withdrawing what is already withdrawn leaves the registry as it is.
     */
    async withdrawConsentActivity(input: WithdrawConsentInput): Promise<WithdrawConsentResult> {
      const { tokens, versions } = await subjectTokens(keys, jurisdiction.id, input.studyId, input.subjectId);
      const registry = await readConsentRegistry(
        s3,
        jurisdiction.buckets.catalog,
        jurisdiction.id,
        input.studyId,
        input.recordedAt,
      );
      const byToken = new Map(registry.entries.map((e) => [e.token, e]));
      const found = tokens.map((t) => byToken.get(t)).filter((e): e is ConsentEntry => e !== undefined);
      const current = found.length > 0 ? found.reduce(newerConsent) : undefined;
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
      if (!current || !sameDecision(current, entry)) {
        for (const t of tokens) byToken.delete(t);
        byToken.set(entry.token, entry);
        registry.entries = [...byToken.values()];
        registry.updatedAt = input.recordedAt;
        await writeConsentRegistry(s3, jurisdiction.buckets.catalog, registry);
      }
      return {
        status: entry.status === 'withdrawn' ? 'withdrawn' : 'scopes-withdrawn',
        remainingScopes: entry.status === 'withdrawn' ? [] : entry.scopes,
        keyVersionsSearched: versions,
      };
    },

    /**
     * Which curated datasets of the study hold rows of the subject, by token under every live key version.
     * Reads only. Scans the study's datasets; the erasure discovery index replaces this scan.
     */
    async findSubjectDatasetsActivity(input: { studyId: string; subjectId: string }): Promise<SubjectDatasetHit[]> {
      const { tokens } = await subjectTokens(keys, jurisdiction.id, input.studyId, input.subjectId);
      const hits: SubjectDatasetHit[] = [];
      const work = path.join(scratchDir, `find-${process.pid}-${Date.now()}`);
      await mkdir(work, { recursive: true });
      const db = await DuckDBInstance.create(':memory:', { threads: '1', autoinstall_known_extensions: 'false' });
      const conn = await db.connect();
      try {
        for (const record of await listDatasetRecords(s3, jurisdiction.buckets.catalog)) {
          if (record.studyId !== input.studyId) continue;
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
     * Validates every row of a consent CSV, then merges it into the study's registry keyed by subject token.
     * Retry-safe: merging the same rows again leaves the registry as it was (the newer record wins per subject).
     */
    async importConsentActivity(input: ImportConsentInput): Promise<ImportConsentResult> {
      if (input.source.bucket !== jurisdiction.buckets.landing) {
        throw ApplicationFailure.nonRetryable(
          `consent must be read from ${jurisdiction.id}'s landing bucket`,
          'JurisdictionViolation',
        );
      }
      const key = await keys.studyKey(jurisdiction.id, input.studyId);
      const tokenizer = new Tokenizer(key.material, key.version);
      const file = input.fileName;
      const problems: PackageProblem[] = [];
      const imported = new Map<string, ConsentEntry>();
      const importedAt = new Date().toISOString();
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
            token: tokenizer.token(row.subject_id),
            scopes: row.scopes,
            status: row.status,
            icfVersion: row.icf_version,
            givenOn: row.given_on,
            withdrawnOn: row.withdrawn_on,
            expiresOn: row.expires_on,
            importedAt,
          };
          const before = imported.get(entry.token);
          imported.set(entry.token, before ? newerConsent(before, entry) : entry);
        }
      } catch (error) {
        const line = (error as { lines?: number }).lines;
        problems.push({ file, ...(line ? { row: line } : {}), rule: 'malformed CSV: the file cannot be parsed' });
      }
      if (rows === 0 && problems.length === 0) problems.push({ file, rule: 'the file holds no consent records' });
      if (problems.length > 0) {
        throw ApplicationFailure.nonRetryable(
          summarizeProblems(problems).replace('package rejected', 'consent import rejected'),
          ErrorType.ConsentImportRejected,
          { problems },
        );
      }

      const registry = await readConsentRegistry(
        s3,
        jurisdiction.buckets.catalog,
        jurisdiction.id,
        input.studyId,
        importedAt,
      );
      const merged = new Map(registry.entries.map((e) => [e.token, e]));
      let conflicts = 0;
      for (const [token, entry] of imported) {
        const before = merged.get(token);
        const sameDay = before && consentDecisionDate(before) === consentDecisionDate(entry);
        if (sameDay && !sameDecision(before, entry)) conflicts += 1;
        merged.set(token, before ? newerConsent(before, entry) : entry);
      }
      registry.entries = [...merged.values()];
      registry.updatedAt = importedAt;
      await writeConsentRegistry(s3, jurisdiction.buckets.catalog, registry);
      const values = [...imported.values()];
      return {
        jurisdiction: jurisdiction.id,
        studyId: input.studyId,
        rows,
        given: values.filter((e) => e.status === 'given').length,
        withdrawn: values.filter((e) => e.status === 'withdrawn').length,
        subjectsInRegistry: registry.entries.length,
        conflicts,
      };
    },
  };
}

export type ConsentActivities = ReturnType<typeof createConsentActivities>;
