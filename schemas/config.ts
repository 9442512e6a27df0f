import { z } from 'zod';

export const S3EndpointSchema = z.object({
  endpoint: z.url().optional(),
  region: z.string().min(1).default('us-east-1'),
  accessKeyId: z.string().min(1),
  secretAccessKey: z.string().min(1),
  forcePathStyle: z.boolean().default(true),
  /** PEM file of the CA an HTTPS endpoint's certificate is checked against (else the system's). */
  caFile: z.string().optional(),
});
export type S3Endpoint = z.infer<typeof S3EndpointSchema>;

export const TemporalEndpointSchema = z.object({
  address: z.string().min(1),
  namespace: z.string().min(1).default('default'),
  tls: z
    .object({
      serverName: z.string().optional(),
      caFile: z.string().optional(),
      certFile: z.string(),
      keyFile: z.string(),
    })
    .optional(),
});
export type TemporalEndpoint = z.infer<typeof TemporalEndpointSchema>;

/** What a running embedded stack writes to `<dataDir>/stack.json` for every other command to find it. */
export const StackStateSchema = z.object({
  format: z.literal('steward-stack/1'),
  pid: z.number().int(),
  startedAt: z.string(),
  dataDir: z.string(),
  /** `embedded` (Temporal dev server on SQLite) or `production` (a Temporal cluster on PostgreSQL, mutual TLS). */
  profile: z.enum(['embedded', 'production']).default('embedded'),
  temporal: TemporalEndpointSchema.extend({ uiUrl: z.string(), pid: z.number().int().nullable() }),
  /** The embedded versitygw (root); in the production profile, the first jurisdiction's storage site (its root). */
  s3: S3EndpointSchema.extend({ endpoint: z.string(), pid: z.number().int().nullable() }),
  jurisdictions: z.record(
    z.string(),
    z.object({
      buckets: z.record(z.string(), z.string()),
      /** The jurisdiction's storage account: the only one its buckets answer (root aside). */
      account: z.object({ accessKeyId: z.string(), secretAccessKey: z.string() }).optional(),
      /**
       * The production profile's storage site of the jurisdiction: its own versitygw (HTTPS), data directory, root
       * credentials and address; with `netns`, a network namespace of its own that only the jurisdiction's workers'
       * namespace is linked to (`workerEndpoint`, the site as the workers reach it).
       */
      storage: z
        .object({
          site: z.string(),
          endpoint: z.string(),
          workerEndpoint: z.string(),
          caFile: z.string(),
          netns: z.string().optional(),
          workerNetns: z.string().optional(),
          pid: z.number().int().nullable(),
          /** `dr` after `steward dr failover`: the workers write to the DR site and replicate to this one. */
          active: z.enum(['primary', 'dr']).optional(),
          /** The disaster-recovery site: its own versitygw, data directory, root and namespace, linked to the workers. */
          dr: z
            .object({
              site: z.string(),
              endpoint: z.string(),
              workerEndpoint: z.string(),
              netns: z.string().optional(),
              pid: z.number().int().nullable(),
            })
            .optional(),
        })
        .optional(),
    }),
  ),
  workers: z.array(
    z.object({
      jurisdiction: z.string(),
      pid: z.number().int().nullable(),
      restarts: z.number(),
      /** The Worker Deployment version the worker polls as (production profile). */
      buildId: z.string().optional(),
    }),
  ),
  /** The storage inspector (reads bucket settings for the installation qualification). */
  inspector: z.object({ pid: z.number().int().nullable(), restarts: z.number() }).optional(),
  /** The codec server the Web UI decodes through: its base URL, and the grant path the UI was given. */
  codec: z.object({ url: z.string(), uiEndpoint: z.string(), auditJurisdiction: z.string() }).optional(),
});
export type StackState = z.infer<typeof StackStateSchema>;

/** Optional config file (`STEWARD_CONFIG` or `<dataDir>/config.json`) for a non-embedded deployment. */
export const ConfigFileSchema = z
  .object({
    temporal: TemporalEndpointSchema.optional(),
    s3: S3EndpointSchema.optional(),
    /** Per-jurisdiction S3 endpoint and credentials, overriding `s3`. */
    s3ByJurisdiction: z.record(z.string(), S3EndpointSchema).optional(),
    /** The identity directory commands sign with (certificate and encrypted key). */
    identity: z.string().optional(),
    /** The PKI directory: Steward CA certificate, CRL, evidence signers' certificates. */
    pkiDir: z.string().optional(),
    jurisdictions: z.array(z.string()).optional(),
  })
  .strict();
export type ConfigFile = z.infer<typeof ConfigFileSchema>;
