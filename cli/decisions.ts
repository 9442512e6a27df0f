import { ApplicationFailure, WorkflowUpdateFailedError } from '@temporalio/client';
import { ErrorType } from '../contracts';
import { allowed, denialMessage, type Action } from '../lib/auth/roles';
import { EXIT, UserError } from '../lib/runtime/errors';
import type { CommandContext } from './context';

/** The command's identity, refused before anything is sent when its role may not take the action. */
export async function checkRole(ctx: CommandContext, action: Action) {
  const identity = await ctx.identity();
  const principal = { id: identity.info.name, role: identity.info.role as never };
  if (!allowed(principal, action)) throw new UserError(denialMessage(principal, action), EXIT.denied);
  return identity;
}

/** A decision the workflow refused, as a clear error with its exit code. */
export function decisionRefused(error: unknown): never {
  if (error instanceof WorkflowUpdateFailedError) {
    let root: unknown = error.cause;
    while (root instanceof Error && root.cause) root = root.cause;
    const failure = root instanceof ApplicationFailure ? root : undefined;
    const message = (failure?.message ?? (root as Error | undefined)?.message ?? error.message).replace(
      /^catalog change failed: /,
      '',
    );
    throw new UserError(`refused: ${message}`, failure?.type === ErrorType.AccessDenied ? EXIT.denied : EXIT.usage);
  }
  throw error;
}
