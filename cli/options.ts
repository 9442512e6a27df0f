import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { UserError } from '../lib/runtime/errors';
import { note } from './output';

function flag(key: PropertyKey | undefined): string {
  return key === undefined ? 'argument' : `--${String(key).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Validates a command's options (or an argument) with zod; a mismatch is a usage error naming each option and rule. */
export function parseOptions<S extends z.ZodType>(schema: S, options: unknown, what?: string): z.infer<S> {
  const parsed = schema.safeParse(options);
  if (parsed.success) return parsed.data;
  throw new UserError(parsed.error.issues.map((i) => `${what ?? flag(i.path[0])}: ${i.message}`).join('\n'));
}

/**
 * The request id of a command: the one given with `--request-id`, else a new one, printed so that a command
 * interrupted before it finished can be run again with it and find its first run instead of starting a second.
 */
export function requestIdOf(given: string | undefined): string {
  if (given) return given;
  const id = randomUUID();
  note(`request ${id} (if this command is interrupted, run it again with --request-id ${id})`);
  return id;
}
