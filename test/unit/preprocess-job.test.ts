import { readFileSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { compareRuns, reproduced } from '../../lib/preprocess/compare';
import { ExecutorError, externalExecutor, type ExecutorJob } from '../../lib/preprocess/executor';
import { parseNvidiaSmiXml } from '../../lib/preprocess/gpu';
import { bundledPipelines, loadParameters, loadPipeline } from '../../lib/preprocess/load-pipeline';
import { PipelineError, resolvePipeline } from '../../lib/preprocess/pipeline';
import { REFERENCE_PIPELINE } from '../../lib/preprocess/reference';
import { InfrastructureSchema, PipelineSpecSchema, type RunDocument } from '../../schemas/preprocess';
import { tempDir } from '../helpers';

const DOCUMENT = {
  name: 'p',
  version: '1.0.0',
  executor: 'builtin',
  purpose: 'research',
  steps: [
    { op: 'impute', columns: ['x'], method: 'constant', value: '${fill}' },
    { op: 'one-hot', column: 'arm', categories: ['${first}', 'B'] },
  ],
};

describe('pipeline parameters', () => {
  it('puts each parameter where a step names it as "${name}"', () => {
    const spec = resolvePipeline('p.json', DOCUMENT, { fill: 2.5, first: 'A' });
    expect(spec).toMatchObject({
      steps: [
        { op: 'impute', value: 2.5 },
        { op: 'one-hot', categories: ['A', 'B'] },
      ],
    });
  });

  it('names the field of a missing parameter, and of a value that breaks a step', () => {
    expect(() => resolvePipeline('p.json', DOCUMENT, { first: 'A' })).toThrow(
      new PipelineError('p.json', 'steps[0].value', 'names parameter "fill", which the parameters do not give'),
    );
    const error = (() => {
      try {
        resolvePipeline('p.json', DOCUMENT, { fill: 'zero', first: 'A' });
        return undefined;
      } catch (e) {
        return e as PipelineError;
      }
    })();
    expect(error).toBeInstanceOf(PipelineError);
    expect(error!.field).toBe('steps.0.value');
    expect(error!.message).toMatch(/^pipeline p\.json, field steps\.0\.value: /);
  });

  it('leaves an external command as written (it reads the parameters file)', () => {
    const spec = resolvePipeline(
      'x.json',
      { name: 'x', version: '1.0.0', executor: 'external', purpose: 'r', command: ['run', '${not_a_parameter}'] },
      {},
    );
    expect(spec).toMatchObject({ command: ['run', '${not_a_parameter}'] });
  });

  it('refuses a parameters file that is not an object of names to values, naming the field', async () => {
    const file = path.join(await tempDir('steward-params-'), 'params.json');
    await writeFile(file, JSON.stringify({ fill: { nested: true } }));
    await expect(loadParameters(file)).rejects.toThrow(`${file}: field fill: `);
  });
});

describe('bundled pipelines', () => {
  it('each one parses, and its code hash covers the files its command runs', async () => {
    const found = await bundledPipelines();
    expect(found).toEqual(['gpu-reference@1.0.0', 'labs-encode@1.0.0', 'vitals-standardize@1.0.0']);
    const gpu = await loadPipeline('gpu-reference@1.0.0', {});
    expect(gpu.bundled).toBe(true);
    expect(gpu.files.map((f) => f.path)).toEqual(['run.py', 'steps.json', '../../device/gpu_pipeline.py']);
    // The GPU pipeline runs the steps the device check qualifies against the built-in executor.
    const steps: unknown = JSON.parse(
      readFileSync(path.join(__dirname, '..', '..', 'pipelines', 'gpu-reference', 'steps.json'), 'utf8'),
    );
    expect(steps).toEqual(REFERENCE_PIPELINE.steps);
    const labs = await loadPipeline('labs-encode@1.0.0', { missing_value: 0 });
    expect(labs.codeSha256).not.toBe((await loadPipeline('vitals-standardize@1.0.0', {})).codeSha256);
    await expect(loadPipeline('labs-encode@1.0.0', {})).rejects.toThrow(
      'field steps[0].value: names parameter "missing_value", which the parameters do not give',
    );
    await expect(loadPipeline('nothing@1.0.0', {})).rejects.toThrow(
      'no bundled pipeline nothing@1.0.0; bundled ones: ',
    );
  });
});

function run(overrides: Partial<RunDocument> = {}): RunDocument {
  const base: RunDocument = {
    format: 'steward-run/1',
    jobId: 'preprocess-eu-a',
    jurisdiction: 'eu',
    workflowId: 'preprocess-eu-a',
    runId: 'r',
    requestId: 'a',
    requestedBy: { id: 'Demo Steward', role: 'steward' },
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:01.000Z',
    pipeline: {
      ref: 'p.json',
      name: 'p',
      version: '1.0.0',
      executor: 'builtin',
      gpu: false,
      purpose: 'research',
      codeSha256: 'a'.repeat(64),
      files: [],
      document: {},
      dir: '/p',
      bundled: false,
    },
    parameters: { fill: 0 },
    seed: 1,
    inputs: [
      {
        datasetId: 'ds-eu-000000000000000000000001',
        studyId: 'S',
        table: 't',
        bucket: 'b',
        key: 'k',
        versionId: 'v1',
        sha256: 'b'.repeat(64),
        bytes: 10,
        subjectColumn: 'subject_id',
        rowsIn: 5,
        rowsExcluded: 1,
      },
    ],
    consent: { purpose: 'research', asOf: '2026-01-01', subjects: 1, rows: 1, byReason: { scope: 1 } },
    outputs: [
      {
        datasetId: 'ds-eu-000000000000000000000002',
        fromDatasetId: 'ds-eu-000000000000000000000001',
        table: 't',
        bucket: 'b',
        key: 'o',
        versionId: 'v',
        sha256: 'c'.repeat(64),
        bytes: 20,
        rows: 4,
        columns: [{ name: 'x', type: 'DOUBLE' }],
      },
    ],
    scratch: { wiped: true, verifiedAt: '2026-01-01T00:00:01.000Z', files: 3 },
    infrastructure: {
      worker: { identity: 'w', hostname: 'h', pid: 1, taskQueue: 'preprocess.eu' },
      node: 'v20',
      temporalSdk: '1.24.0',
      temporalServer: '1.29',
      versitygw: 'v1.7.0',
      duckdb: '1.5',
      gpu: null,
      cudaVisibleDevices: null,
      containerImage: null,
    },
  };
  return { ...base, ...overrides };
}

describe('comparing a run with its re-run', () => {
  it('finds nothing when the outputs and everything that made them are the same (times and worker may differ)', () => {
    const again = run({ runId: 'other', finishedAt: '2026-02-01T00:00:00.000Z' });
    expect(compareRuns(run(), again)).toEqual([]);
    expect(reproduced([])).toBe(true);
  });

  it('reports every field that differs, and a different output checksum as not reproduced', () => {
    const base = run();
    const again = run({
      parameters: { fill: 5 },
      consent: { ...base.consent, subjects: 2, rows: 2, byReason: { scope: 1, withdrawn: 1 } },
      outputs: [{ ...base.outputs[0]!, sha256: 'd'.repeat(64), rows: 3 }],
    });
    const differences = compareRuns(base, again);
    expect(differences).toEqual([
      { field: 'parameters.fill', recorded: 0, rerun: 5 },
      { field: 'consent.subjects', recorded: 1, rerun: 2 },
      { field: 'consent.rows', recorded: 1, rerun: 2 },
      { field: 'outputs[ds-eu-000000000000000000000001/t].sha256', recorded: 'c'.repeat(64), rerun: 'd'.repeat(64) },
      { field: 'outputs[ds-eu-000000000000000000000001/t].rows', recorded: 4, rerun: 3 },
    ]);
    expect(reproduced(differences)).toBe(false);
    // A changed pipeline code with the same outputs is reported, yet the outputs are reproduced.
    const code = compareRuns(base, run({ pipeline: { ...base.pipeline, codeSha256: 'e'.repeat(64) } }));
    expect(code.map((d) => d.field)).toEqual(['pipeline.codeSha256']);
    expect(reproduced(code)).toBe(true);
  });
});

describe('run documentation of a GPU run', () => {
  it('carries the inventory parsed from a recorded nvidia-smi -q -x sample', () => {
    const xml = readFileSync(path.join(__dirname, '..', 'fixtures', 'nvidia-smi-h100.xml'), 'utf8');
    const infrastructure = InfrastructureSchema.parse({
      ...run().infrastructure,
      gpu: parseNvidiaSmiXml(xml),
      cudaVisibleDevices: 'GPU-00000000-1111-2222-3333-444444444444',
    });
    expect(infrastructure.gpu).toMatchObject({
      driverVersion: '550.127.05',
      cudaVersion: '12.4',
      gpus: [{ model: 'NVIDIA H100 80GB HBM3', memoryTotal: '81559 MiB', confidentialCompute: 'OFF' }],
    });
  });
});

describe('the external executor', () => {
  async function job(command: string[], files: string[] = ['ds-eu-000000000000000000000001.parquet']) {
    const workDir = await tempDir('steward-ext-');
    const inputDir = path.join(workDir, 'input');
    const outputDir = path.join(workDir, 'output');
    await mkdir(inputDir);
    await mkdir(outputDir);
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    for (const f of files) await conn.run(`COPY (SELECT 1 AS x) TO '${path.join(inputDir, f)}' (FORMAT parquet)`);
    conn.closeSync();
    db.closeSync();
    const spec = PipelineSpecSchema.parse({ name: 'e', version: '1.0.0', executor: 'external', purpose: 'r', command });
    const progress: string[] = [];
    const value: ExecutorJob = {
      spec,
      pipelineDir: workDir,
      workDir,
      inputDir,
      outputDir,
      parameters: { a: 1 },
      seed: 9,
      gpu: parseNvidiaSmiXml(readFileSync(path.join(__dirname, '..', 'fixtures', 'nvidia-smi-h100.xml'), 'utf8')),
      cudaVisibleDevices: null,
      signal: new AbortController().signal,
      onProgress: ({ file }) => progress.push(file),
    };
    return { value, progress, outputDir };
  }

  it('hands the command its paths, seed, parameters, GPU inventory and CUDA_VISIBLE_DEVICES, and collects one output per input', async () => {
    const script = `
      const fs = require('fs'), path = require('path');
      const [input, output, params, seed] = process.argv.slice(1);
      const env = { seed, params: JSON.parse(fs.readFileSync(params, 'utf8')), cuda: process.env.CUDA_VISIBLE_DEVICES,
        gpu: JSON.parse(fs.readFileSync(process.env.STEWARD_GPU_INVENTORY, 'utf8')).gpus[0].model };
      for (const f of fs.readdirSync(input)) fs.copyFileSync(path.join(input, f), path.join(output, f));
      fs.writeFileSync(path.join(process.env.HOME, 'seen.json'), JSON.stringify(env));`;
    const { value, progress, outputDir } = await job([
      process.execPath,
      '-e',
      script,
      '{input}',
      '{output}',
      '{params}',
      '{seed}',
    ]);
    await externalExecutor.run(value);
    expect(progress).toEqual(['ds-eu-000000000000000000000001.parquet']);
    expect(await readdir(outputDir)).toEqual(['ds-eu-000000000000000000000001.parquet']);
    expect(JSON.parse(readFileSync(path.join(value.workDir, 'seen.json'), 'utf8'))).toEqual({
      seed: '9',
      params: { a: 1 },
      cuda: 'GPU-00000000-1111-2222-3333-444444444444',
      gpu: 'NVIDIA H100 80GB HBM3',
    });
  });

  it('refuses outputs that do not match the inputs, by name', async () => {
    const { value } = await job([
      process.execPath,
      '-e',
      "require('fs').writeFileSync(process.argv[1] + '/other.parquet', '')",
      '{output}',
    ]);
    await expect(externalExecutor.run(value)).rejects.toThrow(
      new ExecutorError(
        "the pipeline's command must write one Parquet file per input, named as the input (ds-eu-000000000000000000000001.parquet); missing: ds-eu-000000000000000000000001.parquet; not an input: other.parquet",
      ),
    );
  });
});
