import { Context } from '@temporalio/activity';
import { ErrorType, nonRetryable } from '../contracts';
import { openMessage, sealMessage } from '../lib/auth/messages';
import type { Jurisdiction } from '../schemas/jurisdiction';
import {
  OpenMessagesInputSchema,
  SealMessageInputSchema,
  type MessageStamp,
  type MessageVerdict,
  type OpenMessagesInput,
  type SealMessageInput,
} from '../schemas/message';
import { parseInput } from '../contracts/parse';
import { assertOwnJurisdiction } from './guards';

/** The workflow run that called the running activity. */
function caller(): { workflowId: string; runId: string } {
  const execution = Context.current().info.workflowExecution;
  if (!execution) throw nonRetryable(ErrorType.AccessDenied, 'messages are sealed and opened for workflows only');
  return execution;
}

/**
 * Seals and opens the messages Steward's workflows send each other, with the jurisdiction's message key. Run as local
 * activities: pure computation in the worker that holds the key, so the key never enters a workflow or a history.
 */
export function createMessageActivities({
  jurisdiction,
  messageKey,
}: {
  jurisdiction: Jurisdiction;
  /** The jurisdiction's message key (see `messageKeyId`). */
  messageKey: Buffer;
}) {
  return {
    /**
     * Seals a message from the calling workflow run: the sender is taken from the activity's own context, so a
     * workflow cannot seal in another's name. A retry seals anew (a new time): each seal is valid alone.
     */
    async sealMessageActivity(raw: SealMessageInput): Promise<MessageStamp> {
      const input = parseInput(SealMessageInputSchema, raw, 'sealMessageActivity');
      assertOwnJurisdiction(jurisdiction, input.jurisdiction);
      const { workflowId, runId } = caller();
      const sealed = sealMessage(messageKey, {
        kind: input.kind,
        jurisdiction: jurisdiction.id,
        from: { workflowId, runId },
        to: input.to,
        id: input.id,
        issuedAt: new Date().toISOString(),
        body: input.body,
      });
      return { from: sealed.from, issuedAt: sealed.issuedAt, mac: sealed.mac };
    },

    /** The jurisdiction this worker serves: what a workflow refuses in, audits in, whatever its input claims. */
    async workerJurisdictionActivity(): Promise<string> {
      return jurisdiction.id;
    },

    /** Verdicts on messages the calling workflow received, in order: for it, of the kind due, sealed. Reads only. */
    async openMessagesActivity(raw: OpenMessagesInput): Promise<MessageVerdict[]> {
      const input = parseInput(OpenMessagesInputSchema, raw, 'openMessagesActivity');
      const to = caller().workflowId;
      return input.messages.map((m) =>
        openMessage(messageKey, m, { kind: input.kind, to, jurisdiction: jurisdiction.id }),
      );
    },
  };
}
