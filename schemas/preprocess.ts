import { z } from 'zod';
import { BaselineRefSchema, NameSchema, PrincipalSchema, Sha256HexSchema } from './common';
import { DatasetIdSchema } from './ingest';

/** One GPU as run documentation records it. */
export const GpuInfoSchema = z.object({
  index: z.number().int().nonnegative(),
  model: z.string(),
  uuid: z.string().nullable(),
  busId: z.string().nullable(),
  memoryTotal: z.string().nullable(),
  computeCapability: z.string().nullable(),
  /** Confidential-computing mode as the driver reports it, or null when this driver reports none. */
  confidentialCompute: z.string().nullable(),
});
export type GpuInfo = z.infer<typeof GpuInfoSchema>;

export const GpuInventorySchema = z.object({
  driverVersion: z.string(),
  cudaVersion: z.string().nullable(),
  confidentialCompute: z.string().nullable(),
  gpus: z.array(GpuInfoSchema),
});
export type GpuInventory = z.infer<typeof GpuInventorySchema>;

const Column = z.string().min(1).max(128);

/** One built-in transform; each runs as SQL in DuckDB over the previous step's relation. */
export const TransformStepSchema = z.discriminatedUnion('op', [
  /** (x − mean) / population standard deviation; a constant column becomes 0. */
  z.object({ op: z.literal('standardize'), columns: z.array(Column).min(1) }).strict(),
  /** (x − min) / (max − min); a constant column becomes 0. */
  z.object({ op: z.literal('min-max'), columns: z.array(Column).min(1) }).strict(),
  /** Missing values replaced by the column's mean or median (of the present values), or by a constant. */
  z
    .object({
      op: z.literal('impute'),
      columns: z.array(Column).min(1),
      method: z.enum(['mean', 'median', 'constant']),
      value: z.number().optional(),
    })
    .strict()
    .refine((s) => (s.method === 'constant') === (s.value !== undefined), {
      message: 'a constant imputation needs value, and only it',
      path: ['value'],
    }),
  /** One 0/1 column per category (`<column>=<category>`, categories sorted unless given), the column dropped. */
  z.object({ op: z.literal('one-hot'), column: Column, categories: z.array(z.string()).min(1).optional() }).strict(),
  /** Categories replaced by their position (0, 1, …) in `order` (sorted distinct values unless given). */
  z.object({ op: z.literal('ordinal'), column: Column, order: z.array(z.string()).min(1).optional() }).strict(),
  /**
   * A seeded Bernoulli sample: each row kept with probability `fraction`, decided by a hash of its position and the
   * job's seed, so the same seed and input keep the same rows and another seed another sample.
   */
  z.object({ op: z.literal('sample'), fraction: z.number().gt(0).lt(1) }).strict(),
  /**
   * Per-subject time series aggregated over fixed windows of `days`, counted from each subject's first observation:
   * one row per subject and window with the window's start, the row count and the aggregate of each value column.
   */
  z
    .object({
      op: z.literal('window'),
      subject: Column,
      time: Column,
      days: z.number().int().positive(),
      values: z.array(Column).min(1),
      aggregate: z.enum(['mean', 'sum', 'min', 'max']),
    })
    .strict(),
]);
export type TransformStep = z.infer<typeof TransformStepSchema>;

/** A pipeline: name and version (what run documentation cites), the executor, and its steps or command. */
export const PipelineSpecSchema = z.discriminatedUnion('executor', [
  z
    .object({
      name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
      version: z.string().regex(/^\d+\.\d+\.\d+$/),
      executor: z.literal('builtin'),
      gpu: z.literal(false).default(false),
      /** The consent scope it serves: subjects without consent to it are left out of its runs. */
      purpose: NameSchema,
      /** The table of each input dataset it transforms; needed when a dataset has more than one. */
      table: Column.optional(),
      steps: z.array(TransformStepSchema).min(1),
    })
    .strict(),
  z
    .object({
      name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
      version: z.string().regex(/^\d+\.\d+\.\d+$/),
      executor: z.literal('external'),
      gpu: z.boolean().default(false),
      /** The consent scope it serves: subjects without consent to it are left out of its runs. */
      purpose: NameSchema,
      table: Column.optional(),
      /**
       * argv; `{input}` (a directory of staged Parquet files, one per input dataset), `{output}` (an empty directory
       * for the Parquet files it writes), `{params}` (the parameters as JSON), `{seed}` and `{pipeline}` (the directory
       * of the pipeline file) are replaced.
       */
      command: z.array(z.string().min(1)).min(1),
      /** For a container executor: the image by digest, recorded in the run documentation. */
      image: z
        .string()
        .regex(/@sha256:[0-9a-f]{64}$/)
        .optional(),
    })
    .strict(),
]);
export type PipelineSpec = z.infer<typeof PipelineSpecSchema>;

/** A pipeline parameter as steps name it: a whole string `${name}`. */
export const PARAMETER_REFERENCE = /^\$\{([A-Za-z_][A-Za-z0-9_]{0,63})\}$/;

export const PipelineParametersSchema = z.record(
  z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a parameter name: letters, digits and "_"'),
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(z.union([z.string(), z.number()]))]),
);
export type PipelineParameters = z.infer<typeof PipelineParametersSchema>;

/** A pipeline as the request carries it: the file as written (steps may name parameters), and where it came from. */
export const PipelineSourceSchema = z.object({
  /** `NAME@VERSION` of a bundled pipeline, or the file's name. */
  ref: z.string().min(1).max(200),
  document: z.record(z.string(), z.unknown()),
  /**
   * Where `{pipeline}` points on the worker: a bundled pipeline's directory in Steward's install (`bundled`), or the
   * absolute directory of the pipeline file.
   */
  dir: z.string().min(1),
  bundled: z.boolean(),
  /** SHA-256 of the canonical JSON of the document and of each file its command names (the pipeline's code). */
  codeSha256: Sha256HexSchema,
  files: z.array(z.object({ path: z.string(), sha256: Sha256HexSchema })).default([]),
});
export type PipelineSource = z.infer<typeof PipelineSourceSchema>;

/** What a `preprocess run` request asks for. */
export const PreprocessParamsSchema = z.object({
  datasetIds: z.array(DatasetIdSchema).min(1).max(100),
  pipeline: PipelineSourceSchema,
  parameters: PipelineParametersSchema,
  seed: z
    .number()
    .int()
    .nonnegative()
    .max(2 ** 31 - 1),
  /** Run on the jurisdiction's GPU queue (the pipeline may ask for it too). */
  gpu: z.boolean().default(false),
});
export type PreprocessParams = z.infer<typeof PreprocessParamsSchema>;

/** What a `preprocess verify` request asks for: the run to repeat, optionally with other parameters. */
export const PreprocessVerifyParamsSchema = z.object({
  runWorkflowId: z.string().min(1).max(200),
  parameters: PipelineParametersSchema.optional(),
});
export type PreprocessVerifyParams = z.infer<typeof PreprocessVerifyParamsSchema>;

/** A table as one exact object version, with its checksum. */
const StoredTableSchema = z.object({
  table: z.string(),
  bucket: z.string(),
  key: z.string(),
  versionId: z.string().nullable(),
  sha256: Sha256HexSchema,
  bytes: z.number().int().nonnegative(),
});

/** One input of a job: the exact object version of a dataset's table. */
export const PreprocessInputSchema = StoredTableSchema.extend({
  datasetId: DatasetIdSchema,
  studyId: z.string(),
  /** The column holding subject tokens: rows of subjects without consent for the purpose are left out. */
  subjectColumn: z.string().nullable(),
});
export type PreprocessInput = z.infer<typeof PreprocessInputSchema>;

export const PreprocessOutputSchema = StoredTableSchema.extend({
  /** The output dataset this table belongs to (one per input dataset). */
  datasetId: DatasetIdSchema,
  fromDatasetId: DatasetIdSchema,
  rows: z.number().int().nonnegative(),
  columns: z.array(z.object({ name: z.string(), type: z.string() })),
});
export type PreprocessOutput = z.infer<typeof PreprocessOutputSchema>;

/** Subjects left out of a run for want of consent to its purpose, by reason (counts only). */
export const ConsentExclusionSchema = z.object({
  purpose: z.string(),
  asOf: z.string(),
  subjects: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
  byReason: z.record(z.string(), z.number().int().nonnegative()),
});
export type ConsentExclusion = z.infer<typeof ConsentExclusionSchema>;

/** The machine and software a job ran on. */
export const InfrastructureSchema = z.object({
  worker: z.object({
    identity: z.string(),
    hostname: z.string(),
    pid: z.number().int(),
    taskQueue: z.string(),
  }),
  node: z.string(),
  temporalSdk: z.string(),
  temporalServer: z.string().nullable(),
  versitygw: z.string().nullable(),
  duckdb: z.string(),
  gpu: GpuInventorySchema.nullable(),
  cudaVisibleDevices: z.string().nullable(),
  containerImage: z.string().nullable(),
  /** The configuration baseline in force when the job started (absent in documentation written before baselines). */
  baseline: BaselineRefSchema.nullable().optional(),
});
export type Infrastructure = z.infer<typeof InfrastructureSchema>;

/**
 * A job's run documentation (GxP): what went in (exact object versions and checksums), what ran (pipeline, its code
 * hash, parameters, seed), on what (infrastructure), what came out (checksums), and that the scratch was wiped.
 * Written beside the outputs and into each output dataset's record.
 */
export const RunDocumentSchema = z.object({
  format: z.literal('steward-run/1'),
  jobId: z.string(),
  jurisdiction: z.string(),
  workflowId: z.string(),
  runId: z.string(),
  requestId: z.string(),
  requestedBy: PrincipalSchema,
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  pipeline: z.object({
    ref: z.string(),
    name: z.string(),
    version: z.string(),
    executor: z.enum(['builtin', 'external']),
    gpu: z.boolean(),
    purpose: z.string(),
    codeSha256: Sha256HexSchema,
    files: z.array(z.object({ path: z.string(), sha256: Sha256HexSchema })),
    document: z.record(z.string(), z.unknown()),
    dir: z.string(),
    bundled: z.boolean(),
  }),
  parameters: PipelineParametersSchema,
  seed: z.number().int(),
  inputs: z.array(
    PreprocessInputSchema.extend({
      rowsIn: z.number().int().nonnegative(),
      /** Rows of subjects without consent to the pipeline's purpose, left out before the pipeline ran. */
      rowsExcluded: z.number().int().nonnegative(),
    }),
  ),
  consent: ConsentExclusionSchema,
  outputs: z.array(PreprocessOutputSchema),
  scratch: z.object({ wiped: z.boolean(), verifiedAt: z.iso.datetime(), files: z.number().int().nonnegative() }),
  infrastructure: InfrastructureSchema,
});
export type RunDocument = z.infer<typeof RunDocumentSchema>;

/** Where a run's documentation is kept, beside its outputs. */
export const RunDocumentRefSchema = z.object({
  bucket: z.string(),
  key: z.string(),
  versionId: z.string().nullable(),
  sha256: Sha256HexSchema,
});
export type RunDocumentRef = z.infer<typeof RunDocumentRefSchema>;

/** The heavy activity's input: everything decided, nothing left to look up but the objects. */
export const RunPreprocessInputSchema = z.object({
  jobId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/),
  jurisdiction: z.string(),
  /** Verify mode: run and hash, but upload and record nothing. */
  verify: z.boolean().default(false),
  /** The configuration baseline in force when the job started, for its run documentation. */
  baseline: BaselineRefSchema.nullable().optional(),
  pipeline: PipelineSourceSchema,
  parameters: PipelineParametersSchema,
  seed: z.number().int().nonnegative(),
  inputs: z.array(PreprocessInputSchema).min(1),
  /** Where the outputs go: one prefix per output dataset, in the jurisdiction's curated bucket. */
  outputs: z.array(
    z.object({ fromDatasetId: DatasetIdSchema, datasetId: DatasetIdSchema, bucket: z.string(), prefix: z.string() }),
  ),
  /** The day consent is decided as of (the workflow's start); the registry is read as of `job.startedAt`. */
  asOf: z.iso.date(),
  /** Retention of the outputs: the Object Lock the new objects carry. */
  lock: z.object({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']), until: z.iso.datetime() }).nullable(),
  tags: z.record(z.string(), z.string()),
  job: z.object({
    workflowId: z.string(),
    runId: z.string(),
    requestId: z.string(),
    requestedBy: PrincipalSchema,
    startedAt: z.iso.datetime(),
  }),
});
export type RunPreprocessInput = z.infer<typeof RunPreprocessInputSchema>;

export const RunPreprocessResultSchema = z.object({
  document: RunDocumentSchema,
  /** Null in verify mode (nothing written). */
  documentRef: RunDocumentRefSchema.nullable(),
  /** The copies beside each output dataset's objects. */
  copies: z.array(RunDocumentRefSchema).default([]),
});
export type RunPreprocessResult = z.infer<typeof RunPreprocessResultSchema>;

/** A field that differs between a run's documentation and its re-run. */
export const RunDifferenceSchema = z.object({ field: z.string(), recorded: z.unknown(), rerun: z.unknown() });
export type RunDifference = z.infer<typeof RunDifferenceSchema>;

export const PreprocessJobResultSchema = z.object({
  jobId: z.string(),
  /** For a run: its output datasets and documentation. */
  outputDatasets: z.array(z.string()),
  documentRef: RunDocumentRefSchema.nullable(),
  document: RunDocumentSchema,
  /** For a verification: whether the re-run's outputs equal the recorded ones, and every field that differs. */
  verification: z
    .object({ of: z.string(), reproduced: z.boolean(), differences: z.array(RunDifferenceSchema) })
    .nullable(),
});
export type PreprocessJobResult = z.infer<typeof PreprocessJobResultSchema>;

/** Heartbeat of the heavy activity: where it got to; a retry resumes after the last output it uploaded. */
export const PreprocessHeartbeatSchema = z.object({
  phase: z.string(),
  rowsDone: z.number().int().nonnegative(),
  rowsTotal: z.number().int().nonnegative(),
  uploaded: z.array(PreprocessOutputSchema).default([]),
});
export type PreprocessHeartbeat = z.infer<typeof PreprocessHeartbeatSchema>;
