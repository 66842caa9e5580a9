import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Two cores in CI: one fork per core keeps the explorer tests from starving each other.
    pool: 'forks',
    maxWorkers: 2,
  },
});
