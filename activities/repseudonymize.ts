import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectTaggingCommand, type S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { Context } from '@temporalio/activity';
import { ErrorType, nonRetryable } from '../contracts';
import type { ConsentEntry } from '../schemas/consent';
import type { DatasetOutput } from '../schemas/dataset';
import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import {
  RePseudonymizeActivityInputSchema,
  type RePseudonymizeActivityInput,
  type RePseudonymizeActivityResult,
  type VaultShard,
} from '../schemas/vault';
import type { KeyStore } from '../lib/crypto/keystore';
import { linkEntries } from '../lib/consent/decide';
import { writeConsentLinks } from '../lib/consent/links';
import { readConsentRegistry, readDatasetRecord } from '../lib/storage/catalog';
import { subjectExclusions, writeCarriedTokens } from '../lib/storage/subjects';
import { deleteOtherVersions, downloadHashed, hashFile, headObject, putFileOnce } from '../lib/storage/objects';
import { dateShiftDays, tokenize } from '../lib/crypto/pseudonymize';
import { quoteIdent, quoteLiteral } from '../lib/tabular/sql';
import { readVaultShards, sealIdentifier, unsealIdentifier, writeVaultShard } from '../lib/crypto/vault';

/**
 * Moves a dataset's tokens (and shifted dates) to the study's current key version, using the study's
 * re-identification vault: HMAC tokens cannot be reversed, so a study without a vault cannot be migrated.
 */
export function createRePseudonymizeActivities(deps: {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  scratchDir: string;
}) {
  const { s3, keys, jurisdiction } = deps;
  return {
    /**
     * Resumable and retry-safe: a table whose object already carries the target key version is skipped (its current
     * version and checksum are read back), and each new object version replaces the old ones only after it is stored.
     * Before a table's new version is stored, each of its subjects' tokens under every live key version (the new one
     * among them) is linked to the subject's newest consent decision, so preprocessing of the re-keyed dataset decides
     * as ingestion does; links are named by their content, so a retry rewrites the same ones. Likewise each restricted
     * or erased subject's new token is recorded as carried from the token their restriction or tombstone names, so
     * processing of the re-keyed rows still leaves them out.
     * The dataset record is left to its single writer: the outputs come back for the workflow to record.
     */
    async rePseudonymizeDatasetActivity(raw: RePseudonymizeActivityInput): Promise<RePseudonymizeActivityResult> {
      const input = parseInput(RePseudonymizeActivityInputSchema, raw, 'rePseudonymizeDatasetActivity');
      const record = await readDatasetRecord(s3, jurisdiction.buckets.catalog, input.datasetId);
      if (!record) {
        throw nonRetryable(
          ErrorType.DatasetNotFound,
          `dataset ${input.datasetId} is not in the ${jurisdiction.id} catalog`,
        );
      }
      const current = await keys.studyKey(jurisdiction.id, record.studyId);
      const result = {
        datasetId: record.datasetId,
        fromVersions: record.keyVersions,
        toVersion: current.version,
        tablesMigrated: 0,
        tokensCarried: 0,
      };
      if (record.keyVersions.length === 1 && record.keyVersions[0] === current.version)
        return { ...result, migrated: false, outputs: record.outputs, deletedVersions: [] };

      const live = await keys.liveStudyKeys(jurisdiction.id, record.studyId);
      const consent = new Map(
        (
          await readConsentRegistry(s3, jurisdiction.buckets.catalog, jurisdiction.id, record.studyId, input.at)
        ).entries.map((e) => [e.token, e]),
      );
      // Restricted and erased subjects (rows kept under a duty to keep) must stay out of processing under the new key.
      const excluded = (await subjectExclusions(s3, jurisdiction.buckets.catalog)).get(record.studyId) ?? new Map();
      const carried = new Map<string, string>();
      const vaultKey = await keys.vaultKey(jurisdiction.id, record.studyId);
      const sealed = new Map<string, string>();
      for (const { shard } of await readVaultShards(s3, jurisdiction.buckets.catalog, record.studyId)) {
        for (const [token, value] of Object.entries(shard.entries)) sealed.set(token, value);
      }
      const original = (token: string): string | undefined => {
        const value = sealed.get(token);
        return value === undefined ? undefined : unsealIdentifier(vaultKey, token, value);
      };
      const shard: VaultShard = {
        format: 'steward-vault/1',
        jurisdiction: jurisdiction.id,
        studyId: record.studyId,
        datasetId: `${record.datasetId}-v${current.version}`,
        keyId: vaultKey.id,
        entries: {},
      };

      const work = path.join(deps.scratchDir, `repseudonymize-${record.datasetId}-${process.pid}`);
      await mkdir(work, { recursive: true });
      const db = await DuckDBInstance.create(':memory:', {
        threads: '2',
        temp_directory: path.join(work, 'tmp'),
        autoinstall_known_extensions: 'false',
      });
      const conn = await db.connect();
      const outputs: DatasetOutput[] = record.outputs.map((o) => ({ ...o }));
      const deletedVersions: { bucket: string; key: string; versionId: string }[] = [];
      try {
        for (const output of outputs) {
          Context.current().heartbeat({ table: output.table });
          const tags = await s3.send(new GetObjectTaggingCommand({ Bucket: output.bucket, Key: output.key }));
          const tagMap = Object.fromEntries((tags.TagSet ?? []).map((t) => [t.Key, t.Value]));
          if (tagMap['key-version'] === String(current.version)) {
            // Migrated by an earlier attempt: record what is stored now.
            const head = await headObject(s3, output.bucket, output.key);
            Object.assign(output, { sha256: head.sha256, bytes: head.bytes, versionId: head.versionId });
            continue;
          }
          const inFile = path.join(work, `${output.table}.in.parquet`);
          await downloadHashed(s3, output.bucket, output.key, inFile);
          const tokenColumns = output.columns.filter((c) => c.role === 'subject-id' || c.role === 'direct-identifier');
          const subject = output.columns.find((c) => c.role === 'subject-id')!;
          const maps: string[] = [];
          const links: ConsentEntry[] = [];
          for (const [i, column] of tokenColumns.entries()) {
            const map = `map_${i}`;
            await conn.run(`CREATE OR REPLACE TABLE ${map} (old VARCHAR, new VARCHAR, delta INTEGER)`);
            const appender = await conn.createAppender(map);
            const distinct = await conn.runAndReadAll(
              `SELECT DISTINCT ${quoteIdent(column.name)} AS t FROM read_parquet(${quoteLiteral(inFile)}) WHERE ${quoteIdent(column.name)} IS NOT NULL`,
            );
            let missing = 0;
            for (const row of distinct.getRowObjectsJS()) {
              const old = String(row.t);
              const raw = original(old);
              if (raw === undefined) {
                missing += 1;
                continue;
              }
              const next = tokenize(current.material, current.version, raw);
              shard.entries[next] ??= sealIdentifier(vaultKey, next, raw);
              if (column.role === 'subject-id') {
                const tokens = live.map((k) =>
                  k.version === current.version ? next : tokenize(k.material, k.version, raw),
                );
                links.push(...linkEntries(consent, tokens));
                if (excluded.has(old)) carried.set(old, next);
              }
              const oldVersion = Number(/^v(\d+)\./.exec(old)?.[1]);
              const oldKey = (await keys.studyKeyVersion(jurisdiction.id, record.studyId, oldVersion)).material;
              const delta =
                column.role === 'subject-id'
                  ? dateShiftDays(current.material, raw, record.dateShiftDays) -
                    dateShiftDays(oldKey, raw, record.dateShiftDays)
                  : 0;
              appender.appendVarchar(old);
              appender.appendVarchar(next);
              appender.appendInteger(delta);
              appender.endRow();
            }
            appender.flushSync();
            appender.closeSync();
            if (missing > 0) {
              throw nonRetryable(
                ErrorType.VaultEntryMissing,
                `dataset ${record.datasetId}, table ${output.table}, column ${column.name}: ${missing} tokens have no re-identification vault entry, so they cannot be moved to key v${current.version}`,
              );
            }
            maps.push(map);
          }
          const subjectMap = maps[tokenColumns.indexOf(subject)]!;
          const projection = output.columns.map((c) => {
            const i = tokenColumns.indexOf(c);
            if (i >= 0) return `m${i}.new AS ${quoteIdent(c.name)}`;
            if (c.role === 'date' && record.dateShiftDays > 0) {
              return c.type === 'date'
                ? `(t.${quoteIdent(c.name)} + ms.delta) AS ${quoteIdent(c.name)}`
                : `(t.${quoteIdent(c.name)} + to_days(ms.delta)) AS ${quoteIdent(c.name)}`;
            }
            return `t.${quoteIdent(c.name)}`;
          });
          const joins = tokenColumns
            .map((c, i) => `LEFT JOIN ${maps[i]} m${i} ON m${i}.old = t.${quoteIdent(c.name)}`)
            .join(' ');
          const outFile = path.join(work, `${output.table}.out.parquet`);
          await conn.run(
            `COPY (SELECT ${projection.join(', ')} FROM (SELECT *, row_number() OVER () AS __row FROM read_parquet(${quoteLiteral(inFile)})) t ${joins}
               LEFT JOIN ${subjectMap} ms ON ms.old = t.${quoteIdent(subject.name)} ORDER BY t.__row)
             TO ${quoteLiteral(outFile)} (FORMAT parquet, COMPRESSION zstd)`,
          );
          await writeConsentLinks(s3, jurisdiction.buckets.catalog, {
            jurisdiction: jurisdiction.id,
            studyId: record.studyId,
            createdAt: input.at,
            entries: links,
          });
          await writeCarriedTokens(s3, jurisdiction.buckets.catalog, {
            jurisdiction: jurisdiction.id,
            studyId: record.studyId,
            datasetId: record.datasetId,
            toVersion: current.version,
            createdAt: input.at,
            entries: [...carried].map(([from, to]) => ({ from, to })),
          });
          const digest = await hashFile(outFile);
          const put = await putFileOnce(s3, output.bucket, output.key, outFile, digest.sha256, {
            contentType: 'application/vnd.apache.parquet',
            tags: { ...(tagMap as Record<string, string>), 'key-version': String(current.version) },
            ...(record.retention.lockedUntil && record.retention.lockedUntil > input.at
              ? { lock: { mode: record.retention.objectLock, until: new Date(record.retention.lockedUntil) } }
              : {}),
          });
          // The old versions hold the old tokens: gone once the new version is stored (they are the same data, so the
          // GOVERNANCE retention they carry is carried by the new version).
          for (const versionId of await deleteOtherVersions(s3, output.bucket, output.key, put.versionId, {
            bypassGovernance: true,
          })) {
            deletedVersions.push({ bucket: output.bucket, key: output.key, versionId });
          }
          output.sha256 = digest.sha256;
          output.bytes = digest.bytes;
          output.versionId = put.versionId;
          result.tablesMigrated += 1;
        }
        await writeVaultShard(s3, jurisdiction.buckets.catalog, shard);
        return { ...result, tokensCarried: carried.size, migrated: true, outputs, deletedVersions };
      } finally {
        conn.closeSync();
        db.closeSync();
        await rm(work, { recursive: true, force: true });
      }
    },
  };
}
