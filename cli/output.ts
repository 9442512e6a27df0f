import { SingleBar, Presets } from 'cli-progress';
import { activeHolds, type DatasetRecord, type LegalHold, type StudyRecord } from '../schemas/dataset';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** One line per step to stderr, terminal or not (machine output on stdout stays clean); bars only on a terminal. */
export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * Awaits a workflow's outcome, printing to stderr each new line `progress` gives (asked every 2 s; a query that fails,
 * e.g. before the workflow's first task, prints nothing).
 */
export async function awaitWithProgress<T>(
  handle: { result(): Promise<T> },
  progress: () => Promise<string>,
): Promise<T> {
  let last = '';
  const timer = setInterval(() => {
    progress()
      .then((line) => {
        if (line !== last) note(line);
        last = line;
      })
      .catch(() => {});
  }, 2000);
  try {
    return await handle.result();
  } finally {
    clearInterval(timer);
  }
}

export function byteBar(label: string): { update(done: number, total: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total} bytes`, stream: process.stderr, hideCursor: true },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.update(done);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

function holdLine(hold: LegalHold, on: string): string {
  return `  LEGAL HOLD ${hold.holdId} on ${on} since ${hold.setAt}: ${hold.reason} — set by ${hold.setBy.printedName} (${hold.setBy.role})`;
}

function retentionLines(record: DatasetRecord, study?: StudyRecord): string[] {
  const r = record.retention;
  const from = r.basisDate ? `${r.countsFrom} ${r.basisDate.slice(0, 10)}` : `${r.countsFrom}, not recorded yet`;
  const lines = [
    `  retention until ${r.until ? r.until.slice(0, 10) : 'open'} (rule ${r.rule ?? record.dataClass}: ${r.duration} from ${from})`,
    `    legal basis: ${r.legalBasis}`,
    `    storage: S3 Object Lock ${r.objectLock}${r.lockedUntil ? ` until ${r.lockedUntil.slice(0, 10)}` : ' (no date set: retention already ended)'}`,
    `    ${r.minimum ? 'a legal minimum: kept until then even against an erasure request' : 'an upper limit: no law requires keeping it that long'}`,
  ];
  if (study?.trialEnd) {
    lines.push(
      `    end of trial ${study.trialEnd.date}, recorded by ${study.trialEnd.recordedBy.printedName} (${study.trialEnd.recordedBy.role}) at ${study.trialEnd.recordedAt}`,
    );
  }
  for (const hold of activeHolds(record)) lines.push(holdLine(hold, 'the dataset'));
  for (const hold of study ? activeHolds(study) : []) lines.push(holdLine(hold, `study ${study!.studyId}`));
  return lines;
}

export function formatDataset(record: DatasetRecord, outcome?: string, study?: StudyRecord): string {
  const excluded = Object.entries(record.rows.excludedByReason)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  const lines = [
    `Dataset ${record.datasetId}${outcome ? ` (${outcome})` : ''}`,
    `  study ${record.studyId}, protocol ${record.protocolId}, jurisdiction ${record.jurisdiction}, data class ${record.dataClass}`,
    `  rows: ${record.rows.in} in, ${record.rows.curated} curated, ${record.rows.excluded} excluded${excluded ? ` (${excluded})` : ''}`,
    `  pseudonymization key version: ${record.keyVersions.map((v) => `v${v}`).join(', ')}; consent scope: ${record.consentScopes.join(', ')}`,
    ...retentionLines(record, study),
    '  inputs:',
    ...record.inputs.map((i) => `    ${i.path}  sha256 ${i.sha256}  ${i.bytes} bytes`),
    '  curated objects:',
    ...record.outputs.map(
      (o) =>
        `    s3://${o.bucket}/${o.key}  sha256 ${o.sha256}  ${o.rows.curated}/${o.rows.in} rows  version ${o.versionId ?? '-'}`,
    ),
    `  workflow ${record.lineage.workflowId} (run ${record.lineage.runId})`,
    ...(record.run
      ? [
          `  made by preprocessing job ${record.run.jobId} from ${record.derivedFrom.map((d) => `${d.datasetId}/${d.table}`).join(', ')}`,
          `    run documentation s3://${record.run.bucket}/${record.run.key}  sha256 ${record.run.sha256} (\`steward preprocess show ${record.run.jobId}\`)`,
        ]
      : []),
  ];
  return lines.join('\n');
}
