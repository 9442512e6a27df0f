import { DefaultFailureConverter } from '@temporalio/common';

/**
 * Failure messages and stack traces go into an encoded attribute, so the payload codec encrypts them like every other
 * payload: a history shows "Encoded failure" until a client with the key decodes it. Loaded by path, inside workflows
 * too (the bundler includes it).
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
