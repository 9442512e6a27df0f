import { defineConfig } from 'vitest/config';

/**
 * The production profile's tests (`npm run test:production`): each file starts its own Temporal cluster on PostgreSQL
 * with `steward up --profile production`, so they need no shared stack.
 */
export default defineConfig({
  test: {
    include: ['test/production/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 900_000,
    reporters: ['default'],
  },
});
