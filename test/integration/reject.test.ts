import { symlink, unlink, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { getJurisdiction } from '../../jurisdictions';
import { datasetIdFor } from '../../contracts';
import { listObjects, readObjectText } from '../../lib/storage/objects';
import { landingPrefix } from '../../lib/client/submit';
import { importConsentCsv, ingestDir, ingestRejected, smallMetadata, tempDir, writeBag } from '../helpers';
import { useClients } from '../harness';

const STUDY = 'ST-REJECT';
const GOOD_CSV =
  'subject_id,full_name,visit_date,score,note\nR-1,Ann Smith,2025-01-02,3,ok\nR-2,Bob Jones,2025-01-03,4,\n';
const buckets = getJurisdiction('eu').buckets;

const clients = useClients();
beforeAll(async () => {
  await importConsentCsv(
    clients(),
    'subject_id,scopes,status,icf_version,given_on\nR-1,primary-research,given,v1,2024-01-01\nR-2,primary-research,given,v1,2024-01-01\n',
    'eu',
    STUDY,
  );
});

async function bag(
  files: Record<string, string>,
  tweak: Parameters<typeof writeBag>[3] = {},
  format: 'csv' | 'ndjson' = 'csv',
) {
  return writeBag(await tempDir(), smallMetadata({ studyId: STUDY }, format), files, tweak);
}

/** Rejects, quarantines with the reasons, curates nothing, leaves landing empty; returns the message. */
async function expectRejected(dir: string): Promise<string> {
  const rejected = await ingestRejected(clients(), dir);
  expect(rejected.app.type).toBe('PackageRejected');
  expect(rejected.app.nonRetryable).toBe(true);
  expect(rejected.problems.length).toBeGreaterThan(0);
  const datasetId = datasetIdFor('eu', rejected.packageId);
  expect(await listObjects(clients().s3, buckets.curated, `datasets/${datasetId}/`)).toEqual([]);
  expect(await listObjects(clients().s3, buckets.catalog, `datasets/${datasetId}`)).toEqual([]);
  expect(await listObjects(clients().s3, buckets.landing, landingPrefix(rejected.packageId))).toEqual([]);
  const note = JSON.parse(
    (await readObjectText(clients().s3, buckets.quarantine, `packages/${rejected.packageId}/rejection.json`)).toString(
      'utf8',
    ),
  ) as { reason: string; problems: unknown[] };
  expect(note.reason).toBe(rejected.app.message);
  expect(note.problems).toEqual(rejected.problems);
  const quarantined = await listObjects(clients().s3, buckets.quarantine, `packages/${rejected.packageId}/payload/`);
  expect(quarantined.map((o) => o.key.split('/payload/')[1])).toContain('manifest-sha256.txt');
  return rejected.app.message;
}

describe('bad packages are rejected, quarantined, and nothing is curated', () => {
  it('checksum mismatch', async () => {
    const dir = await bag({ 'data/visits.csv': GOOD_CSV });
    await writeFile(path.join(dir, 'data/visits.csv'), GOOD_CSV.replace('Ann', 'Anne').slice(0, -1));
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: data/visits.csv: SHA-256 mismatch: manifest says a794d5a887f2773029eb4c39157e64b4fae98164e06d7f7fe691cfb80876dba1, file has a98dcc807dbb63a22b45de5aa6c11341db0c54e4993b90d93f0b4d7579bfd9ff. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('missing file', async () => {
    const dir = await bag({ 'data/visits.csv': GOOD_CSV, 'data/extra.csv': 'a\n' });
    await unlink(path.join(dir, 'data/extra.csv'));
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: data/extra.csv: listed in manifest-sha256.txt but missing from the package; bag-info.txt, field "Payload-Oxum": declares 103 bytes in 2 files, the payload holds 101 bytes in 1 files. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('extra file not in the manifest', async () => {
    const dir = await bag({ 'data/visits.csv': GOOD_CSV }, { oxum: `${Buffer.byteLength(GOOD_CSV) + 6}.2` });
    await writeFile(path.join(dir, 'data/stray.txt'), 'stray\n');
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: data/stray.txt: not listed in manifest-sha256.txt. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('wrong Payload-Oxum', async () => {
    const dir = await bag({ 'data/visits.csv': GOOD_CSV }, { oxum: '12.1' });
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: bag-info.txt, field "Payload-Oxum": declares 12 bytes in 1 files, the payload holds 101 bytes in 1 files. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('absolute path in the manifest', async () => {
    const dir = await bag(
      { 'data/visits.csv': GOOD_CSV },
      { manifestLines: (l) => [...l, `${'a'.repeat(64)}  /etc/passwd`] },
    );
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: /etc/passwd: absolute paths are not allowed. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('path traversal in the manifest', async () => {
    const dir = await bag(
      { 'data/visits.csv': GOOD_CSV },
      { manifestLines: (l) => [...l, `${'b'.repeat(64)}  data/../../secrets.csv`] },
    );
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: data/../../secrets.csv: path traversal ("..") is not allowed. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('unreadable file (a symbolic link)', async () => {
    const dir = await bag({ 'data/visits.csv': GOOD_CSV, 'data/link.csv': 'x\n' });
    await unlink(path.join(dir, 'data/link.csv'));
    await symlink('/etc/hostname', path.join(dir, 'data/link.csv'));
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: data/link.csv: unreadable: symbolic links are not accepted. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('malformed CSV rows', async () => {
    const dir = await bag({ 'data/visits.csv': `${GOOD_CSV}R-3,Cy,2025-01-04\nR-4,"Di,2025-01-05,5,x\n` });
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: data/visits.csv, row 3: row has fewer fields than the header; data/visits.csv, row 4: malformed quoting. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('values that do not match the declared types', async () => {
    const dir = await bag({ 'data/visits.csv': `${GOOD_CSV}R-3,Cy,2025-13-45,5,\nR-4,Di,2025-01-05,five,\n` });
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: data/visits.csv, row 3, field "visit_date": must be a date in YYYY-MM-DD form; data/visits.csv, row 4, field "score": must be an integer. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('missing required values', async () => {
    const dir = await bag({
      'data/visits.csv': `${GOOD_CSV},Ed,2025-01-06,1,\nR-5,Flo,,2,\n "  ",Gil,2025-01-07,1,\n`,
    });
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: data/visits.csv, row 3, field "subject_id": a value is required; data/visits.csv, row 4, field "visit_date": a value is required; data/visits.csv, row 5, field "subject_id": a value is required. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('a header that does not match the declared columns', async () => {
    const dir = await bag({
      'data/visits.csv': 'subject_id,full_name,visit_date,points,note\nR-1,Ann,2025-01-02,3,\n',
    });
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: data/visits.csv, field "points": column is not declared in the package metadata; data/visits.csv, field "score": declared column is missing from the header. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('malformed NDJSON', async () => {
    const lines = [
      '{"subject_id":"R-1","full_name":"Ann","visit_date":"2025-01-02","score":3}',
      '{"subject_id":"R-2","visit_date":"2025-01-03","score":"3"}',
      '{not json',
      '{"subject_id":"R-3","visit_date":"2025-02-30","shoe_size":44}',
    ];
    const dir = await bag({ 'data/visits.ndjson': `${lines.join('\n')}\n` }, {}, 'ndjson');
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: data/visits.ndjson, row 2, field "score": must be an integer; data/visits.ndjson, row 3: not valid JSON; data/visits.ndjson, row 4, field "shoe_size": field is not declared in the package metadata; data/visits.ndjson, row 4, field "visit_date": must be a date in YYYY-MM-DD form. Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('metadata naming a data class without a retention rule', async () => {
    const dir = await writeBag(await tempDir(), smallMetadata({ studyId: STUDY, dataClass: 'genomics' }), {
      'data/visits.csv': GOOD_CSV,
    });
    expect(await expectRejected(dir)).toMatchInlineSnapshot(
      `"package rejected: steward.json, field "dataClass": jurisdiction eu has no retention rule for data class "genomics" (known: clinical-trial, real-world). Nothing was curated; the package is kept in quarantine with these reasons: correct it and ingest it again"`,
    );
  });

  it('keeps serving: a good package after all the bad ones is curated', async () => {
    const dir = await bag({ 'data/visits.csv': GOOD_CSV.replace('2025-01-03', '2025-01-09') });
    await mkdir(path.join(dir, 'data'), { recursive: true });
    const result = await ingestDir(clients(), dir);
    expect(result.outcome).toBe('curated');
    expect(result.record.rows).toEqual({ in: 2, curated: 2, excluded: 0, excludedByReason: {} });
  });
});
