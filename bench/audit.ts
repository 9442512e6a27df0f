import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { auditTrailStatusQuery, auditTrailWorkflowId } from '../contracts';
import { jurisdictionMessageKey } from '../lib/auth/messages';
import { appendAudit, flushAudit } from '../lib/client/audit';
import { readLocalPackage, submitPackage } from '../lib/client/submit';
import { importConsent } from '../lib/client/consent-import';
import type { BenchStack } from './ingest';
import { line } from './report';

async function sealedPosition(bench: BenchStack): Promise<number> {
  await flushAudit(bench.client, 'eu');
  return (await bench.client.workflow.getHandle(auditTrailWorkflowId('eu')).query(auditTrailStatusQuery)).position;
}

/**
 * How fast the audit trail takes events, sealed into signed segments in the evidence bucket: from 20 workflows
 * ingesting small packages at once, and from 20 senders appending batches of 10 events at once.
 */
export async function auditBench(bench: BenchStack, work: string): Promise<void> {
  const subjects = Array.from({ length: 20 }, (_, i) => `AB-${i}`);
  const consent = path.join(work, 'audit-consent.csv');
  await writeFile(
    consent,
    `subject_id,scopes,status,icf_version,given_on\n${subjects.map((s) => `${s},primary-research,given,v1,2024-01-01`).join('\n')}\n`,
  );
  await importConsent({ client: bench.client, s3: bench.s3, identity: bench.identity }, consent, 'eu', 'BENCH-AUDIT');
  const packages = [];
  for (const [i, subject] of subjects.entries()) {
    const dir = path.join(work, `audit-pkg-${i}`);
    await mkdir(path.join(dir, 'data'), { recursive: true });
    const csv = `subject_id,visit_date,score\n${subject},2025-01-02,${i}\n`;
    await writeFile(path.join(dir, 'data', 'visits.csv'), csv);
    await writeFile(
      path.join(dir, 'manifest.json'),
      JSON.stringify({
        format: 'steward-package/1',
        studyId: 'BENCH-AUDIT',
        protocolId: 'P',
        jurisdiction: 'eu',
        dataClass: 'clinical-trial',
        purpose: 'primary-research',
        sourceSystem: 'bench',
        tables: [
          {
            path: 'data/visits.csv',
            name: 'visits',
            format: 'csv',
            columns: [
              { name: 'subject_id', type: 'string', role: 'subject-id', required: true },
              { name: 'visit_date', type: 'date', role: 'date' },
              { name: 'score', type: 'integer', role: 'value' },
            ],
          },
        ],
        files: [{ path: 'data/visits.csv', sha256: createHash('sha256').update(csv).digest('hex'), bytes: csv.length }],
      }),
    );
    packages.push(await readLocalPackage(dir));
  }
  let before = await sealedPosition(bench);
  let started = performance.now();
  const handles = await Promise.all(
    packages.map(
      async (pkg) =>
        (await submitPackage({ client: bench.client, s3: bench.s3, identity: bench.identity }, pkg)).handle,
    ),
  );
  await Promise.all(handles.map((h) => h.result()));
  let events = (await sealedPosition(bench)) - before;
  let seconds = (performance.now() - started) / 1000;
  line(
    '20 concurrent ingestions: audit events sealed/s',
    `${(events / seconds).toFixed(0)} (${events} events in ${seconds.toFixed(2)} s)`,
  );

  before = await sealedPosition(bench);
  const messageKey = await jurisdictionMessageKey(bench.keys, 'eu');
  started = performance.now();
  await Promise.all(
    Array.from({ length: 20 }, async (_, sender) => {
      for (let batch = 0; batch < 25; batch++) {
        await appendAudit(
          bench.client,
          messageKey,
          'eu',
          Array.from({ length: 10 }, (_, i) => ({
            principal: { id: `Bench sender ${sender}`, role: 'ops' as const },
            action: 'audit.queried' as const,
            outcome: 'success' as const,
            details: { batch, i },
          })),
        );
      }
    }),
  );
  events = (await sealedPosition(bench)) - before;
  seconds = (performance.now() - started) / 1000;
  line(
    '20 concurrent senders: audit events appended and sealed/s',
    `${(events / seconds).toFixed(0)} (${events} events in ${seconds.toFixed(2)} s)`,
  );
}
