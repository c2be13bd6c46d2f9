import { defineConfig } from 'vitest/config';

// chDB binds one data directory per process, so test files run in forked
// processes (never worker threads) and each file opens its own directory.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
