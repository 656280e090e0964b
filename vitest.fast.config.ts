import { defineConfig } from "vitest/config";

/**
 * The fast suite (`npm run test:fast`): tests that need no service, no socket
 * and no child process, in seconds. A file is in it by its name, so a new
 * one needs no edit here: `*.unit.test.ts` beside the other tests of its
 * capability (test/config/config.unit.test.ts), or anything under test/unit/
 * (tests of the whole tree: layering, the README, package engines).
 * The full suite (`npm test`) runs these too.
 */
export default defineConfig({
  test: {
    include: ["test/**/*.unit.test.ts", "test/unit/**/*.test.ts"],
    exclude: ["test/serial/**", "**/node_modules/**"],
    setupFiles: ["test/support/service-free.ts"],
    pool: "threads",
    testTimeout: 10_000,
  },
});
