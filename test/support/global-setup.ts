/**
 * Says once, at the top of the run, which test groups this machine cannot
 * run and why, so a green run on a laptop is not mistaken for a full one.
 */
import { existsSync } from "node:fs";

/** Debian's chromium, driven by playwright-core in the browser groups. */
export const CHROMIUM = "/usr/bin/chromium";

export default function setup(): void {
  const skipped: string[] = [];
  if (!process.env.DATABASE_URL) {
    skipped.push(
      "Postgres adapter groups (DATABASE_URL unset): store and API tests ran on embedded PGlite only",
    );
  }
  if (!process.env.REDIS_URL) skipped.push("Redis scale-out groups (REDIS_URL unset)");
  if (!existsSync(CHROMIUM)) skipped.push(`browser groups (${CHROMIUM} absent: apt-get install chromium)`);
  if (skipped.length > 0) {
    process.stdout.write(
      `\nbrewcast: skipped test groups:\n${skipped.map((s) => `  - ${s}`).join("\n")}\n\n`,
    );
  } else {
    process.stdout.write("\nbrewcast: full run (DATABASE_URL and REDIS_URL set, chromium present)\n\n");
  }
}
