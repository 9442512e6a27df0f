import pino from 'pino';

/** Structured logs to stderr. Callers log ids, counts and rules, never data values or key material. */
export const logger = pino(
  { level: process.env.STEWARD_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: true }),
);
