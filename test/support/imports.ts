/**
 * Reading a source tree's imports as text (no compiler): the layer tests
 * (test/unit/layers.test.ts, test/unit/client-imports.test.ts) use it.
 */
import { readdirSync } from "node:fs";
import path from "node:path";

/** Every .ts/.mts/.js/.mjs file below `dir`. */
export const sourceFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return /\.(ts|mts|js|mjs)$/.test(entry.name) ? [full] : [];
  });

/** Static imports, re-exports, `import type`, dynamic `import()` and `require()`. */
export const specifiers = (source: string): string[] => {
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'"]*?\sfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) found.push(match[1]!);
  return found;
};
