/**
 * The SSRF guard of webhook URLs, without services: which addresses are
 * refused (ipaddr.js ranges, mapped and embedded IPv4), http only inside
 * allowed networks, and a name judged by every address it resolves to
 * (real resolution of `localhost`, and an injected resolver).
 */
import { describe, expect, it } from "vitest";
import {
  checkAddress,
  createAddressGuard,
  parseAllowNets,
  WebhookAddressError,
} from "../../src/webhooks/address-guard.ts";

describe("checkAddress", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["10.0.0.1", "private"],
    ["172.16.5.4", "private"],
    ["192.168.1.1", "private"],
    ["169.254.169.254", "linkLocal"],
    ["100.64.0.1", "carrierGradeNat"],
    ["224.0.0.1", "multicast"],
    ["0.0.0.0", "unspecified"],
    ["255.255.255.255", "broadcast"],
    ["192.0.2.10", "reserved"],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["fe80::1", "linkLocal"],
    ["fc00::1", "uniqueLocal"],
    ["fd12:3456::1", "uniqueLocal"],
    ["ff02::1", "multicast"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "linkLocal"],
    ["64:ff9b::7f00:1", "rfc6052"],
    ["2002:7f00:1::", "6to4"],
    ["2001:0:4136:e378::1", "teredo"],
  ])("refuses %s (%s)", (address, range) => {
    const verdict = checkAddress(address);
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toContain(range);
  });

  it("refuses IPv4-compatible IPv6 (::127.0.0.1), outside global unicast", () => {
    expect(checkAddress("::127.0.0.1").ok).toBe(false);
  });

  it.each(["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "2606:4700::1111"])(
    "accepts public %s",
    (address) => {
      expect(checkAddress(address)).toEqual({ ok: true, viaAllowNet: false });
    },
  );

  it("lets allowed networks through, mapped forms included", () => {
    const nets = parseAllowNets("127.0.0.0/8, ::1/128");
    expect(checkAddress("127.0.0.1", nets)).toEqual({ ok: true, viaAllowNet: true });
    expect(checkAddress("::ffff:127.0.0.1", nets)).toEqual({ ok: true, viaAllowNet: true });
    expect(checkAddress("::1", nets)).toEqual({ ok: true, viaAllowNet: true });
    expect(checkAddress("10.0.0.1", nets).ok).toBe(false);
  });

  it("parses CIDR lists and refuses what is not one", () => {
    expect(parseAllowNets(undefined)).toEqual([]);
    expect(parseAllowNets("10.1.2.3").map(([a, b]) => `${a}/${b}`)).toEqual(["10.1.2.3/32"]);
    expect(() => parseAllowNets("10.0.0.0/33")).toThrow(/not a CIDR/);
    expect(() => parseAllowNets("example.com")).toThrow(/not a CIDR/);
  });
});

describe("createAddressGuard().check", () => {
  const guard = createAddressGuard();
  const refused = async (url: string, reason: RegExp) => {
    const error = await guard.check(url).catch((e: unknown) => e);
    expect(error, url).toBeInstanceOf(WebhookAddressError);
    expect((error as Error).message, url).toMatch(reason);
  };

  it("refuses private, loopback, metadata and mapped literals", async () => {
    await refused("https://127.0.0.1/hook", /loopback/);
    await refused("https://10.0.0.1/hook", /private/);
    await refused("https://169.254.169.254/latest/meta-data/", /linkLocal/);
    await refused("https://[::ffff:127.0.0.1]/hook", /loopback/);
    await refused("https://[::1]:8443/hook", /loopback/);
    // The URL parser turns these spellings into 127.0.0.1 before the guard sees them.
    await refused("https://2130706433/hook", /loopback/);
    await refused("https://0x7f.1/hook", /loopback/);
  });

  it("refuses a name that resolves to loopback (real resolution of localhost)", async () => {
    await refused("https://localhost/hook", /localhost resolves to .*loopback/);
  });

  it("refuses a name when any of its addresses is private (injected resolver)", async () => {
    const mixed = createAddressGuard({
      resolve: async () => [
        { address: "93.184.216.34", family: 4 },
        { address: "10.1.2.3", family: 4 },
      ],
    });
    await expect(mixed.check("https://hooks.partner.example/x")).rejects.toThrow(/resolves to 10\.1\.2\.3/);
    const none = createAddressGuard({ resolve: async () => [] });
    await expect(none.check("https://nowhere.example/")).rejects.toThrow(/does not resolve/);
  });

  it("accepts https to a public address and returns the address to connect to", async () => {
    const pinned = createAddressGuard({ resolve: async () => [{ address: "93.184.216.34", family: 4 }] });
    const target = await pinned.check("https://hooks.partner.example/x");
    expect(target).toMatchObject({ hostname: "hooks.partner.example", address: "93.184.216.34", family: 4 });
    expect(target.viaAllowNet).toBe(false);
  });

  it("refuses plain http, other schemes and credentials in the URL", async () => {
    await refused("http://8.8.8.8/hook", /plain http/);
    await refused("ftp://8.8.8.8/hook", /use https/);
    await refused("https://user:pass@8.8.8.8/hook", /user name or password/);
    await refused("not a url", /absolute URL/);
  });

  it("keeps a pass for passedForMs (one resolution), never a refusal; a name gone private is refused after it", async () => {
    let clock = 0;
    let answer = "10.1.2.3";
    let resolutions = 0;
    const guard = createAddressGuard({
      passedForMs: 1_000,
      now: () => clock,
      resolve: async () => {
        resolutions++;
        return [{ address: answer, family: 4 }];
      },
    });
    await expect(guard.check("https://hooks.partner.example/x")).rejects.toThrow(/private/);
    answer = "93.184.216.34";
    expect((await guard.check("https://hooks.partner.example/x")).address).toBe("93.184.216.34");
    answer = "10.9.9.9";
    clock = 999;
    expect((await guard.check("https://hooks.partner.example/x")).address).toBe("93.184.216.34");
    expect(resolutions).toBe(2);
    clock = 1_000;
    await expect(guard.check("https://hooks.partner.example/x")).rejects.toThrow(/resolves to 10\.9\.9\.9/);
    expect(resolutions).toBe(3);
  });

  it("lets allowed networks through, plain http included", async () => {
    const local = createAddressGuard({ allowNets: parseAllowNets("127.0.0.0/8") });
    expect((await local.check("http://127.0.0.1:9/hook")).viaAllowNet).toBe(true);
    expect((await local.check("http://[::ffff:127.0.0.1]:9/hook")).viaAllowNet).toBe(true);
    await expect(local.check("http://10.0.0.1/hook")).rejects.toThrow(/private/);
    // http to a public address is still refused: the allowance is for the listed networks only.
    await expect(local.check("http://8.8.8.8/hook")).rejects.toThrow(/plain http/);
  });
});
