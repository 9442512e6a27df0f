import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { DuckDBConnection } from '@duckdb/node-api';
import { ConsentPartSchema } from '../../schemas/consent';
import { ACCESS_EXPORT_CLASS, type Jurisdiction } from '../../schemas/jurisdiction';
import {
  AccessManifestSchema,
  ExportRecordSchema,
  type AccessManifest,
  type AccessPackageInput,
  type AccessPackageSummary,
  type ExportRecord,
} from '../../schemas/subject-request';
import type { KeyStore } from '../crypto/keystore';
import { lookUpToken } from '../crypto/vault';
import { signDetached } from '../pki/cms';
import { addDuration } from '../retention/rules';
import { readDatasetRecord } from '../storage/catalog';
import { getJson, putJson } from '../storage/json';
import { accessPackagePrefix, consentPartsPrefix, exportRecordKey } from '../storage/layout';
import { downloadHashed, listObjects, putBytes } from '../storage/objects';
import { quoteIdent, quoteLiteral } from '../tabular/sql';
import { tokensByStudy } from './discovery';

/** The retention class of access packages in the jurisdiction file. */

export const MANIFEST_FILE = 'manifest.json';
export const SIGNATURE_FILE = 'manifest.json.p7s';

export interface AccessPackageDeps {
  s3: S3Client;
  keys: KeyStore;
  jurisdiction: Jurisdiction;
  conn: DuckDBConnection;
  workDir: string;
  signer: { certificatePem: string; privateKeyPem: string };
  caPem: string;
}

interface Facts {
  datasetId: string;
  table: string;
  rows: number;
  identified: 'reidentified' | 'tokens';
  note: string;
  purpose: string;
  consentScopes: string[];
  categories: { dataClass: string; classification: string; columns: { name: string; role: string }[] };
  recipients: string;
  retention: { duration: string; until: string | null; legalBasis: string; countsFrom: string };
  source: { system: string; protocolId: string; packageId: string; curatedAt: string };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Builds a subject's access package (GDPR Art. 15, HIPAA 164.524) in the jurisdiction's exports bucket: their rows of
 * every dataset found, as CSV and JSON (re-identified where the study's vault holds the subject, otherwise under
 * tokens, with a note saying why), their consent history, the Art. 15(1) facts from the dataset records, a README, and
 * a manifest of every file with its SHA-256, signed (CMS, detached) by the jurisdiction's evidence signer. Written
 * under the request's own prefix, so building it again rewrites the same package; recorded in the catalog with its
 * expiry under the jurisdiction's `access-export` rule.
 */
export async function buildAccessPackage(
  deps: AccessPackageDeps,
  input: AccessPackageInput,
): Promise<AccessPackageSummary> {
  const { s3, jurisdiction, conn } = deps;
  const rule = jurisdiction.retention[ACCESS_EXPORT_CLASS];
  if (!rule) throw new Error(`jurisdictions/${jurisdiction.id}.json has no ${ACCESS_EXPORT_CLASS} retention rule`);
  const bucket = jurisdiction.buckets.exports;
  const prefix = accessPackagePrefix(input.requestId);
  const expiresAt = addDuration(input.at, rule.duration);
  const files = new Map<string, Buffer>();
  const byStudy = tokensByStudy(input.found);
  await mkdir(deps.workDir, { recursive: true });

  // The subject's identifier, from the vault of each study that keeps one (never from the request).
  const identifiers = new Map<string, string | undefined>();
  const identifierIn = async (studyId: string): Promise<string | undefined> => {
    if (!identifiers.has(studyId)) {
      const key = await deps.keys.vaultKey(jurisdiction.id, studyId);
      let found: string | undefined;
      for (const token of byStudy.get(studyId) ?? []) {
        found ??= await lookUpToken(s3, jurisdiction.buckets.catalog, studyId, key, token);
      }
      identifiers.set(studyId, found);
    }
    return identifiers.get(studyId);
  };

  const facts: Facts[] = [];
  let rows = 0;
  let reidentified = 0;
  for (const place of input.places) {
    if (place.kind !== 'dataset') continue;
    const record = await readDatasetRecord(s3, jurisdiction.buckets.catalog, place.datasetId);
    if (!record) continue;
    const tokens = byStudy.get(place.studyId) ?? [];
    const source = path.join(deps.workDir, 'source.parquet');
    await downloadHashed(s3, place.bucket, place.key, source, () => {}, place.versionId);
    const identifier = await identifierIn(place.studyId);
    const column = quoteIdent(place.subjectColumn);
    const select = `SELECT * ${identifier ? `REPLACE (${quoteLiteral(identifier)} AS ${column})` : ''} FROM read_parquet(${quoteLiteral(source)}) WHERE CAST(${column} AS VARCHAR) IN (${tokens.map(quoteLiteral).join(', ')})`;
    const base = `data/${place.datasetId}/${place.table}`;
    const csv = path.join(deps.workDir, 'rows.csv');
    const json = path.join(deps.workDir, 'rows.json');
    await conn.run(`COPY (${select}) TO ${quoteLiteral(csv)} (FORMAT csv, HEADER true)`);
    await conn.run(`COPY (${select}) TO ${quoteLiteral(json)} (FORMAT json, ARRAY true)`);
    files.set(`${base}.csv`, await readFile(csv));
    files.set(`${base}.json`, await readFile(json));
    const count = Number((await conn.runAndReadAll(`SELECT count(*) FROM (${select})`)).getRows()[0]![0]);
    await rm(source, { force: true });
    rows += count;
    if (identifier) reidentified += 1;
    const output = record.outputs.find((o) => o.table === place.table);
    facts.push({
      datasetId: place.datasetId,
      table: place.table,
      rows: count,
      identified: identifier ? 'reidentified' : 'tokens',
      note: identifier
        ? `the ${place.subjectColumn} column holds your identifier, taken from the study's re-identification vault`
        : `the ${place.subjectColumn} column holds a pseudonym (a keyed token): study ${place.studyId} keeps no re-identification vault entry for you, so Steward cannot and does not link the token back to you`,
      purpose: record.purpose,
      consentScopes: record.consentScopes,
      categories: {
        dataClass: record.dataClass,
        classification: record.classification,
        columns: (output?.columns ?? []).map((c) => ({ name: c.name, role: c.role })),
      },
      recipients:
        'no disclosure to recipients outside the controller is recorded in Steward; processing is confined to the ' +
        `${jurisdiction.name} (${jurisdiction.region})`,
      retention: {
        duration: record.retention.duration,
        until: record.retention.until,
        legalBasis: record.retention.legalBasis,
        countsFrom: record.retention.countsFrom,
      },
      source: {
        system: record.sourceSystem,
        protocolId: record.protocolId,
        packageId: record.packageId,
        curatedAt: record.createdAt,
      },
    });
  }

  const consent: Record<string, unknown>[] = [];
  for (const [studyId, tokens] of byStudy) {
    const wanted = new Set(tokens);
    for (const part of await listObjects(s3, jurisdiction.buckets.catalog, consentPartsPrefix(studyId))) {
      const stored = await getJson(s3, jurisdiction.buckets.catalog, part.key, ConsentPartSchema);
      for (const entry of stored?.entries.filter((e) => wanted.has(e.token)) ?? []) {
        const { token: _token, ...decision } = entry;
        consent.push({ studyId, recordedAt: stored!.createdAt, kind: stored!.kind, ...decision });
      }
    }
  }
  consent.sort((a, b) => String(a.recordedAt).localeCompare(String(b.recordedAt)));
  files.set('consent.json', Buffer.from(`${JSON.stringify(consent, null, 2)}\n`));
  files.set(
    'facts.json',
    Buffer.from(
      `${JSON.stringify(
        {
          controller: `Steward, ${jurisdiction.name}`,
          law: jurisdiction.law,
          datasets: facts,
          cryptoErased: input.found.studies
            .filter((s) => s.cryptoErased.length > 0)
            .map((s) => ({
              studyId: s.studyId,
              keyVersions: s.cryptoErased,
              note: 'data pseudonymized under these key versions can no longer be linked to anyone: the keys were destroyed',
            })),
        },
        null,
        2,
      )}\n`,
    ),
  );
  files.set('README.md', Buffer.from(readme(input, jurisdiction, facts, expiresAt)));

  const manifest: AccessManifest = AccessManifestSchema.parse({
    format: 'steward-access-package/1',
    requestId: input.requestId,
    jurisdiction: jurisdiction.id,
    createdAt: input.at,
    expiresAt,
    files: [...files]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([p, b]) => ({ path: p, sha256: sha256(b), bytes: b.length })),
  });
  const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  files.set(MANIFEST_FILE, manifestBytes);
  files.set(SIGNATURE_FILE, signDetached(manifestBytes, deps.signer, [deps.caPem], new Date(input.at)));

  // An earlier attempt's files are overwritten (the versions it left are deleted with the package when it expires).
  const objects: ExportRecord['objects'] = [];
  for (const [name, body] of files) {
    const key = `${prefix}${name}`;
    const written = await putBytes(s3, bucket, key, body, { contentType: contentType(name) });
    objects.push({ key, versionId: written.versionId, sha256: written.sha256, bytes: body.length });
  }
  await putJson(s3, jurisdiction.buckets.catalog, exportRecordKey(input.requestId), ExportRecordSchema, {
    format: 'steward-export/1',
    requestId: input.requestId,
    jurisdiction: jurisdiction.id,
    bucket,
    prefix,
    createdAt: input.at,
    expiresAt,
    legalBasis: rule.legalBasis,
    manifestSha256: sha256(manifestBytes),
    objects,
  });
  return {
    bucket,
    prefix,
    files: files.size,
    datasets: facts.length,
    rows,
    reidentified,
    manifestSha256: sha256(manifestBytes),
    expiresAt,
  };
}

function contentType(name: string): string {
  if (name.endsWith('.csv')) return 'text/csv';
  if (name.endsWith('.json')) return 'application/json';
  if (name.endsWith('.md')) return 'text/markdown';
  return 'application/pkcs7-signature';
}

function readme(input: AccessPackageInput, jurisdiction: Jurisdiction, facts: Facts[], expiresAt: string): string {
  const lines = [
    `# Your personal data — access request ${input.requestId}`,
    '',
    `Prepared ${input.at} by Steward for the ${jurisdiction.name} (${jurisdiction.law.join('; ')}).`,
    `This package is kept until ${expiresAt}, then deleted with a deletion certificate.`,
    '',
    '## Contents',
    '',
    '- `data/<dataset>/<table>.csv` and `.json`: your rows of each dataset, exactly as stored.',
    '- `consent.json`: every consent decision recorded for you, oldest first.',
    '- `facts.json`: for each dataset, the purposes, categories of data, recipients, retention period and its legal',
    '  basis, and the source of the data (GDPR Art. 15(1)).',
    '- `manifest.json`: every file with its SHA-256; `manifest.json.p7s` is its signature. Check it with',
    '  `openssl cms -verify -binary -inform DER -in manifest.json.p7s -content manifest.json -CAfile steward-ca.pem`.',
    '',
    '## Datasets',
    '',
  ];
  if (facts.length === 0) lines.push('No dataset holds data about you.');
  for (const f of facts) {
    lines.push(
      `- ${f.datasetId} (${f.table}): ${f.rows} rows, purpose ${f.purpose}, kept ${f.retention.duration} (${f.retention.legalBasis}). ${f.note}.`,
    );
  }
  return `${lines.join('\n')}\n`;
}
