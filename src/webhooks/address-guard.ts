/**
 * The SSRF guard of webhook URLs: which URL may be called, and the one
 * address to connect to.
 *
 * A partner chooses the URL, so without this guard brewcast would POST to
 * whatever it names: its own loopback, the cloud metadata service
 * (169.254.169.254), the operator's private networks. Rules:
 * - https only; no user name or password in the URL;
 * - the host is resolved once here and every address it resolves to must be
 *   public unicast (ipaddr.js `range()` is `unicast`; IPv6 also inside
 *   2000::/3, the global unicast block, which leaves out IPv4-compatible
 *   `::a.b.c.d`); IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is judged as the IPv4
 *   address it maps (`ipaddr.process`); NAT64, 6to4 and Teredo forms, which
 *   embed an IPv4 address, are refused outright;
 * - the caller connects to the address returned here, never resolving again
 *   (see sender.ts), so DNS rebinding cannot swap it after the check;
 * - networks in BREWCAST_WEBHOOK_ALLOW_NETS (operator-only: development and
 *   tests) are let through, plain http included;
 * - a URL that passed is not checked again for `passedForMs` (30 s, as a DNS
 *   cache would keep the answer): the check is a tenth of a millisecond of each
 *   delivery otherwise. The connection still goes to the address that was
 *   checked, so a rebinding within that time changes nothing; a refusal is
 *   never kept.
 *
 * Imports: ipaddr.js and node:dns only.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;
export type AllowNet = [IpAddress, number];

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has (injectable for tests). */
export type Resolve = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolve: Resolve = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((entry) => ({
    address: entry.address,
    family: entry.family === 6 ? 6 : 4,
  }));

/** A URL the guard refused, with the reason a partner or operator can act on. */
export class WebhookAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookAddressError";
  }
}

/** Parses a comma- or space-separated CIDR list (`10.0.0.0/8, ::1/128`); a bare address is /32 or /128. */
export const parseAllowNets = (text: string | undefined): AllowNet[] => {
  if (!text) return [];
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((entry) => {
      try {
        if (entry.includes("/")) return ipaddr.parseCIDR(entry);
        const address = ipaddr.parse(entry);
        return [address, address.kind() === "ipv4" ? 32 : 128] as AllowNet;
      } catch {
        throw new Error(`not a CIDR network: ${entry}`);
      }
    });
};

export const formatAllowNets = (nets: AllowNet[]): string[] =>
  nets.map(([address, bits]) => `${address.toString()}/${bits}`);

const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR("2000::/3");

const inAllowNets = (address: IpAddress, nets: AllowNet[]): boolean =>
  nets.some(([net, bits]) => net.kind() === address.kind() && address.match([net, bits] as never));

export type AddressVerdict = { ok: true; viaAllowNet: boolean } | { ok: false; reason: string };

/** Judges one address: public unicast, or inside an allowed network. */
export const checkAddress = (text: string, allowNets: AllowNet[] = []): AddressVerdict => {
  let raw: IpAddress;
  try {
    raw = ipaddr.parse(text);
  } catch {
    return { ok: false, reason: `${text} is not an IP address` };
  }
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) is the IPv4 address it carries.
  const address = ipaddr.process(text);
  if (inAllowNets(address, allowNets) || inAllowNets(raw, allowNets)) return { ok: true, viaAllowNet: true };
  const range = address.range();
  if (range !== "unicast") return { ok: false, reason: `${text} is a ${range} address` };
  if (address.kind() === "ipv6" && !address.match(GLOBAL_UNICAST_V6 as never)) {
    return { ok: false, reason: `${text} is not a global unicast IPv6 address` };
  }
  return { ok: true, viaAllowNet: false };
};

export interface CheckedTarget {
  url: URL;
  /** The host name as written (SNI and Host for https), without IPv6 brackets. */
  hostname: string;
  /** The one address to connect to. */
  address: string;
  family: 4 | 6;
  viaAllowNet: boolean;
}

export interface AddressGuardOptions {
  allowNets?: AllowNet[];
  resolve?: Resolve;
  /** How long a URL that passed is trusted without a new check (ms; 0: always check). */
  passedForMs?: number;
  now?: () => number;
}

/** URLs whose pass is kept at once; beyond it the oldest is forgotten. */
const PASSED_MAX = 10_000;

export interface AddressGuard {
  /** Resolves and checks the URL; WebhookAddressError when it may not be called. */
  check(url: string): Promise<CheckedTarget>;
  /**
   * The pass `check` kept for this URL while it is still valid, else undefined (then call `check`).
   * Synchronous, so a delivery whose URL passed recently is not held back by a promise.
   */
  kept(url: string): CheckedTarget | undefined;
  readonly allowNets: AllowNet[];
}

export const createAddressGuard = (options: AddressGuardOptions = {}): AddressGuard => {
  const allowNets = options.allowNets ?? [];
  const resolve = options.resolve ?? systemResolve;
  const passedForMs = options.passedForMs ?? 30_000;
  const now = options.now ?? Date.now;
  const passed = new Map<string, { target: CheckedTarget; until: number }>();
  const check = async (text: string): Promise<CheckedTarget> => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new WebhookAddressError("not an absolute URL");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new WebhookAddressError(`${url.protocol} URLs are not called: use https`);
    }
    if (url.username || url.password)
      throw new WebhookAddressError("a URL must not carry a user name or password");
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    let addresses: ResolvedAddress[];
    if (ipaddr.isValid(hostname)) {
      addresses = [{ address: hostname, family: ipaddr.parse(hostname).kind() === "ipv6" ? 6 : 4 }];
    } else {
      try {
        addresses = await resolve(hostname);
      } catch (error) {
        throw new WebhookAddressError(
          `${hostname} does not resolve (${(error as NodeJS.ErrnoException).code ?? "error"})`,
        );
      }
      if (addresses.length === 0) throw new WebhookAddressError(`${hostname} does not resolve`);
    }
    // Every address must pass: a name that also resolves to a private address is refused, so
    // which one the connection would have used does not matter.
    let viaAllowNet = false;
    let allInAllowNets = true;
    for (const { address } of addresses) {
      const verdict = checkAddress(address, allowNets);
      if (!verdict.ok) {
        throw new WebhookAddressError(
          hostname === address
            ? `refused: ${verdict.reason}`
            : `refused: ${hostname} resolves to ${verdict.reason}`,
        );
      }
      viaAllowNet ||= verdict.viaAllowNet;
      allInAllowNets &&= verdict.viaAllowNet;
    }
    if (url.protocol === "http:" && !allInAllowNets) {
      throw new WebhookAddressError("plain http is refused: use https");
    }
    const chosen = addresses[0]!;
    return { url, hostname, address: chosen.address, family: chosen.family, viaAllowNet };
  };
  const kept = (text: string): CheckedTarget | undefined => {
    const found = passed.get(text);
    if (found && found.until > now()) return found.target;
    return undefined;
  };
  return {
    allowNets,
    kept,
    async check(text) {
      const found = kept(text);
      if (found) return found;
      passed.delete(text);
      const target = await check(text);
      if (passedForMs > 0) {
        if (passed.size >= PASSED_MAX) passed.delete(passed.keys().next().value as string);
        passed.set(text, { target, until: now() + passedForMs });
      }
      return target;
    },
  };
};
