import type { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { parse } from 'csv-parse';
import {
  CONSENT_CSV_COLUMNS,
  ConsentCsvRowSchema,
  ConsentRegistrySchema,
  type ConsentEntry,
  type ConsentRegistry,
} from '../schemas/consent';
import type { Jurisdiction } from '../schemas/jurisdiction';
import type { ImportConsentInput, ImportConsentResult, PackageProblem } from '../schemas/workflows';
import { newerConsent } from '../lib/consent';
import type { KeyStore } from '../lib/keystore';
import { getObjectOrUndefined } from '../lib/objects';
import { summarizeProblems } from '../lib/package';
import { Tokenizer } from '../lib/pseudonymize';
import { ErrorType } from '../workflows/contracts';
import { consentRegistryKey } from './curate';

export interface ConsentActivityDeps {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
}

export function createConsentActivities({ s3, keys, jurisdiction }: ConsentActivityDeps) {
  return {
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

      const registryKey = consentRegistryKey(input.studyId);
      const existing = await getObjectOrUndefined(s3, jurisdiction.buckets.catalog, registryKey);
      const registry: ConsentRegistry = existing
        ? ConsentRegistrySchema.parse(JSON.parse(existing.toString('utf8')))
        : {
            format: 'steward-consent/1',
            jurisdiction: jurisdiction.id,
            studyId: input.studyId,
            updatedAt: importedAt,
            entries: [],
          };
      const merged = new Map(registry.entries.map((e) => [e.token, e]));
      for (const [token, entry] of imported) {
        const before = merged.get(token);
        merged.set(token, before ? newerConsent(before, entry) : entry);
      }
      registry.entries = [...merged.values()].sort((a, b) => a.token.localeCompare(b.token));
      registry.updatedAt = importedAt;
      await s3.send(
        new PutObjectCommand({
          Bucket: jurisdiction.buckets.catalog,
          Key: registryKey,
          Body: JSON.stringify(registry),
          ContentType: 'application/json',
        }),
      );
      const values = [...imported.values()];
      return {
        jurisdiction: jurisdiction.id,
        studyId: input.studyId,
        rows,
        given: values.filter((e) => e.status === 'given').length,
        withdrawn: values.filter((e) => e.status === 'withdrawn').length,
        subjectsInRegistry: registry.entries.length,
      };
    },
  };
}

export type ConsentActivities = ReturnType<typeof createConsentActivities>;
