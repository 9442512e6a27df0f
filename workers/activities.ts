import { createCatalogActivities } from '../activities/catalog';
import { createConsentActivities } from '../activities/consent';
import { createIngestActivities, type IngestActivityDeps } from '../activities/ingest';
import { createKeyActivities } from '../activities/keys';
import { createRePseudonymizeActivities } from '../activities/repseudonymize';
import { createVaultActivities } from '../activities/vault';
import { KeyUnavailableInterceptor } from './interceptors';

/** What a jurisdiction's worker wires: its storage, its keys, and this machine's scratch space. */
export type JurisdictionWorkerDeps = IngestActivityDeps;

/** Every activity a jurisdiction's worker runs, wired to that jurisdiction's storage and keys. */
export function createJurisdictionActivities(deps: JurisdictionWorkerDeps) {
  const { s3, keys, jurisdiction, scratchDir } = deps;
  return {
    ...createIngestActivities(deps),
    ...createCatalogActivities({ s3, jurisdiction }),
    ...createConsentActivities({ s3, keys, jurisdiction, scratchDir }),
    ...createKeyActivities({ keys, jurisdiction }),
    ...createVaultActivities({ s3, keys, jurisdiction }),
    ...createRePseudonymizeActivities({ s3, keys, jurisdiction, scratchDir }),
  };
}

/** Activity interceptors of every Steward worker. */
export const activityInterceptors = [() => ({ inbound: new KeyUnavailableInterceptor() })];
