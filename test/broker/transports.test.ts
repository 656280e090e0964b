import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildShopCursorTopic } from "../../src/domain/topics.ts";
import type { SeededPartner } from "../support/fixtures.ts";
import { closed, collect, connackCode, connect, login, subscribeGranted } from "../support/mqtt.ts";
import { type Harness, startHarness } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "brewcast-tls-"));
const file = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });

const selfSigned = (name: string, subject: string) =>
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    file(`${name}.key`),
    "-out",
    file(`${name}.pem`),
    "-days",
    "2",
    "-subj",
    subject,
  );

/** A CA, a server certificate for 127.0.0.1, a client certificate from the CA, and a self-signed stranger. */
const makeCertificates = () => {
  selfSigned("ca", "/CN=brewcast test CA");
  writeFileSync(file("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const name of ["server", "client"]) {
    openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      file(`${name}.key`),
      "-out",
      file(`${name}.csr`),
      "-subj",
      `/CN=${name === "server" ? "127.0.0.1" : "kiosk"}`,
    );
    openssl(
      "x509",
      "-req",
      "-in",
      file(`${name}.csr`),
      "-CA",
      file("ca.pem"),
      "-CAkey",
      file("ca.key"),
      "-CAcreateserial",
      "-out",
      file(`${name}.pem`),
      "-days",
      "2",
      ...(name === "server" ? ["-extfile", file("san.ext")] : []),
    );
  }
  selfSigned("stranger", "/CN=stranger");
};

let h: Harness;
let p: SeededPartner;
let httpServer: http.Server;
let wsUrl: string;
let mqttsUrl: string;

beforeAll(async () => {
  makeCertificates();
  h = await startHarness({
    mqttsPort: 0,
    tls: { cert: file("server.pem"), key: file("server.key"), ca: file("ca.pem") },
  });
  p = await h.seed(1);
  httpServer = http.createServer((_req, res) => res.writeHead(404).end());
  h.broker.attachWebSocket(httpServer);
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  wsUrl = `ws://127.0.0.1:${(httpServer.address() as AddressInfo).port}/mqtt`;
  mqttsUrl = `mqtts://127.0.0.1:${h.broker.ports.mqtts}`;
}, 60_000);
afterAll(async () => {
  await h?.close();
  httpServer?.closeAllConnections();
  await new Promise<void>((resolve) => (httpServer ? httpServer.close(() => resolve()) : resolve()));
  rmSync(dir, { recursive: true, force: true });
});

const roundTrip = async (client: Awaited<ReturnType<typeof connect>>, shop = "shop-1") => {
  const got = collect(client);
  expect(await subscribeGranted(client, `partners/${p.id}/shops/${shop}/cursor`, 1)).toBe(1);
  await h.broker.publish({ topic: buildShopCursorTopic(p.id, shop), payload: "hi", qos: 1, retain: false });
  await got.waitFor(1);
  expect(got.messages[0]!.payload).toBe("hi");
};

describe("WebSocket at /mqtt", () => {
  it("logs in, subscribes and receives; bad credentials get 4; ACLs apply", async () => {
    const client = await login(wsUrl, p.devices[0]!);
    await roundTrip(client);
    expect(await subscribeGranted(client, `partners/${p.id}/#`, 1)).toBe(128);
    client.end(true);
    expect(await connackCode(wsUrl, { username: p.backend.id, password: "nope" })).toBe(4);
  });

  it("closes a WebSocket connection that sends a packet over the limit", async () => {
    const client = await login(wsUrl, p.devices[0]!);
    const gone = closed(client);
    client.publish(`partners/${p.id}/devices/${p.devices[0]!.id}/status`, Buffer.alloc(70_000), { qos: 0 });
    await gone;
  });
});

describe("TLS and mutual TLS", () => {
  const ca = () => readFileSync(file("ca.pem"));

  it("logs in over TLS with a password", async () => {
    const client = await login(mqttsUrl, p.backend, { ca: ca(), rejectUnauthorized: true });
    await roundTrip(client);
    client.end(true);
  });

  it("logs in with a registered client certificate and no password; unregistered gets 4", async () => {
    const cert = readFileSync(file("client.pem"));
    const key = readFileSync(file("client.key"));
    // Not yet registered: refused.
    expect(await connackCode(mqttsUrl, { ca: ca(), cert, key })).toBe(4);
    const fingerprint = new X509Certificate(cert).fingerprint256;
    await h.credentials.registerCertificate(p.devices[0]!.id, fingerprint);
    const client = await connect(mqttsUrl, { ca: ca(), cert, key });
    await roundTrip(client);
    // It is that device: its shop only.
    expect(await subscribeGranted(client, `partners/${p.id}/#`, 1)).toBe(128);
    client.end(true);
    // A username naming another credential is refused.
    expect(await connackCode(mqttsUrl, { ca: ca(), cert, key, username: p.backend.id })).toBe(4);
    // Revoked: 5.
    await h.credentials.revoke(p.devices[0]!.id);
    expect(await connackCode(mqttsUrl, { ca: ca(), cert, key })).toBe(5);
  });

  it("a certificate not issued by the CA does not log in, even with its fingerprint registered", async () => {
    const cert = readFileSync(file("stranger.pem"));
    const key = readFileSync(file("stranger.key"));
    await h.credentials.registerCertificate(p.backend.id, new X509Certificate(cert).fingerprint256);
    expect(await connackCode(mqttsUrl, { ca: ca(), cert, key })).toBe(4);
  });
});
