/**
 * The device-scope rule, in one place: a `backend` credential sees its whole
 * partner; a `device` credential sees only its shop, and another shop does
 * not exist for it (NOT_FOUND, never a hint that it exists). The API, the
 * store and the broker's topic ACL all ask here. Pure: no I/O.
 */
import { BrewcastError } from "./errors.ts";
import type { Principal } from "./partners.ts";

/** What a caller may see: a whole partner, or one of its shops. */
export interface Scope {
  partnerId: string;
  /** Null: the whole partner. */
  shopId: string | null;
}

/** The scope of a principal: its partner, narrowed to its shop for a device credential. */
export const scopeOf = (principal: Principal): Scope => ({
  partnerId: principal.partnerId,
  shopId: principal.kind === "device" ? principal.shopId : null,
});

/**
 * The shop a request may act on: the one asked for (or none, the whole partner) within a
 * partner scope; the scope's own shop within a shop scope. A shop outside the scope is refused
 * as NOT_FOUND, as if it did not exist.
 */
export const shopWithinScope = (scope: Scope, requestedShopId: string | undefined): string | undefined => {
  if (scope.shopId === null) return requestedShopId;
  if (requestedShopId !== undefined && requestedShopId !== scope.shopId) {
    throw new BrewcastError("NOT_FOUND", `no shop ${requestedShopId}`);
  }
  return scope.shopId;
};
