#!/usr/bin/env node
// Part of `npm run build`: tsc emits only JavaScript, but src/store/migrate.ts reads
// its SQL files next to itself (`new URL("./migrations/", import.meta.url)`), so the
// compiled dist/store/migrate.js needs dist/store/migrations/*.sql beside it. Likewise
// src/pages/pages.ts serves the files of src/pages/static/ (the console and kiosk).
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";

const from = new URL("../src/store/migrations/", import.meta.url);
const to = new URL("../dist/store/migrations/", import.meta.url);

// Start clean so a migration deleted or renamed in src/ does not linger in dist/.
rmSync(to, { recursive: true, force: true });
mkdirSync(to, { recursive: true });
const files = readdirSync(from).filter((file) => file.endsWith(".sql"));
if (files.length === 0) {
  process.stderr.write("copy-migrations: no .sql files in src/store/migrations\n");
  process.exit(1);
}
for (const file of files) copyFileSync(new URL(file, from), new URL(file, to));
process.stdout.write(`copy-migrations: ${files.length} file(s) → dist/store/migrations\n`);

const pagesFrom = new URL("../src/pages/static/", import.meta.url);
const pagesTo = new URL("../dist/pages/static/", import.meta.url);
rmSync(pagesTo, { recursive: true, force: true });
mkdirSync(pagesTo, { recursive: true });
const pages = readdirSync(pagesFrom);
for (const file of pages) copyFileSync(new URL(file, pagesFrom), new URL(file, pagesTo));
process.stdout.write(`copy-migrations: ${pages.length} page file(s) → dist/pages/static\n`);
