import type { S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import { ErrorType, nonRetryable } from '../contracts';
import { replicateBucket } from '../lib/storage/replication';
import type { Jurisdiction } from '../schemas/jurisdiction';
import type { ReplicationPass } from '../schemas/replication';
import { assertOwnJurisdiction } from './guards';

export interface ReplicationActivityDeps {
  s3: S3Client;
  /** The jurisdiction's disaster-recovery site, as its workers reach it; none in the embedded profile. */
  dr: S3Client | undefined;
  jurisdiction: Jurisdiction;
}

/** Replication of a jurisdiction's buckets from its primary site to its DR site, both inside the jurisdiction. */
export function createReplicationActivities({ s3, dr, jurisdiction }: ReplicationActivityDeps) {
  return {
    /**
     * One pass over every bucket (see `replicateBucket`): new versions copied and verified by SHA-256, replicas of
     * versions deleted at the primary deleted. Heartbeats per bucket and every few copies.
     */
    async replicateToDrActivity(raw: { jurisdiction: string }): Promise<ReplicationPass> {
      assertOwnJurisdiction(jurisdiction, raw.jurisdiction);
      if (!dr) {
        throw nonRetryable(
          ErrorType.InvalidInput,
          `the ${jurisdiction.id} workers know no disaster-recovery site (STEWARD_S3_DR_ENDPOINT is not set)`,
        );
      }
      const startedAt = new Date().toISOString();
      const buckets: ReplicationPass['buckets'] = [];
      for (const bucket of Object.values(jurisdiction.buckets)) {
        Context.current().heartbeat({ bucket });
        buckets.push(
          await replicateBucket({ primary: s3, dr }, bucket, jurisdiction.buckets.catalog, undefined, (copied) =>
            Context.current().heartbeat({ bucket, copied }),
          ),
        );
      }
      return {
        jurisdiction: jurisdiction.id,
        site: jurisdiction.sites.dr.name,
        startedAt,
        completedAt: new Date().toISOString(),
        replicatedThrough: buckets.every((b) => b.pending === 0) ? startedAt : null,
        buckets,
      };
    },
  };
}
