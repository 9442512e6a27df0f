import { SingleBar, Presets } from 'cli-progress';
import type { DatasetRecord } from '../schemas/dataset';

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

export function formatDataset(record: DatasetRecord, outcome?: string): string {
  const excluded = Object.entries(record.rows.excludedByReason)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(', ');
  const lines = [
    `Dataset ${record.datasetId}${outcome ? ` (${outcome})` : ''}`,
    `  study ${record.studyId}, protocol ${record.protocolId}, jurisdiction ${record.jurisdiction}, data class ${record.dataClass}`,
    `  rows: ${record.rows.in} in, ${record.rows.curated} curated, ${record.rows.excluded} excluded${excluded ? ` (${excluded})` : ''}`,
    `  pseudonymization key version: ${record.keyVersions.map((v) => `v${v}`).join(', ')}; consent scope: ${record.consentScopes.join(', ')}`,
    `  retention until ${record.retention.until.slice(0, 10)} (${record.retention.duration}, ${record.retention.legalBasis})`,
    '  inputs:',
    ...record.inputs.map((i) => `    ${i.path}  sha256 ${i.sha256}  ${i.bytes} bytes`),
    '  curated objects:',
    ...record.outputs.map(
      (o) =>
        `    s3://${o.bucket}/${o.key}  sha256 ${o.sha256}  ${o.rows.curated}/${o.rows.in} rows  version ${o.versionId ?? '-'}`,
    ),
    `  workflow ${record.lineage.workflowId} (run ${record.lineage.runId})`,
  ];
  return lines.join('\n');
}
