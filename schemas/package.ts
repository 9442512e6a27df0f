import { z } from 'zod';
import { JurisdictionIdSchema } from './jurisdiction';
import { NameSchema, Sha256HexSchema, StudyIdSchema } from './common';

export const ColumnTypeSchema = z.enum(['string', 'integer', 'number', 'boolean', 'date', 'timestamp']);
export type ColumnType = z.infer<typeof ColumnTypeSchema>;

/**
 * What happens to a column on the way to curated (the column policy):
 * - `subject-id`: the subject's direct identifier; tokenized, and the key for consent look-ups (one per table);
 * - `direct-identifier`: any other direct identifier (name, e-mail, MRN); tokenized;
 * - `date`: a date about the subject; shifted by the subject's own offset when the package sets `dateShiftDays`;
 * - `generalize`: coarsened by `method` (ZIP to 3 digits, age over 89 to "90+", date to its year);
 * - `free-text`: dropped unless `keep` is set;
 * - `suppress`: dropped;
 * - `value` / `keep`: kept as is.
 */
export const ColumnRoleSchema = z.enum([
  'subject-id',
  'direct-identifier',
  'date',
  'generalize',
  'free-text',
  'suppress',
  'value',
  'keep',
]);

/**
 * Generalization methods: `zip3` keeps a ZIP code's first 3 digits, and 000 for the HIPAA Safe Harbor low-population
 * prefixes; `age` turns ages over 89 into "90+"; `year` keeps a date's year.
 */
export const GeneralizeMethodSchema = z.enum(['zip3', 'age', 'year']);
export type GeneralizeMethod = z.infer<typeof GeneralizeMethodSchema>;
export type ColumnRole = z.infer<typeof ColumnRoleSchema>;

export const ColumnSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a column name of letters, digits and "_"'),
    type: ColumnTypeSchema,
    role: ColumnRoleSchema,
    required: z.boolean().default(false),
    keep: z.boolean().optional(),
    method: GeneralizeMethodSchema.optional(),
  })
  .strict()
  .superRefine((column, ctx) => {
    if (column.role === 'generalize') {
      const needs = { zip3: ['string'], age: ['integer'], year: ['date', 'timestamp'] } as const;
      if (!column.method)
        ctx.addIssue({
          code: 'custom',
          path: ['method'],
          message: 'a generalize column needs a method: zip3, age or year',
        });
      else if (!(needs[column.method] as readonly string[]).includes(column.type)) {
        ctx.addIssue({
          code: 'custom',
          path: ['type'],
          message: `generalize method ${column.method} needs type ${needs[column.method].join(' or ')}`,
        });
      }
    } else if (column.method !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['method'], message: '"method" applies to generalize columns only' });
    }
    if ((column.role === 'subject-id' || column.role === 'direct-identifier') && column.type !== 'string') {
      ctx.addIssue({ code: 'custom', path: ['type'], message: `a ${column.role} column must have type "string"` });
    }
    if (column.role === 'date' && column.type !== 'date' && column.type !== 'timestamp') {
      ctx.addIssue({ code: 'custom', path: ['type'], message: 'a date column must have type "date" or "timestamp"' });
    }
    if (column.keep !== undefined && column.role !== 'free-text') {
      ctx.addIssue({ code: 'custom', path: ['keep'], message: '"keep" applies to free-text columns only' });
    }
  });
export type Column = z.infer<typeof ColumnSchema>;

export const TableSchema = z
  .object({
    path: z.string().min(1),
    name: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'must be a lowercase table name'),
    format: z.enum(['csv', 'ndjson']),
    columns: z.array(ColumnSchema).min(1),
  })
  .strict()
  .superRefine((table, ctx) => {
    const subjects = table.columns.filter((c) => c.role === 'subject-id').length;
    if (subjects !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['columns'],
        message: `a table needs exactly one subject-id column, found ${subjects}`,
      });
    }
    const seen = new Set<string>();
    table.columns.forEach((column, i) => {
      if (seen.has(column.name)) {
        ctx.addIssue({ code: 'custom', path: ['columns', i, 'name'], message: `duplicate column "${column.name}"` });
      }
      seen.add(column.name);
    });
  });
export type Table = z.infer<typeof TableSchema>;

/** Who, where and why: the metadata a package carries (BagIt tag file `steward.json`, or the JSON manifest). */
export const PackageMetadataSchema = z
  .object({
    studyId: StudyIdSchema,
    protocolId: z.string().min(1).max(128),
    jurisdiction: JurisdictionIdSchema,
    dataClass: NameSchema,
    purpose: NameSchema,
    sourceSystem: z.string().min(1).max(128),
    /** Shift every `date` column by a per-subject offset in [-n, n] days (0 or absent: no shift). */
    dateShiftDays: z.number().int().min(0).max(3650).optional(),
    /** Keep token → original identifier, sealed per study, for the DPO's re-identification (`steward reidentify`). */
    reidentificationVault: z.boolean().optional(),
    tables: z.array(TableSchema).min(1),
  })
  .strict()
  .superRefine((meta, ctx) => {
    const paths = new Set<string>();
    const names = new Set<string>();
    meta.tables.forEach((table, i) => {
      if (paths.has(table.path)) {
        ctx.addIssue({ code: 'custom', path: ['tables', i, 'path'], message: `"${table.path}" is declared twice` });
      }
      if (names.has(table.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['tables', i, 'name'],
          message: `table "${table.name}" is declared twice`,
        });
      }
      paths.add(table.path);
      names.add(table.name);
    });
  });
export type PackageMetadata = z.infer<typeof PackageMetadataSchema>;

export const ManifestEntrySchema = z.object({
  path: z.string().min(1),
  sha256: Sha256HexSchema,
  bytes: z.number().int().nonnegative().optional(),
});
export type ManifestEntry = z.infer<typeof ManifestEntrySchema>;

/**
 * A subject's erasure from a raw upload: the package was rewritten without their rows (GDPR Art. 17) and its manifest
 * with it. It names the request and the package digest the upload had before, which its package id was made from.
 */
export const UploadErasureSchema = z.object({
  requestId: z.string(),
  at: z.iso.datetime(),
  originalManifestSha256: z.string().regex(/^[0-9a-f]{64}$/),
  rowsRemoved: z.number().int().nonnegative(),
  sourceSignature: z.string().nullable(),
});
export type UploadErasure = z.infer<typeof UploadErasureSchema>;

/** `manifest.json` of a plain-directory package: the metadata plus every payload file with its digest. */
export const JsonManifestSchema = PackageMetadataSchema.safeExtend({
  format: z.literal('steward-package/1'),
  files: z.array(ManifestEntrySchema).min(1),
  /** Set by Steward only: the erasures that rewrote this upload, oldest first. */
  erasures: z.array(UploadErasureSchema).optional(),
});

export const PACKAGE_METADATA_FILE = 'steward.json';
export const JSON_MANIFEST_FILE = 'manifest.json';
