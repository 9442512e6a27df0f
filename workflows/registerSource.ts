import type { SignedWorkflowInput } from '../schemas/request';
import { RegisterSourceParamsSchema } from '../schemas/source';
import { recordAudit } from './audit';
import { authorize } from './authorize';
import { changeCatalog } from './catalog';
import { setPhase } from './progress';

export interface RegisterSourceResult {
  jurisdiction: string;
  studyId: string;
  name: string;
  fingerprint: string;
  required: boolean;
  sources: number;
}

/**
 * Registers a source system's certificate for a study (steward, e-signed): from then on, a package of the study signed
 * by it is authenticated at ingestion, and with `required`, an unsigned or otherwise signed one is rejected. The
 * certificate is pinned by its fingerprint; the registration and who made it are audited.
 */
export async function registerSourceWorkflow(raw: SignedWorkflowInput): Promise<RegisterSourceResult> {
  const auth = await authorize(raw, 'sources.register', RegisterSourceParamsSchema);
  const { studyId, name, certificatePem, required } = auth.params;
  setPhase('registering the source');
  const result = await changeCatalog(auth.jurisdiction, {
    kind: 'source.registered',
    studyId,
    name,
    certificatePem,
    required,
    at: new Date().toISOString(),
    by: auth.eSignature,
  });
  await recordAudit(auth.jurisdiction, auth.principal, [
    {
      action: 'source.registered',
      outcome: 'success',
      targets: { studyId, requestId: auth.requestId },
      details: { source: name, fingerprint: result.fingerprint!, required: result.required!, sources: result.count },
    },
  ]);
  return {
    jurisdiction: auth.jurisdiction,
    studyId,
    name,
    fingerprint: result.fingerprint!,
    required: result.required!,
    sources: result.count,
  };
}
