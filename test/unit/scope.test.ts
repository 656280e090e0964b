/**
 * The device-scope rule (src/domain/scope.ts): one function, one error code.
 * A device credential sees its shop; another shop is NOT_FOUND, as if it did
 * not exist, over HTTP and in the store; the MQTT topic scope is the same rule.
 */
import { describe, expect, it } from "vitest";
import { BrewcastError } from "../../src/domain/errors.ts";
import type { Principal } from "../../src/domain/partners.ts";
import { scopeOf, shopWithinScope } from "../../src/domain/scope.ts";
import { subscribeScope } from "../../src/domain/topics.ts";

const CRED = "cr-abcdefghij234567klmn";
const backend: Principal = { credentialId: CRED, partnerId: "acme", kind: "backend", shopId: null };
const device: Principal = { credentialId: CRED, partnerId: "acme", kind: "device", shopId: "s1" };

describe("the device-scope rule", () => {
  it("a backend's scope is its partner; a device's, its shop", () => {
    expect(scopeOf(backend)).toEqual({ partnerId: "acme", shopId: null });
    expect(scopeOf(device)).toEqual({ partnerId: "acme", shopId: "s1" });
  });

  it("a backend may name any shop of its partner, or none", () => {
    expect(shopWithinScope(scopeOf(backend), "s2")).toBe("s2");
    expect(shopWithinScope(scopeOf(backend), undefined)).toBeUndefined();
  });

  it("a device is narrowed to its shop, and another shop is NOT_FOUND", () => {
    expect(shopWithinScope(scopeOf(device), undefined)).toBe("s1");
    expect(shopWithinScope(scopeOf(device), "s1")).toBe("s1");
    let refusal: unknown;
    try {
      shopWithinScope(scopeOf(device), "s2");
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(BrewcastError);
    expect((refusal as BrewcastError).code).toBe("NOT_FOUND");
  });

  it("the MQTT topic scope follows the same rule", () => {
    expect(subscribeScope(backend)).toEqual(["partners", "acme"]);
    expect(subscribeScope(device)).toEqual(["partners", "acme", "shops", "s1"]);
  });
});
