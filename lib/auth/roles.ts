import type { Action, Principal, Role } from '../../schemas/common';

export type { Action };

/**
 * Which roles may do what. The one place permissions are decided: every workflow checks the verified principal of its
 * signed request against it, and the CLI consults it to refuse early. Pure, safe inside workflows.
 */
export const PERMISSIONS = {
  ingest: ['steward'],
  'consent.import': ['steward', 'dpo'],
  'consent.withdraw': ['dpo'],
  'keys.rotate': ['steward'],
  'keys.destroy': ['dpo'],
  'datasets.repseudonymize': ['steward'],
  reidentify: ['dpo'],
  'audit.query': ['auditor', 'dpo'],
  'hold.set': ['steward', 'dpo'],
  'hold.release': ['steward', 'dpo'],
  'trial.end': ['steward'],
  'retention.sweep': ['steward', 'dpo'],
  /** A dry run: deletes nothing, so those who watch may ask for one too. */
  'retention.preview': ['steward', 'dpo', 'ops', 'auditor'],
  'retention.schedule': ['ops', 'steward'],
  /** Reading workflow payloads in the clear through the codec server (Temporal UI, `temporal workflow show`). */
  'codec.decode': ['ops', 'auditor'],
  'preprocess.run': ['steward'],
  /** Trusting a source system's certificate for a study's packages. */
  'sources.register': ['steward'],
  /** Re-running a job from its documentation writes no dataset: QA and auditors validate processes. */
  'preprocess.verify': ['steward', 'auditor'],
  /** Subject requests: the DPO files them and signs every decision on them. */
  'dsr.access': ['dpo'],
  'dsr.erase': ['dpo'],
  'dsr.restrict': ['dpo'],
  'dsr.verify-identity': ['dpo'],
  'dsr.approve': ['dpo'],
  'dsr.reject': ['dpo'],
  'dsr.extend': ['dpo'],
  'dsr.lift': ['dpo'],
  'dsr.cancel': ['dpo'],
  'dsr.retry': ['dpo'],
  /** Reading a request's state and steps (no personal data): the DPO and auditors. */
  'dsr.read': ['dpo', 'auditor'],
  /** Downloading an access package: it holds the subject's data, for the DPO to hand over. */
  'dsr.export': ['dpo'],
  /** Comparing the subject index with a full scan reads no personal data out: the DPO and auditors. */
  'dsr.index-verify': ['dpo', 'auditor'],
  /** Rebuilding the subject index from every table: the DPO, and ops who run the stack. */
  'dsr.index-rebuild': ['dpo', 'ops'],
  /** Qualification (IQ/OQ/PQ) and the configuration baseline: quality assurance runs, approves and signs them. */
  'qualify.run': ['qa'],
  'qualify.sign': ['qa'],
  'baseline.record': ['qa'],
  /** A drift check on demand (the schedule runs one hourly); deviations are investigated and closed by QA. */
  'drift.check': ['qa', 'ops'],
  'deviation.decide': ['qa'],
  /** A change to a controlled file: those who run the installation propose it; QA, another person, approves it. */
  'change.propose': ['qa', 'ops', 'steward'],
  'change.decide': ['qa'],
  /** A new worker release made current in a jurisdiction, after the replay gate: those who run the installation. */
  'workers.deploy': ['ops'],
  /** A jurisdiction's workers moved to its disaster-recovery site, and back: those who run the installation. */
  'dr.failover': ['ops'],
  'dr.failback': ['ops'],
} as const satisfies Record<Action, readonly Role[]>;

export function allowed(principal: Pick<Principal, 'role'>, action: Action): boolean {
  return (PERMISSIONS[action] as readonly Role[]).includes(principal.role);
}

export function denialMessage(principal: Pick<Principal, 'id' | 'role'>, action: Action): string {
  return `access denied: ${principal.id} (role ${principal.role}) may not ${action}; allowed roles: ${PERMISSIONS[action].join(', ')}`;
}
