import { setTimeout as sleep } from 'node:timers/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import {
  ErrorType,
  nonRetryable,
  replicationPassSignal,
  replicationStatusQuery,
  replicationWorkflowId,
} from '../contracts';
import { replicateBucket, type StandbySite } from '../lib/storage/replication';
import type { Jurisdiction } from '../schemas/jurisdiction';
import type { ReplicationPass } from '../schemas/replication';
import { assertOwnJurisdiction } from './guards';

export interface ReplicationActivityDeps {
  s3: S3Client;
  /** The site replicated to (the DR site, or the primary after a failover); none in the embedded profile. */
  dr: StandbySite | undefined;
  jurisdiction: Jurisdiction;
  temporal: () => Promise<Client>;
}

/** How often a wait for replication asks the replication workflow where it stands, and asks again for a pass. */
const POLL_MS = 250;
const ASK_AGAIN_MS = 10_000;

/**
 * Replication of a jurisdiction's buckets from the site its workers write to (the primary, or the DR site after a
 * failover) to the other, both inside the jurisdiction.
 */
export function createReplicationActivities({ s3, dr, jurisdiction, temporal }: ReplicationActivityDeps) {
  return {
    /**
     * Returns once everything stored at the site written to before the call has its verified replica at the other
     * (a pass that started after the call found nothing left to copy): an ingestion completes only once its data is at
     * both sites. Returns at once where there is no DR site, and while failed over (the primary is the site lost: data
     * has one copy until it is back, as `steward dr status` shows). Waits as long as replication is behind, heartbeating.
     */
    async awaitReplicatedActivity(raw: { jurisdiction: string }): Promise<{ waited: boolean }> {
      assertOwnJurisdiction(jurisdiction, raw.jurisdiction);
      if (!dr || dr.names.active !== jurisdiction.sites.primary.name) return { waited: false };
      const since = new Date().toISOString();
      const handle = (await temporal()).workflow.getHandle(replicationWorkflowId(jurisdiction.id));
      for (let asked = 0; ; await sleep(POLL_MS)) {
        if (Date.now() - asked >= ASK_AGAIN_MS) {
          await handle.signal(replicationPassSignal);
          asked = Date.now();
        }
        const status = await handle.query(replicationStatusQuery);
        if (status.replicatedThrough !== null && status.replicatedThrough >= since) return { waited: true };
        Context.current().heartbeat({ since, replicatedThrough: status.replicatedThrough });
      }
    },

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
          await replicateBucket({ primary: s3, dr: dr.s3 }, bucket, jurisdiction.buckets.catalog, undefined, (copied) =>
            Context.current().heartbeat({ bucket, copied }),
          ),
        );
      }
      return {
        jurisdiction: jurisdiction.id,
        source: dr.names.active,
        site: dr.names.standby,
        startedAt,
        completedAt: new Date().toISOString(),
        replicatedThrough: buckets.every((b) => b.pending === 0) ? startedAt : null,
        buckets,
      };
    },
  };
}
