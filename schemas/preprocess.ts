import { z } from 'zod';

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
      purpose: z.string().min(1),
      steps: z.array(TransformStepSchema).min(1),
    })
    .strict(),
  z
    .object({
      name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
      version: z.string().regex(/^\d+\.\d+\.\d+$/),
      executor: z.literal('external'),
      gpu: z.boolean().default(false),
      purpose: z.string().min(1),
      /** argv; `{input}`, `{output}` and `{params}` are replaced by the scratch paths. */
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
