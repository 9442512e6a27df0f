import type { z } from 'zod';
import { ErrorType, nonRetryable } from '.';

/**
 * Parses a workflow or activity input against its schema; a mismatch is a non-retryable `InvalidInput` failure that
 * names each field and rule (never the offending value). Pure: safe inside workflows.
 */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(input)'}: ${i.message}`);
  return fail(`invalid input to ${what}: ${issues.join('; ')}`);
}

function fail(message: string): never {
  throw nonRetryable(ErrorType.InvalidInput, message);
}
