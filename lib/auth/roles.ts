import type { Principal, Role } from '../../schemas/common';

/**
 * Which roles may do what. The one place permissions are decided: the CLI checks before it acts, and workflows check
 * the principal they were started for, so a client that skips the CLI is refused too. Pure, safe inside workflows.
 */
export const PERMISSIONS = {
  ingest: ['steward'],
  'consent.import': ['steward', 'dpo'],
  'consent.withdraw': ['dpo'],
  'keys.rotate': ['steward'],
  'datasets.repseudonymize': ['steward'],
  reidentify: ['dpo'],
} as const satisfies Record<string, readonly Role[]>;
export type Action = keyof typeof PERMISSIONS;

export function allowed(principal: Principal, action: Action): boolean {
  return (PERMISSIONS[action] as readonly Role[]).includes(principal.role);
}

export function denialMessage(principal: Principal, action: Action): string {
  return `access denied: ${principal.id} (role ${principal.role}) may not ${action}; allowed roles: ${PERMISSIONS[action].join(', ')}`;
}
