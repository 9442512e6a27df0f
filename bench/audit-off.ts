import type { AuditEvent } from '../schemas/audit';
import type { AuditDraft } from '../workflows/audit';

/**
 * Benchmark only: stands in for `workflows/audit.ts` in a workflow bundle built for the "audit off" half of the
 * ingestion benchmark, so the cost of auditing can be measured. Never part of a product bundle.
 */
export async function recordAudit(
  _jurisdiction: string,
  _principal: unknown,
  _drafts: AuditDraft[],
): Promise<AuditEvent[]> {
  return [];
}
