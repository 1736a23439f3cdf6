import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // e2e and namespace tests share the machine's 2 cores; keep files from
    // stampeding each other (each file still runs its own tests in order).
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
