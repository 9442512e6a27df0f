import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getJurisdiction } from '../../jurisdictions';
import { readDatasetRecord } from '../../lib/storage/catalog';
import { listObjects } from '../../lib/storage/objects';
import { datasetIdFor } from '../../contracts';
import { readLocalPackage } from '../../lib/package/local';
import {
  importConsentCsv,
  ingestDir,
  ingestRejected,
  smallMetadata,
  stackState,
  stackSteward,
  tempDir,
  writeJsonPackage,
} from '../helpers';
import { sealedEvents, useClients } from '../harness';

// Source authentication at ingestion: a study registers its source systems' certificates; a package carries a
// detached CMS signature of its manifest, made with OpenSSL as easily as with `steward sources sign`.

const clients = useClients();
const eu = getJurisdiction('eu');

/** A source system's key and self-signed certificate, made with OpenSSL as a lab's IT would. */
async function opensslSource(name: string): Promise<{ certificate: string; key: string }> {
  const dir = await tempDir('steward-source-');
  const certificate = path.join(dir, 'source.pem');
  const key = path.join(dir, 'source.key');
  execFileSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    certificate,
    '-days',
    '30',
    '-subj',
    `/CN=${name}/O=Synthetic Lab`,
  ]);
  return { certificate, key };
}

function opensslSign(dir: string, source: { certificate: string; key: string }, file = 'manifest.json') {
  execFileSync('openssl', [
    'cms',
    '-sign',
    '-binary',
    '-md',
    'sha256',
    '-in',
    path.join(dir, file),
    '-signer',
    source.certificate,
    '-inkey',
    source.key,
    '-outform',
    'DER',
    '-out',
    path.join(dir, `${file}.p7s`),
  ]);
}

/** `steward sources register` for a study of the EU, as the demo steward unless other global options say. */
function register(
  study: string,
  name: string,
  certificate: string,
  options: { require?: boolean; before?: string[] } = {},
) {
  return stackSteward(
    ...(options.before ?? []),
    'sources',
    'register',
    '--jurisdiction',
    'eu',
    '--study',
    study,
    '--name',
    name,
    '--certificate',
    certificate,
    ...(options.require ? ['--require'] : []),
  );
}

async function visitsPackage(study: string, subject: string): Promise<string> {
  return writeJsonPackage(await tempDir(), smallMetadata({ studyId: study }), {
    'data/visits.csv': `subject_id,full_name,visit_date,score,note\n${subject},A B,2025-01-01,1,\n`,
  });
}

describe('source authentication', () => {
  it('curates a package a registered source signed with openssl cms, and records the signer', async () => {
    const study = `ST-SRC-${randomUUID().slice(0, 8).toUpperCase()}`;
    const lab = await opensslSource('Lab EDC');
    const registered = register(study, 'Lab EDC', lab.certificate, { require: true, before: ['--json'] });
    expect(registered.code, registered.stderr).toBe(0);
    const result = JSON.parse(registered.stdout) as { fingerprint: string; required: boolean; sources: number };
    expect(result).toMatchObject({ required: true, sources: 1 });
    const fingerprint = execFileSync('openssl', ['x509', '-in', lab.certificate, '-noout', '-fingerprint', '-sha256'])
      .toString()
      .split('=')[1]!
      .trim()
      .replaceAll(':', '')
      .toLowerCase();
    expect(result.fingerprint).toBe(fingerprint);

    await importConsentCsv(
      clients(),
      'subject_id,scopes,status,icf_version,given_on,withdrawn_on,expires_on\nSRC-1,primary-research,given,v1,2024-01-01,,\n',
      'eu',
      study,
    );
    const dir = await visitsPackage(study, 'SRC-1');
    opensslSign(dir, lab);
    const ingested = await ingestDir(clients(), dir);
    const record = (await readDatasetRecord(clients().s3, eu.buckets.catalog, ingested.record.datasetId))!;
    expect(record.lineage.source).toMatchObject({
      source: 'Lab EDC',
      registered: true,
      fingerprint,
      signedFile: 'manifest.json',
    });
    const listed = stackSteward('--json', 'sources', 'list', '--jurisdiction', 'eu', '--study', study);
    expect(JSON.parse(listed.stdout)).toMatchObject({ required: true, sources: [{ name: 'Lab EDC', fingerprint }] });
    expect(listed.stdout).not.toContain('BEGIN CERTIFICATE');
    const events = (await sealedEvents(clients(), 'eu')).map((e) => e.event);
    expect(events.find((e) => e.action === 'source.registered' && e.targets.studyId === study)).toMatchObject({
      outcome: 'success',
      principal: { role: 'steward' },
      details: { source: 'Lab EDC', fingerprint, required: true },
    });
  });

  it('rejects an unsigned, a wrongly signed and an altered package where signatures are required: exit 3, quarantined', async () => {
    const study = `ST-SRC-${randomUUID().slice(0, 8).toUpperCase()}`;
    const lab = await opensslSource('Lab EDC');
    const other = await opensslSource('Someone Else');
    expect(register(study, 'Lab EDC', lab.certificate, { require: true }).code).toBe(0);
    const unsigned = await visitsPackage(study, 'SRC-2');
    const cli = stackSteward('ingest', unsigned);
    expect(cli.code, cli.stderr).toBe(3);
    expect(cli.stderr).toContain('manifest.json.p7s');
    expect(cli.stderr).toContain('the study accepts only packages whose manifest a registered source signed');

    const wrong = await visitsPackage(study, 'SRC-3');
    opensslSign(wrong, other);
    expect((await ingestRejected(clients(), wrong)).problems).toEqual([
      { file: 'manifest.json.p7s', rule: 'signed by a certificate that is not a registered source of the study' },
    ]);

    const altered = await visitsPackage(study, 'SRC-4');
    opensslSign(altered, lab);
    const manifest = JSON.parse(await readFile(path.join(altered, 'manifest.json'), 'utf8')) as { purpose: string };
    await writeFile(path.join(altered, 'manifest.json'), JSON.stringify({ ...manifest, purpose: 'marketing' }));
    const rejected = await ingestRejected(clients(), altered);
    expect(rejected.problems).toEqual([
      {
        file: 'manifest.json.p7s',
        rule: 'does not verify: the content does not match the signed message digest: it was changed after signing',
      },
    ]);
    // Rejected packages go to quarantine; nothing of theirs is curated.
    const quarantined = await listObjects(clients().s3, eu.buckets.quarantine, '');
    expect(quarantined.some((o) => o.key.includes(rejected.packageId))).toBe(true);
    const datasetId = datasetIdFor('eu', rejected.packageId);
    expect(await readDatasetRecord(clients().s3, eu.buckets.catalog, datasetId)).toBeUndefined();
  });

  it('demo generate signs its bag as a demo source; a bag changed after signing is refused, and only a steward registers', async () => {
    const out = await tempDir('steward-demo-');
    const study = `ST-SRC-${randomUUID().slice(0, 8).toUpperCase()}`;
    const generated = stackSteward(
      '--json',
      'demo',
      'generate',
      '--out',
      out,
      '--study',
      study,
      '--rows',
      '40',
      '--subjects',
      '8',
    );
    expect(generated.code, generated.stderr).toBe(0);
    const { packageDir, source } = JSON.parse(generated.stdout) as {
      packageDir: string;
      source: { certificate: string; name: string };
    };
    const bag = await readLocalPackage(packageDir);
    expect(bag.files.map((f) => f.relative)).toEqual(
      expect.arrayContaining(['tagmanifest-sha256.txt', 'tagmanifest-sha256.txt.p7s']),
    );
    // The signature verifies with OpenSSL alone, against the demo source's certificate.
    execFileSync('openssl', [
      'cms',
      '-verify',
      '-binary',
      '-inform',
      'DER',
      '-in',
      path.join(packageDir, 'tagmanifest-sha256.txt.p7s'),
      '-content',
      path.join(packageDir, 'tagmanifest-sha256.txt'),
      '-CAfile',
      source.certificate,
      '-out',
      '/dev/null',
    ]);
    const denied = register(study, source.name, source.certificate, {
      before: ['--identity', path.join(stackState().dataDir, 'identities', 'dpo')],
    });
    expect(denied.code).toBe(6);
    expect(register(study, source.name, source.certificate, { require: true }).code).toBe(0);
    const metadataFile = path.join(packageDir, 'steward.json');
    const metadata = JSON.parse(await readFile(metadataFile, 'utf8')) as { purpose: string };
    await writeFile(metadataFile, `${JSON.stringify({ ...metadata, purpose: 'marketing' }, null, 2)}\n`);
    expect((await ingestRejected(clients(), packageDir)).problems).toEqual([
      { file: 'steward.json', rule: 'does not match its SHA-256 in the signed tag manifest' },
    ]);
    await rm(out, { recursive: true, force: true });
  });
});
