import { createAuditActivities } from '../activities/audit';
import { createCatalogActivities } from '../activities/catalog';
import { createConsentActivities } from '../activities/consent';
import { createErasureActivities } from '../activities/erasure';
import { createIdentityActivities } from '../activities/identity';
import { createIngestActivities, type IngestActivityDeps } from '../activities/ingest';
import { createKeyActivities } from '../activities/keys';
import { createMessageActivities } from '../activities/messages';
import { createPreprocessCatalogActivities } from '../activities/preprocess-catalog';
import { createRePseudonymizeActivities } from '../activities/repseudonymize';
import { createQualificationActivities } from '../activities/qualification';
import { createReplicationActivities } from '../activities/replication';
import { createRetentionActivities } from '../activities/retention';
import { createScheduleActivities } from '../activities/schedule';
import { createSubjectRightsActivities } from '../activities/subject-rights';
import { createVaultActivities } from '../activities/vault';
import type { StandbySite } from '../lib/storage/replication';
import type { Client } from '@temporalio/client';
import type { SignerMaterial, TrustAnchor } from '../lib/pki/authority';
import { KeyUnavailableInterceptor } from './interceptors';

/** What a jurisdiction's worker wires: its storage, its keys, this machine's scratch space, and its evidence PKI. */
export type JurisdictionWorkerDeps = IngestActivityDeps & {
  /** The Steward CA and its CRL, to verify signed requests. */
  trust: TrustAnchor;
  /** The jurisdiction's evidence signer (audit segments, certificates). */
  signer: () => Promise<SignerMaterial>;
  /** A client of the worker's Temporal service (for the retention schedule), opened on first use. */
  temporal: () => Promise<Client>;
  /** The jurisdiction's message key, which seals what its workflows say to each other. */
  messageKey: Buffer;
  /** The jurisdiction's disaster-recovery site (production profile): replicated to, and erased at too. */
  dr?: StandbySite | undefined;
};

/** Every activity a jurisdiction's worker runs, wired to that jurisdiction's storage, keys and evidence signer. */
export function createJurisdictionActivities(deps: JurisdictionWorkerDeps) {
  const { s3, keys, jurisdiction, scratchDir, trust, signer, temporal, messageKey, dr } = deps;
  return {
    ...createMessageActivities({ jurisdiction, messageKey }),
    ...createIngestActivities(deps),
    ...createCatalogActivities({ s3, jurisdiction, messageKey }),
    ...createConsentActivities({ s3, keys, jurisdiction, scratchDir }),
    ...createKeyActivities({ keys, jurisdiction }),
    ...createVaultActivities({ s3, keys, jurisdiction }),
    ...createRePseudonymizeActivities({ s3, keys, jurisdiction, scratchDir }),
    ...createIdentityActivities({ jurisdiction, trust }),
    ...createAuditActivities({ s3, keys, jurisdiction, signer }),
    ...createErasureActivities({ s3, jurisdiction, signer, caPem: () => trust.caPem(), dr }),
    ...createReplicationActivities({ s3, dr, jurisdiction, temporal }),
    ...createRetentionActivities({ s3, jurisdiction }),
    ...createScheduleActivities({ jurisdiction, temporal }),
    ...createPreprocessCatalogActivities({ s3, jurisdiction, scratchDir, caPem: () => trust.caPem() }),
    ...createQualificationActivities({ s3, jurisdiction, temporal, signer, caPem: () => trust.caPem() }),
    ...createSubjectRightsActivities({
      s3,
      keys,
      jurisdiction,
      scratchDir,
      temporal,
      signer,
      caPem: () => trust.caPem(),
    }),
  };
}

/** Activity interceptors of every Steward worker. */
export const activityInterceptors = [() => ({ inbound: new KeyUnavailableInterceptor() })];
