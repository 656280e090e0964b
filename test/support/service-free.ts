/**
 * Setup of the fast suite (vitest.fast.config.ts): a test there that starts
 * a child process or opens a TCP connection fails at once, naming the file
 * to rename, so the fast suite stays service-free and fast. Such a test
 * belongs in the full suite: name it `<feature>.test.ts`, not `.unit.test.ts`.
 */
import childProcess from "node:child_process";
import { syncBuiltinESMExports } from "node:module";
import net from "node:net";

const refuse =
  (what: string) =>
  (..._args: unknown[]): never => {
    throw new Error(
      `${what} in the fast suite: a test that needs a process or a socket belongs in the full suite ` +
        "(name its file <feature>.test.ts, not .unit.test.ts, and keep it out of test/unit/)",
    );
  };

for (const name of ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"] as const) {
  (childProcess as Record<string, unknown>)[name] = refuse(`child_process.${name}`);
}
for (const name of ["connect", "createConnection", "createServer"] as const) {
  (net as Record<string, unknown>)[name] = refuse(`net.${name}`);
}
syncBuiltinESMExports();
