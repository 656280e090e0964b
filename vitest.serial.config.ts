import { defineConfig } from "vitest/config";

/** Tests that disturb shared services (restarting Postgres): one file at a time, after the main suite. */
export default defineConfig({
  test: {
    include: ["test/serial/**/*.test.ts"],
    pool: "forks",
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
