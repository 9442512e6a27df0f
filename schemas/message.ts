import { z } from 'zod';

/**
 * What Steward's workflows say to each other: audit events for a trail, changes for a catalog writer and their
 * outcomes, the erasure operations a workflow hands to its erasure child, and the state a workflow hands to its own
 * next run. Each is sealed by a worker of its jurisdiction (an
 * HMAC under the jurisdiction's message key, which only its workers hold), so a client that reaches Temporal directly
 * cannot make one up: holding the payload key lets it read messages, never forge them.
 */
export const MessageKindSchema = z.enum([
  'audit.append',
  'catalog.change',
  'catalog.reply',
  'state',
  'erasure.operation',
  'deviation.open',
]);
export type MessageKind = z.infer<typeof MessageKindSchema>;

export const WorkflowRunSchema = z.object({ workflowId: z.string().min(1), runId: z.string().min(1) });
export type WorkflowRun = z.infer<typeof WorkflowRunSchema>;

export const InternalMessageSchema = z.object({
  format: z.literal('steward-message/1'),
  kind: MessageKindSchema,
  jurisdiction: z.string(),
  /** The workflow run that sent it, as the sealing worker saw it (not as the sender said). */
  from: WorkflowRunSchema,
  /** The workflow id it is meant for. */
  to: z.string().min(1),
  /** Unique per message: a message delivered twice is acted on once. */
  id: z.string().min(1).max(300),
  issuedAt: z.iso.datetime(),
  body: z.unknown(),
  /** HMAC-SHA256 over the canonical JSON of every field above, base64url. */
  mac: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
});
export type InternalMessage = z.infer<typeof InternalMessageSchema>;

/** What the sealing worker adds to a message: who sent it, when, and the seal. */
export type MessageStamp = Pick<InternalMessage, 'from' | 'issuedAt' | 'mac'>;

export const MessageVerdictSchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true) }),
  z.object({ ok: z.literal(false), reason: z.string() }),
]);
export type MessageVerdict = z.infer<typeof MessageVerdictSchema>;

export const SealMessageInputSchema = z.object({
  kind: MessageKindSchema,
  jurisdiction: z.string(),
  to: z.string().min(1),
  id: z.string().min(1).max(300),
  body: z.unknown(),
});
export type SealMessageInput = z.infer<typeof SealMessageInputSchema>;

export const OpenMessagesInputSchema = z.object({
  kind: MessageKindSchema,
  messages: z.array(z.unknown()).max(10_000),
});
export type OpenMessagesInput = z.infer<typeof OpenMessagesInputSchema>;
