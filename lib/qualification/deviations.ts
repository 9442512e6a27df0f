import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  DeviationRecordSchema,
  type Baseline,
  type DeviationRecord,
  type DriftFinding,
  type Inventory,
  type RequirementsFile,
} from '../../schemas/qualification';
import { getJson, putJson } from '../storage/json';
import { listObjects } from '../storage/objects';
import { CHECKS, findingsOf } from './checks';

/** Where the catalog bucket keeps each deviation's record while it is handled, and after. */
export const DEVIATIONS_PREFIX = 'qualification/deviations/';

export function deviationRecordKey(deviationId: string): string {
  return `${DEVIATIONS_PREFIX}${deviationId}.json`;
}

const RANK = { low: 0, medium: 1, high: 2 } as const;

/**
 * Every difference between the live installation and the baseline, and every broken rule, per IQ check: each with the
 * requirements its check proves and the highest risk among them. None without a baseline (nothing to drift from).
 */
export function driftFindings(
  requirements: RequirementsFile,
  inventory: Inventory,
  baseline: Baseline | null,
): DriftFinding[] {
  if (!baseline) return [];
  const findings: DriftFinding[] = [];
  for (const [check, { phase }] of Object.entries(CHECKS)) {
    if (phase !== 'IQ') continue;
    const covering = requirements.requirements.filter((r) => r.check === check);
    const risk = covering.reduce<DriftFinding['risk']>((top, r) => (RANK[r.risk] > RANK[top] ? r.risk : top), 'low');
    for (const text of findingsOf(check, inventory, baseline)) {
      findings.push({ check, requirements: covering.map((r) => r.id), risk, text });
    }
  }
  return findings;
}

/** A finding's key: the same difference found again maps to the same deviation while that one is open. */
export function findingKey(jurisdiction: string, finding: DriftFinding): string {
  return createHash('sha256').update(`${jurisdiction}\n${finding.check}\n${finding.text}`).digest('hex').slice(0, 16);
}

export async function writeDeviationRecord(s3: S3Client, bucket: string, record: DeviationRecord): Promise<void> {
  await putJson(s3, bucket, deviationRecordKey(record.deviationId), DeviationRecordSchema, record, { pretty: true });
}

/** Every deviation record of the jurisdiction, oldest first. */
export async function readDeviationRecords(s3: S3Client, bucket: string): Promise<DeviationRecord[]> {
  const records: DeviationRecord[] = [];
  for (const o of await listObjects(s3, bucket, DEVIATIONS_PREFIX)) {
    const record = await getJson(s3, bucket, o.key, DeviationRecordSchema);
    if (record) records.push(record);
  }
  return records.sort((a, b) => a.detectedAt.localeCompare(b.detectedAt));
}

/** The high-risk deviations not yet closed: while one is, the jurisdiction's preprocessing jobs are refused. */
export async function openHighRiskDeviations(s3: S3Client, bucket: string): Promise<DeviationRecord[]> {
  return (await readDeviationRecords(s3, bucket)).filter((r) => r.state !== 'closed' && r.finding.risk === 'high');
}
