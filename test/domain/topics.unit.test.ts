import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/domain/partners.ts";
import {
  buildDeviceStatusTopic,
  buildOrderEventTopic,
  buildPartnerCursorTopic,
  buildShopCursorTopic,
  canPublish,
  canSubscribe,
  isValidFilter,
  parseTopic,
  topicMatchesFilter,
} from "../../src/domain/topics.ts";

const CRED = "cr-abcdefghij234567klmn";
const OTHER_CRED = "cr-zzzzzzzzzz234567klmn";
const backend: Principal = { credentialId: CRED, partnerId: "acme", kind: "backend", shopId: null };
const device: Principal = { credentialId: CRED, partnerId: "acme", kind: "device", shopId: "s1" };

describe("topic builders and parser", () => {
  it("builds the contract topics and parses them back", () => {
    expect(buildOrderEventTopic("acme", "s1", "created")).toBe("partners/acme/shops/s1/orders/created");
    expect(buildPartnerCursorTopic("acme")).toBe("partners/acme/cursor");
    expect(buildShopCursorTopic("acme", "s1")).toBe("partners/acme/shops/s1/cursor");
    expect(buildDeviceStatusTopic("acme", CRED)).toBe(`partners/acme/devices/${CRED}/status`);
    expect(parseTopic("partners/acme/shops/s1/orders/status_changed")).toEqual({
      type: "order_event",
      partnerId: "acme",
      shopId: "s1",
      kind: "status_changed",
    });
    expect(parseTopic("partners/acme/cursor")).toEqual({ type: "partner_cursor", partnerId: "acme" });
    expect(parseTopic("partners/acme/shops/s1/cursor")).toEqual({
      type: "shop_cursor",
      partnerId: "acme",
      shopId: "s1",
    });
    expect(parseTopic(`partners/acme/devices/${CRED}/status`)).toEqual({
      type: "device_status",
      partnerId: "acme",
      credentialId: CRED,
    });
  });

  it("refuses ids outside the grammar", () => {
    expect(() => buildOrderEventTopic("Acme", "s1", "created")).toThrow();
    expect(() => buildShopCursorTopic("acme", "s/1")).toThrow();
    expect(() => buildPartnerCursorTopic("+")).toThrow();
    expect(() => buildDeviceStatusTopic("acme", "#")).toThrow();
    for (const topic of [
      "partners/acme",
      "partners/acme/cursor/x",
      "partners/acme/shops/s1/orders/deleted",
      "partners/acme/shops/s1/orders/created/x",
      "partners/+/cursor",
      "partners/acme/devices/not-a-cred/status",
      "/partners/acme/cursor",
      "$SYS/partners/acme/cursor",
    ]) {
      expect(parseTopic(topic), topic).toBeNull();
    }
  });

  it("round-trips every valid order-event topic (property)", () => {
    const slug = fc.stringMatching(/^[a-z0-9-]{1,64}$/);
    fc.assert(
      fc.property(slug, slug, fc.constantFrom("created", "status_changed" as const), (p, s, kind) => {
        expect(parseTopic(buildOrderEventTopic(p, s, kind))).toEqual({
          type: "order_event",
          partnerId: p,
          shopId: s,
          kind,
        });
      }),
    );
  });
});

describe("filter matching [MQTT-4.7]", () => {
  it.each([
    ["#", "a/b", true],
    ["a/#", "a", true],
    ["a/#", "a/b/c", true],
    ["a/+", "a/b", true],
    ["a/+", "a/b/c", false],
    ["+/+", "a/b", true],
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["#", "$SYS/x", false],
    ["+/x", "$SYS/x", false],
    ["$SYS/#", "$SYS/x", true],
    ["a/+/c", "a//c", true],
  ])("%s matches %s: %s", (filter, topic, expected) => {
    expect(topicMatchesFilter(filter, topic)).toBe(expected);
  });

  it("validates filters", () => {
    for (const good of ["#", "a/#", "+", "a/+/b", "partners/acme/shops/s1/#"])
      expect(isValidFilter(good)).toBe(true);
    for (const bad of ["", "a/#/b", "a#", "a/b+", "a/+b/c", "x\u0000"])
      expect(isValidFilter(bad)).toBe(false);
  });
});

describe("subscribe ACL", () => {
  const allowedBackend = [
    "partners/acme/#",
    "partners/acme/cursor",
    "partners/acme/+",
    "partners/acme/shops/+/orders/+",
    "partners/acme/shops/s2/cursor",
    "partners/acme/devices/+/status",
  ];
  const deniedBackend = [
    "#",
    "+/acme/#",
    "+/+/+",
    "partners/#",
    "partners/+/cursor",
    "partners/other/#",
    "partners/acme",
    "$SYS/#",
    "partners/acme/#/x",
    "partners/acm+/#",
  ];
  it.each(allowedBackend)("backend may subscribe to %s", (filter) => {
    expect(canSubscribe(backend, filter)).toBe(true);
  });
  it.each(deniedBackend)("backend may not subscribe to %s", (filter) => {
    expect(canSubscribe(backend, filter)).toBe(false);
  });
  it.each(["partners/acme/shops/s1/#", "partners/acme/shops/s1/cursor", "partners/acme/shops/s1/orders/+"])(
    "device may subscribe to %s",
    (filter) => {
      expect(canSubscribe(device, filter)).toBe(true);
    },
  );
  it.each([
    ...deniedBackend,
    "partners/acme/#",
    "partners/acme/cursor",
    "partners/acme/shops/+/orders/created",
    "partners/acme/shops/s2/#",
    "partners/acme/shops/#",
    "partners/acme/devices/+/status",
    "partners/acme/shops/s1",
  ])("device may not subscribe to %s", (filter) => {
    expect(canSubscribe(device, filter)).toBe(false);
  });

  it("an allowed filter never matches a topic outside the principal's scope (property)", () => {
    const level = fc.constantFrom(
      "partners",
      "acme",
      "other",
      "shops",
      "s1",
      "s2",
      "+",
      "#",
      "cursor",
      "$SYS",
    );
    const filter = fc.array(level, { minLength: 1, maxLength: 6 }).map((l) => l.join("/"));
    const topic = fc
      .array(fc.constantFrom("partners", "acme", "other", "shops", "s1", "s2", "cursor", "x", "$SYS"), {
        minLength: 1,
        maxLength: 6,
      })
      .map((l) => l.join("/"));
    fc.assert(
      fc.property(fc.constantFrom(backend, device), filter, topic, (principal, f, t) => {
        if (!canSubscribe(principal, f) || !topicMatchesFilter(f, t)) return;
        const scope = principal.kind === "device" ? "partners/acme/shops/s1/" : "partners/acme/";
        expect(t.startsWith(scope)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });
});

describe("publish ACL", () => {
  it("allows only the principal's own status topic", () => {
    expect(canPublish(device, `partners/acme/devices/${CRED}/status`)).toBe(true);
    expect(canPublish(backend, `partners/acme/devices/${CRED}/status`)).toBe(true);
    for (const topic of [
      `partners/acme/devices/${OTHER_CRED}/status`,
      `partners/other/devices/${CRED}/status`,
      "partners/acme/shops/s1/orders/created",
      "partners/acme/cursor",
      "partners/acme/shops/s1/cursor",
      "$SYS/x",
      `partners/acme/devices/${CRED}/status/x`,
      `partners/acme/devices/+/status`,
    ]) {
      expect(canPublish(device, topic), topic).toBe(false);
    }
  });
});
