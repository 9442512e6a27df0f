import type { Jurisdiction } from '../schemas/jurisdiction';
import { parseInput } from '../contracts/parse';
import { VerifyRequestInputSchema, type RequestVerdict, type VerifyRequestInput } from '../schemas/request';
import { verifyRequest } from '../lib/auth/request';
import type { TrustAnchor } from '../lib/pki/authority';

/** Checks signed requests against the Steward CA and its CRL, for the workflows of one jurisdiction. */
export function createIdentityActivities({ jurisdiction, trust }: { jurisdiction: Jurisdiction; trust: TrustAnchor }) {
  return {
    /**
     * Verifies a signed request for this jurisdiction: chain, validity, revocation, signature, action, freshness and
     * role. A refusal is a verdict, not a failure, so the workflow can record it. Reads only; the time is the
     * workflow's, so a retry judges alike (the CRL may have grown meanwhile, which only refuses more).
     */
    async verifyRequestActivity(raw: VerifyRequestInput): Promise<RequestVerdict & { jurisdiction: string }> {
      const input = parseInput(VerifyRequestInputSchema, raw, 'verifyRequestActivity');
      const verdict = verifyRequest(
        input.request,
        { action: input.action, jurisdiction: jurisdiction.id },
        { caPem: trust.caPem(), revoked: await trust.revoked(), now: new Date(input.now) },
      );
      return { ...verdict, jurisdiction: jurisdiction.id };
    },
  };
}
