import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { writeExpiredDemoDatasets } from '../cli/demo/expired';
import { datasetObjectPrefix } from '../lib/storage/layout';
import { signDetached } from '../lib/pki/cms';
import { generateKeyPair, issueCertificate } from '../lib/pki/x509';
import { inLanes } from '../lib/runtime/lanes';
import { datasetRecordKey } from '../lib/storage/catalog';
import { isNotFound } from '../lib/storage/s3';
import { deleteVersions, listVersionsOf } from '../lib/storage/versions';
import type { Jurisdiction } from '../schemas/jurisdiction';

/** Datasets per batch and batches at once: the sweep's own figures. */
const BATCH = 200;
const LANES = 4;

/**
 * The least work any sweep of these datasets must do, done bare from this process: per batch of datasets one ranged
 * ListObjectVersions of their objects and records, batched DeleteObjects, a verifying listing, a HEAD of each record,
 * and one detached CMS signature per dataset over a certificate-sized document. No records are read, no catalog,
 * journal, claims, audit trail or Temporal: what it takes is the floor under any sweep's time on this machine.
 * Writes the datasets first, and returns the run to time.
 */
export async function prepareSweepFloor(
  seeder: S3Client,
  s3: S3Client,
  jurisdiction: Jurisdiction,
  datasets: number,
  objects: number,
): Promise<() => Promise<{ seconds: number; versions: number; signatures: number }>> {
  const ids = await writeExpiredDemoDatasets(seeder, jurisdiction, {
    studyId: 'BENCH-SWEEP-FLOOR',
    datasets,
    objectsPerDataset: objects,
  });
  const pair = generateKeyPair(2048);
  const signer = {
    certificatePem: issueCertificate({
      commonName: 'Steward bench floor signer',
      unit: 'signer',
      publicKeyPem: pair.publicKeyPem,
      validDays: 1,
      selfPrivateKeyPem: pair.privateKeyPem,
    }),
    privateKeyPem: pair.privateKeyPem,
  };
  const { curated, catalog } = jurisdiction.buckets;
  const batches: string[][] = [];
  for (let i = 0; i < ids.length; i += BATCH) batches.push(ids.slice(i, i + BATCH));
  return async () => {
    let versions = 0;
    let signatures = 0;
    const started = performance.now();
    await inLanes(batches, LANES, async (batch) => {
      const prefixes = batch.map((id) => datasetObjectPrefix(id));
      const records = batch.map((id) => datasetRecordKey(id));
      const byPrefix = await listVersionsOf(s3, curated, prefixes);
      const byRecord = await listVersionsOf(s3, catalog, records);
      const objects = [...byPrefix.values()].flat();
      const recordVersions = [...byRecord.values()].flat();
      versions += objects.length + recordVersions.length;
      const refused = [
        ...(await deleteVersions(s3, curated, objects, { bypassGovernance: true })),
        ...(await deleteVersions(s3, catalog, recordVersions)),
      ];
      if (refused.length > 0) throw new Error(`storage refused ${refused.length} deletions`);
      const left = [...(await listVersionsOf(s3, curated, prefixes)).values()].flat().length;
      if (left > 0) throw new Error(`${left} versions were left`);
      await inLanes(records, 8, async (key) => {
        try {
          await s3.send(new HeadObjectCommand({ Bucket: catalog, Key: key }));
          throw new Error(`${key} is still there`);
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
      });
      for (const [i, id] of batch.entries()) {
        const listed = [...byPrefix.get(prefixes[i]!)!, ...byRecord.get(records[i]!)!];
        const document = Buffer.from(
          JSON.stringify({ datasetId: id, versions: listed, padding: 'x'.repeat(2000) }, null, 2),
        );
        signDetached(document, signer, [signer.certificatePem]);
        signatures += 1;
      }
    });
    return { seconds: (performance.now() - started) / 1000, versions, signatures };
  };
}
