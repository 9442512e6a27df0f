import type { RunDifference, RunDocument } from '../../schemas/preprocess';

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Every field in which a re-run differs from a run's documentation: parameters, seed, pipeline code, inputs, consent
 * exclusions and, per output, checksum, rows, bytes and columns. Pure, safe inside workflows.
 */
export function compareRuns(recorded: RunDocument, rerun: RunDocument): RunDifference[] {
  const differences: RunDifference[] = [];
  const check = (field: string, a: unknown, b: unknown) => {
    if (!same(a, b)) differences.push({ field, recorded: a ?? null, rerun: b ?? null });
  };
  for (const name of [...new Set([...Object.keys(recorded.parameters), ...Object.keys(rerun.parameters)])].sort()) {
    check(`parameters.${name}`, recorded.parameters[name], rerun.parameters[name]);
  }
  check('seed', recorded.seed, rerun.seed);
  check('pipeline.version', recorded.pipeline.version, rerun.pipeline.version);
  check('pipeline.codeSha256', recorded.pipeline.codeSha256, rerun.pipeline.codeSha256);
  for (const input of recorded.inputs) {
    const again = rerun.inputs.find((i) => i.datasetId === input.datasetId);
    for (const field of ['versionId', 'sha256', 'rowsIn', 'rowsExcluded'] as const) {
      check(`inputs[${input.datasetId}].${field}`, input[field], again?.[field]);
    }
  }
  check('consent.subjects', recorded.consent.subjects, rerun.consent.subjects);
  check('consent.rows', recorded.consent.rows, rerun.consent.rows);
  for (const output of recorded.outputs) {
    const again = rerun.outputs.find((o) => o.fromDatasetId === output.fromDatasetId);
    const label = `outputs[${output.fromDatasetId}/${output.table}]`;
    check(`${label}.sha256`, output.sha256, again?.sha256);
    check(`${label}.rows`, output.rows, again?.rows);
    check(`${label}.bytes`, output.bytes, again?.bytes);
    check(`${label}.columns`, output.columns, again?.columns);
  }
  return differences;
}

/** A re-run reproduces a run when every output has the recorded checksum. */
export function reproduced(differences: RunDifference[]): boolean {
  return !differences.some((d) => d.field.startsWith('outputs['));
}
