import { z } from 'zod';

export const BucketPassSchema = z.object({
  bucket: z.string(),
  listed: z.number().int().nonnegative(),
  copied: z.number().int().nonnegative(),
  copiedBytes: z.number().int().nonnegative(),
  pruned: z.number().int().nonnegative(),
  vanished: z.number().int().nonnegative(),
  adopted: z.number().int().nonnegative(),
  foreign: z.number().int().nonnegative(),
  pending: z.number().int().nonnegative(),
  /** Versions kept at one site since a failover, neither copied nor deleted. */
  held: z.number().int().nonnegative().optional(),
  /** The first pass after a failover or failback. */
  turned: z.boolean().optional(),
});

/** One replication pass over every bucket of a jurisdiction, from its primary site to its DR site. */
export const ReplicationPassSchema = z.object({
  jurisdiction: z.string(),
  /** The site copied from, as the jurisdiction file names it (the primary; the DR site after a failover). */
  source: z.string().optional(),
  /** The site copied to (the DR site; the primary after a failover). */
  site: z.string(),
  startedAt: z.iso.datetime(),
  completedAt: z.iso.datetime(),
  /** Every version stored at the primary before this instant has its verified replica; null while some do not. */
  replicatedThrough: z.iso.datetime().nullable(),
  buckets: z.array(BucketPassSchema),
});
export type ReplicationPass = z.infer<typeof ReplicationPassSchema>;

/** What `steward dr status` reads from the jurisdiction's replication workflow. */
export const ReplicationStatusSchema = z.object({
  jurisdiction: z.string(),
  primary: z.string(),
  dr: z.string(),
  passes: z.number().int().nonnegative(),
  replicatedThrough: z.iso.datetime().nullable(),
  totals: z.object({
    copied: z.number().int().nonnegative(),
    copiedBytes: z.number().int().nonnegative(),
    pruned: z.number().int().nonnegative(),
    vanished: z.number().int().nonnegative(),
  }),
  last: ReplicationPassSchema.nullable(),
});
export type ReplicationStatus = z.infer<typeof ReplicationStatusSchema>;

export const ReplicationInputSchema = z.union([
  z.object({ jurisdiction: z.string() }).strict(),
  /** Handed over by the workflow's own continue-as-new, sealed by its worker. */
  z.object({ state: z.unknown() }).strict(),
]);
export type ReplicationInput = z.infer<typeof ReplicationInputSchema>;
