/**
 * The README's generated tables say what the code does: the error table lists
 * exactly the registry's codes with their statuses, the configuration table
 * exactly the config schema's variables with their defaults, and
 * `npm run docs -- --check` would pass (regenerating changes nothing).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configDefault, README_PATH, renderReadme } from "../../scripts/generate-docs.ts";
import { CONFIG_FIELDS } from "../../src/config/schema.ts";
import { ERROR_CODES, ERRORS, type ErrorCode } from "../../src/domain/errors.ts";
import { cursorSchema, orderEventSchema } from "../../src/domain/events.ts";
import { MAX_ITEMS, MAX_QUANTITY } from "../../src/domain/orders.ts";
import { buildOrderEventTopic } from "../../src/domain/topics.ts";

const readme = readFileSync(README_PATH, "utf8");

/** The rows of the first Markdown table after a heading, as arrays of trimmed cells. */
const tableUnder = (heading: string): string[][] => {
  const start = readme.indexOf(`\n${heading}\n`);
  expect(start, `README has "${heading}"`).toBeGreaterThan(-1);
  const lines = readme.slice(start).split("\n").slice(2);
  const first = lines.findIndex((line) => line.startsWith("|"));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
  }
  return rows;
};

const unquote = (text: string): string => text.replace(/^`(.*)`$/, "$1");

describe("README.md", () => {
  it("is current: `npm run docs` changes nothing", () => {
    expect(renderReadme(readme), "README tables are stale: run `npm run docs` and commit").toBe(readme);
  });

  it("lists exactly the registry's error codes, with their statuses, under ### Error codes", () => {
    const rows = tableUnder("### Error codes");
    expect(rows.map((row) => unquote(row[0]!))).toEqual(ERROR_CODES);
    for (const [code, status] of rows)
      expect(Number(status), code).toBe(ERRORS[unquote(code!) as ErrorCode].status);
  });

  it("lists exactly the config schema's variables, with their defaults, under ### Configuration", () => {
    const rows = tableUnder("### Configuration");
    expect(rows.map((row) => unquote(row[0]!))).toEqual(Object.keys(CONFIG_FIELDS));
    for (const [name, fallback] of rows) {
      const field = CONFIG_FIELDS[unquote(name!) as keyof typeof CONFIG_FIELDS];
      expect(fallback === "unset" ? undefined : unquote(fallback!), name).toBe(configDefault(field));
    }
  });

  it("refuses a README without the markers", () => {
    expect(() => renderReadme("# no markers\n")).toThrow(/generated:errors/);
  });

  it("states sizes in bytes that hold for the largest payloads the schemas allow", () => {
    const id = "a".repeat(64);
    const at = new Date(Date.UTC(2026, 11, 31, 23, 59, 59, 999)).toISOString();
    const uuid = "ffffffff-ffff-4fff-bfff-ffffffffffff";
    const max = Number.MAX_SAFE_INTEGER;
    const event = orderEventSchema.parse({
      seq: max,
      epoch: uuid,
      type: "order.status_changed",
      partner_id: id,
      shop_id: id,
      order_id: uuid,
      occurred_at: at,
      prev_shop_seq: max,
      order: {
        id: uuid,
        partner_id: id,
        shop_id: id,
        status: "picked_up",
        items: Array.from({ length: MAX_ITEMS }, () => ({ sku: "S".repeat(64), quantity: MAX_QUANTITY })),
        created_at: at,
        updated_at: at,
        last_seq: max,
      },
    });
    const eventBytes = Buffer.byteLength(JSON.stringify(event));
    const cursorBytes = Buffer.byteLength(
      JSON.stringify(cursorSchema.parse({ seq: max, epoch: uuid, occurred_at: at, published_at: at })),
    );
    const topicBytes = Buffer.byteLength(buildOrderEventTopic(id, id, "status_changed"));
    expect(eventBytes).toBeLessThanOrEqual(6_144);
    expect(Math.abs(eventBytes - 5_200)).toBeLessThan(100); // "about 5,200"
    expect(cursorBytes).toBeLessThanOrEqual(160);
    expect(topicBytes).toBe(166);
    expect(readme).toContain(
      "An event is at most 6,144 bytes of JSON (a 50-item order with 64-byte ids and SKUs is about 5,200), a cursor at most 160 bytes, an event topic at most 166 bytes.",
    );
  });
});
