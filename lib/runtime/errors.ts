/** Exit codes of the `steward` command. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  rejected: 3,
  notRunning: 4,
  degraded: 5,
  denied: 6,
  /** Evidence (audit trail, proof, certificate) failed verification. */
  verificationFailed: 7,
} as const;

/** An error meant for the person at the terminal: one clear paragraph and an exit code. */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.usage,
  ) {
    super(message);
  }
}
