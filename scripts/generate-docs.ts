/**
 * Writes the README's generated tables from the code: the error codes from
 * the registry (src/domain/errors.ts), the configuration from the config
 * schema (src/config/schema.ts), and `brewcast tail --help` from the CLI's
 * help text (src/cli-usage.ts). Each block sits between marker comments,
 * `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`; everything else in
 * the README is left alone. `npm run docs` rewrites the tables, `npm run docs
 * -- --check` exits 1 when one is stale (test/unit/readme.test.ts does the same).
 */
import { readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { z } from "zod";
import { TAIL_USAGE } from "../src/cli-usage.ts";
import { CONFIG_FIELDS } from "../src/config/schema.ts";
import { ERROR_CODES, ERRORS } from "../src/domain/errors.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const README_PATH = join(ROOT, "README.md");

/** A table cell: no line breaks, pipes escaped. */
const cell = (text: string): string => text.replace(/\s*\n\s*/g, " ").replaceAll("|", "\\|");

export const errorTable = (): string =>
  [
    "| code | status | meaning |",
    "|---|---|---|",
    ...ERROR_CODES.map((code) => `| \`${code}\` | ${ERRORS[code].status} | ${cell(ERRORS[code].meaning)} |`),
  ].join("\n");

/** The default of a config field, as the schema applies it to an unset variable; undefined when none. */
export const configDefault = (field: z.ZodType): string | undefined => {
  const parsed = field.safeParse(undefined);
  return parsed.success && parsed.data !== undefined ? String(parsed.data) : undefined;
};

export const configTable = (): string =>
  [
    "| Variable | Default | |",
    "|---|---|---|",
    ...Object.entries(CONFIG_FIELDS).map(([name, field]) => {
      const fallback = configDefault(field);
      return `| \`${name}\` | ${fallback === undefined ? "unset" : `\`${fallback}\``} | ${cell(field.description ?? "")} |`;
    }),
  ].join("\n");

/** What `npx brewcast tail --help` prints. */
export const tailUsage = (): string => `\`\`\`text\n${TAIL_USAGE}\n\`\`\``;

export const GENERATED: Record<string, () => string> = {
  errors: errorTable,
  config: configTable,
  tail: tailUsage,
};

/** The README with every generated block replaced; throws when a marker pair is missing. */
export const renderReadme = (readme: string): string => {
  let out = readme;
  for (const [name, generate] of Object.entries(GENERATED)) {
    const open = `<!-- generated:${name} -->`;
    const close = `<!-- /generated:${name} -->`;
    const start = out.indexOf(open);
    const end = out.indexOf(close);
    if (start === -1 || end === -1 || end < start) {
      throw new Error(`README.md: missing ${open} … ${close}`);
    }
    // Blank lines around the table: a comment line right after a table would become one of its rows.
    out = `${out.slice(0, start + open.length)}\n\n${generate()}\n\n${out.slice(end)}`;
  }
  return out;
};

const main = async (argv: string[]): Promise<number> => {
  const check = argv.includes("--check");
  const unknown = argv.filter((arg) => arg !== "--check");
  if (unknown.length > 0) {
    process.stderr.write(`generate-docs: unknown argument ${unknown.join(" ")}; usage: [--check]\n`);
    return 2;
  }
  const current = await readFile(README_PATH, "utf8");
  const next = renderReadme(current);
  if (current === next) {
    process.stdout.write("README.md: up to date\n");
    return 0;
  }
  if (check) {
    process.stderr.write(
      "generate-docs: README.md tables are stale; run `npm run docs` and commit the result\n",
    );
    return 1;
  }
  await writeFile(README_PATH, next);
  process.stdout.write("README.md: written\n");
  return 0;
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
