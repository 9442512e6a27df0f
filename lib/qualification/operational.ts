import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { JURISDICTIONS } from '../../jurisdictions';
import type { Jurisdiction } from '../../schemas/jurisdiction';
import type { InventoryPart } from './inventory';
import { listStoredSegments, readSegment, storageProblems } from '../audit/store';
import { verifyTrail } from '../audit/segment';
import { FAILURE_CONVERTER_PATH } from '../client/temporal';
import { checkCertificate, parseCertificateBundle, readCertificateFiles } from '../evidence/certificate';
import { INSTALL_ROOT } from '../runtime/install';
import { recordedHistories, replayHistories } from '../stack/replay-gate';
import { CERTIFICATE_BUNDLES_PREFIX, CERTIFICATES_PREFIX } from '../storage/layout';
import { getObjectOrUndefined, listObjects, putBytes } from '../storage/objects';

type Rules = InventoryPart['rules'];

/** The key the residency probe tries to read in another jurisdiction's buckets (it need not exist there). */
const PROBE_KEY = 'qualification-probe';

/** The workflow histories recorded from the release (`<type>.json`, `<type>.failed.json`), each with its workflow id. */
export const RECORDED_HISTORIES = path.join(INSTALL_ROOT, 'test', 'fixtures', 'histories');

/**
 * Storage denies this worker every other jurisdiction's buckets: a listing and a read of each, with the worker's own
 * credentials, must come back refused (or find no such bucket), never with data.
 */
export async function residencyProbes(s3: S3Client, jurisdiction: Jurisdiction): Promise<Rules> {
  const rules: Rules = [];
  for (const other of Object.values(JURISDICTIONS)) {
    if (other.id === jurisdiction.id) continue;
    for (const bucket of [other.buckets.curated, other.buckets.landing]) {
      for (const [how, probe] of [
        ['list', () => s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }))],
        ['read', () => s3.send(new GetObjectCommand({ Bucket: bucket, Key: PROBE_KEY }))],
      ] as const) {
        const outcome = await probe().then(
          () => 'allowed',
          (error: Error & { $metadata?: { httpStatusCode?: number } }) =>
            error.$metadata?.httpStatusCode === 403
              ? 'denied'
              : error.name === 'NoSuchBucket'
                ? 'no such bucket'
                : `${error.name}`,
        );
        rules.push({
          check: 'oq.residency',
          rule: `storage refuses the ${jurisdiction.id} worker a ${how} of ${other.id}'s ${bucket}`,
          ok: outcome === 'denied' || outcome === 'no such bucket',
          detail: `storage answered: ${outcome}`,
        });
      }
    }
  }
  return rules;
}

/** The jurisdiction's audit trail recomputed from storage: chain, Merkle roots, links, signatures, no gaps. */
export async function auditTrailRules(s3: S3Client, jurisdiction: Jurisdiction, caPem: string): Promise<Rules> {
  const bucket = jurisdiction.buckets.evidence;
  const stored = await listStoredSegments(s3, bucket);
  const segments = new Map<number, unknown>();
  for (const { seq, versionId } of stored) segments.set(seq, await readSegment(s3, bucket, seq, versionId));
  const verified = verifyTrail(segments, caPem);
  const problems = [...storageProblems(stored), ...verified.problems];
  return [
    {
      check: 'oq.audit',
      rule: `the ${jurisdiction.id} audit trail verifies: chain, Merkle roots, links and signatures`,
      ok: problems.length === 0 && verified.segments > 0,
      detail:
        problems.length > 0
          ? problems
              .slice(0, 5)
              .map((p) => `segment ${p.segment}: ${p.problem}`)
              .join('; ')
          : `${verified.segments} segments, ${verified.events} events`,
    },
  ];
}

/** Where an operational qualification writes its scratch data in the landing bucket, one prefix per report. */
export const scratchPrefix = (reportId: string) => `qualification/oq/${reportId}/`;

/**
 * Scratch data of an operational qualification: synthetic rows with no personal data, written where packages land,
 * so the run can delete them through the erasure path and verify the certificate it issues.
 */
export async function writeScratchData(s3: S3Client, jurisdiction: Jurisdiction, reportId: string): Promise<string[]> {
  const keys: string[] = [];
  for (const name of ['visits.csv', 'labs.csv']) {
    const key = `${scratchPrefix(reportId)}${name}`;
    const rows = Array.from({ length: 50 }, (_, i) => `OQ-${String(i).padStart(3, '0')},${(i * 37) % 61}`);
    await putBytes(s3, jurisdiction.buckets.landing, key, Buffer.from(`subject_id,value\n${rows.join('\n')}\n`), {
      contentType: 'text/csv',
    });
    keys.push(key);
  }
  return keys;
}

/** How many deletion certificates the check verifies at most. */
const CERTIFICATES_CHECKED = 5;

/**
 * Deletion certificates from the evidence bucket, each checked by Steward (schema, signer, chain) and by OpenSSL alone
 * (`openssl cms -verify` against the Steward CA): there must be one, and every one checked must hold.
 */
export async function certificateRules(
  s3: S3Client,
  jurisdiction: Jurisdiction,
  caPem: string,
  issued: readonly string[] = [],
): Promise<Rules> {
  const bucket = jurisdiction.buckets.evidence;
  const found: { id: string; json: Buffer; p7s: Buffer }[] = [];
  // The certificates the run's own deletion issued first, then others the bucket holds.
  for (const id of issued) {
    const files = await readCertificateFiles(s3, bucket, id);
    if (files) found.push({ id, json: files.json, p7s: files.p7s });
    else {
      found.push({ id, json: Buffer.from('missing'), p7s: Buffer.alloc(0) });
    }
  }
  for (const o of await listObjects(s3, bucket, CERTIFICATES_PREFIX)) {
    if (found.length >= CERTIFICATES_CHECKED + issued.length) break;
    if (o.key.startsWith(CERTIFICATE_BUNDLES_PREFIX)) {
      const raw = await getObjectOrUndefined(s3, bucket, o.key);
      const entry = raw ? parseCertificateBundle(raw, o.key).certificates[0] : undefined;
      if (entry) {
        found.push({
          id: entry.certificateId,
          json: Buffer.from(entry.json, 'base64'),
          p7s: Buffer.from(entry.p7s, 'base64'),
        });
      }
    } else if (o.key.endsWith('.json') && !issued.includes(path.basename(o.key, '.json'))) {
      const json = await getObjectOrUndefined(s3, bucket, o.key);
      const p7s = await getObjectOrUndefined(s3, bucket, o.key.replace(/\.json$/, '.p7s'));
      if (json && p7s) found.push({ id: path.basename(o.key, '.json'), json, p7s });
    }
  }
  if (found.length === 0) {
    return [
      {
        check: 'oq.certificate',
        rule: `a deletion certificate of ${jurisdiction.id} verifies`,
        ok: false,
        detail: `no deletion certificate in ${bucket} to verify (a sweep or an erasure issues one)`,
      },
    ];
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'steward-oq-cert-'));
  try {
    await writeFile(path.join(dir, 'ca.pem'), caPem);
    const rules: Rules = [];
    for (const c of found) {
      const own = checkCertificate(c.json, c.p7s, caPem);
      await writeFile(path.join(dir, 'c.json'), c.json);
      await writeFile(path.join(dir, 'c.p7s'), c.p7s);
      const openssl = spawnSync(
        'openssl',
        [
          ...['cms', '-verify', '-binary', '-inform', 'DER', '-in', path.join(dir, 'c.p7s')],
          ...['-content', path.join(dir, 'c.json'), '-CAfile', path.join(dir, 'ca.pem'), '-purpose', 'any'],
          ...['-out', os.devNull],
        ],
        { encoding: 'utf8', timeout: 30_000 },
      );
      const opensslOk = openssl.status === 0;
      rules.push({
        check: 'oq.certificate',
        rule: `deletion certificate ${c.id} verifies (Steward's check and openssl cms -verify)`,
        ok: own.problems.length === 0 && opensslOk,
        detail: [
          own.problems.length === 0 ? 'Steward: valid' : `Steward: ${own.problems.join('; ')}`,
          opensslOk
            ? 'OpenSSL: verification successful'
            : `OpenSSL: ${(openssl.stderr || openssl.error?.message || 'failed').trim().split('\n')[0]}`,
        ].join('; '),
      });
    }
    return rules;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The release's recorded workflow histories replayed against the workflow code this worker runs: each must replay
 * without a non-determinism error, so workflows started before an upgrade finish after it.
 */
export async function replayRules(bundlePath: string | undefined, dir = RECORDED_HISTORIES): Promise<Rules> {
  const histories = recordedHistories(dir);
  if (histories.length === 0) {
    return [{ check: 'oq.replay', rule: 'recorded workflow histories replay', ok: false, detail: `none in ${dir}` }];
  }
  const { failures: failed } = await replayHistories(
    bundlePath && existsSync(bundlePath)
      ? { workflowBundle: { codePath: bundlePath } }
      : { workflowsPath: path.join(INSTALL_ROOT, 'workflows', 'index.ts') },
    histories,
    { failureConverterPath: FAILURE_CONVERTER_PATH },
    'qualification',
  );
  return [
    {
      check: 'oq.replay',
      rule: 'every recorded workflow history replays against the workflow code the worker runs',
      ok: failed.length === 0,
      detail:
        failed.length === 0 ? `${histories.length} histories replayed` : failed.slice(0, 5).join('; ').slice(0, 1500),
    },
  ];
}
