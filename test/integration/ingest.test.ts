import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectTaggingCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { getJurisdiction } from '../../jurisdictions';
import { generateDemoPackage } from '../../cli/demo/generate';
import { listObjects } from '../../lib/storage/objects';
import {
  allObjectBytes,
  containsAny,
  importConsentCsv,
  expectedCurated,
  ingestDir,
  objectVersions,
  rawHistory,
  readParquet,
  smallMetadata,
  tempDir,
  writeJsonPackage,
} from '../helpers';
import { useClients } from '../harness';

const clients = useClients();

/** Raw identifiers and free text of a generated package, read back from its own files. */
async function sensitiveStrings(packageDir: string): Promise<string[]> {
  const subjects = (await readFile(path.join(packageDir, 'data', 'subjects.csv'), 'utf8')).trim().split('\n').slice(1);
  const values = subjects.flatMap((line) => {
    const [id, mrn, first, last, email] = line.split(',');
    return [id!, mrn!, `${first} ${last}`, email!];
  });
  const notes = (await readFile(path.join(packageDir, 'data', 'visits.csv'), 'utf8'))
    .split('\n')
    .map((l) => /reported ([a-z ]+)/.exec(l)?.[0])
    .filter((n): n is string => Boolean(n));
  return [...values, ...new Set(notes)];
}

describe.each([
  { jurisdiction: 'eu', study: 'EU-HAPPY', seed: 11, retention: 'P25Y' },
  { jurisdiction: 'us', study: 'US-HAPPY', seed: 12, retention: 'P6Y' },
])('ingestion into $jurisdiction', ({ jurisdiction, study, seed, retention }) => {
  it('curates exactly the consented rows as typed, pseudonymized Parquet with no raw identifier anywhere', async () => {
    const out = await tempDir();
    const generated = await generateDemoPackage({ out, jurisdiction, studyId: study, rows: 1500, subjects: 120, seed });
    const consent = await importConsentCsv(
      clients(),
      await readFile(generated.consentFile, 'utf8'),
      jurisdiction,
      study,
    );
    expect(consent.withdrawn).toBe(generated.consent.withdrawn);
    expect(consent.given).toBe(generated.consent.given + generated.consent.scopeOnly);

    const result = await ingestDir(clients(), generated.packageDir);
    expect(result.outcome).toBe('curated');
    const { record } = result;
    const expected = await expectedCurated(generated.packageDir, generated.consentFile, 'primary-research');
    const total = Object.values(expected).reduce((a, e) => ({ in: a.in + e.in, curated: a.curated + e.curated }), {
      in: 0,
      curated: 0,
    });
    expect(record.rows.in).toBe(total.in);
    expect(record.rows.curated).toBe(total.curated);
    expect(record.rows.excluded).toBe(total.in - total.curated);
    expect(record.rows.excluded).toBeGreaterThan(0);
    expect(Object.values(record.rows.excludedByReason).reduce((a, b) => a + b, 0)).toBe(record.rows.excluded);
    expect(record.retention.duration).toBe(retention);
    expect(record.keyVersions).toEqual([1]);
    expect(record.inputs.map((i) => i.path).sort()).toEqual([
      'data/adverse_events.ndjson',
      'data/labs.csv',
      'data/subjects.csv',
      'data/visits.csv',
    ]);

    const buckets = getJurisdiction(jurisdiction).buckets;
    for (const output of record.outputs) {
      expect(output.rows.curated).toBe(expected[output.table as keyof typeof expected].curated);
      const { rows } = await readParquet(clients().s3, output.bucket, output.key);
      expect(rows).toHaveLength(output.rows.curated);
      for (const row of rows) expect(row.subject_id).toMatch(/^v1\.[A-Za-z0-9_-]{43}$/);
      const head = await clients().s3.send(
        new HeadObjectCommand({ Bucket: output.bucket, Key: output.key, ChecksumMode: 'ENABLED' }),
      );
      expect(head.ChecksumSHA256).toBe(Buffer.from(output.sha256, 'hex').toString('base64'));
      const tags = await clients().s3.send(new GetObjectTaggingCommand({ Bucket: output.bucket, Key: output.key }));
      expect(Object.fromEntries((tags.TagSet ?? []).map((t) => [t.Key, t.Value]))).toMatchObject({
        'study-id': study,
        'data-class': 'clinical-trial',
        classification: getJurisdiction(jurisdiction).retention['clinical-trial']!.classification,
        'consent-scopes': 'primary-research',
      });
    }

    const labs = record.outputs.find((o) => o.table === 'labs')!;
    const { types, rows } = await readParquet(clients().s3, labs.bucket, labs.key);
    expect(types).toEqual({
      subject_id: 'VARCHAR',
      visit_no: 'BIGINT',
      collected_on: 'DATE',
      test_code: 'VARCHAR',
      test_name: 'VARCHAR',
      value: 'DOUBLE',
      unit: 'VARCHAR',
      ref_low: 'DOUBLE',
      ref_high: 'DOUBLE',
      abnormal: 'BOOLEAN',
      site_id: 'VARCHAR',
    });
    expect(rows[0]!.collected_on).toBeInstanceOf(Date);
    const subjects = record.outputs.find((o) => o.table === 'subjects')!;
    const subjectRows = (await readParquet(clients().s3, subjects.bucket, subjects.key)).rows;
    for (const column of ['mrn', 'first_name', 'last_name', 'email']) {
      for (const row of subjectRows) expect(row[column]).toMatch(/^v1\./);
    }

    const secrets = await sensitiveStrings(generated.packageDir);
    expect(secrets.length).toBeGreaterThan(400);
    const curatedBytes = await allObjectBytes(clients().s3, buckets.curated, `datasets/${record.datasetId}/`);
    expect(curatedBytes).toHaveLength(4);
    expect(containsAny(curatedBytes, secrets)).toEqual([]);
    const recordBytes = await allObjectBytes(clients().s3, buckets.catalog, `datasets/${record.datasetId}.json`);
    expect(containsAny(recordBytes, secrets)).toEqual([]);
    const registry = await allObjectBytes(clients().s3, buckets.catalog, `consent/${study}/`);
    expect(containsAny(registry, secrets)).toEqual([]);
    const history = await rawHistory(clients().client, result.workflowId);
    expect(history.length).toBeGreaterThan(1000);
    // The package metadata travels in the workflow input: readable only if payload encryption failed.
    expect(containsAny([history], [...secrets, 'primary-research', 'synthetic-edc'])).toEqual([]);
  });
});

describe('idempotency and token stability', () => {
  it('the same package twice is one dataset, one object version per table', async () => {
    const dir = await tempDir();
    await writeJsonPackage(dir, smallMetadata({ studyId: 'ST-IDEM' }), {
      'data/visits.csv': 'subject_id,full_name,visit_date,score,note\nS-1,Ada Lovelace,2025-01-02,3,fine\n',
    });
    await importConsentCsv(
      clients(),
      'subject_id,scopes,status,icf_version,given_on\nS-1,primary-research,given,v1,2024-12-01\n',
      'eu',
      'ST-IDEM',
    );
    const first = await ingestDir(clients(), dir);
    const second = await ingestDir(clients(), dir);
    expect(first.started).toBe(true);
    expect(second.started).toBe(false);
    expect(second.datasetId).toBe(first.datasetId);
    expect(second.record).toEqual(first.record);
    const buckets = getJurisdiction('eu').buckets;
    const records = await listObjects(clients().s3, buckets.catalog, `datasets/${first.datasetId}`);
    expect(records).toHaveLength(1);
    expect(await objectVersions(clients().s3, buckets.curated, `datasets/${first.datasetId}/`)).toBe(1);
  });

  it('tokens join across packages of one study and are unlinkable across studies', async () => {
    const consent = 'subject_id,scopes,status,icf_version,given_on\nS-42,primary-research,given,v1,2024-12-01\n';
    const datasets = [];
    for (const [study, date] of [
      ['ST-JOIN-A', '2025-02-01'],
      ['ST-JOIN-A', '2025-03-01'],
      ['ST-JOIN-B', '2025-02-01'],
    ] as const) {
      await importConsentCsv(clients(), consent, 'eu', study);
      const dir = await tempDir();
      await writeJsonPackage(dir, smallMetadata({ studyId: study }), {
        'data/visits.csv': `subject_id,full_name,visit_date,score,note\n  S-42 ,Grace Hopper,${date},7,\n`,
      });
      const result = await ingestDir(clients(), dir);
      const visits = result.record.outputs[0]!;
      datasets.push((await readParquet(clients().s3, visits.bucket, visits.key)).rows[0]!);
    }
    const [a1, a2, b] = datasets;
    expect(a1!.subject_id).toBe(a2!.subject_id);
    expect(a1!.full_name).toBe(a2!.full_name);
    expect(b!.subject_id).not.toBe(a1!.subject_id);
    expect(a1!.subject_id).toMatch(/^v1\./);
    expect(Object.keys(a1!)).toEqual(['subject_id', 'full_name', 'visit_date', 'score']);
  });
});
