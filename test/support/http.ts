/**
 * Small helpers for tests that talk to the HTTP app over a real socket.
 */
import type { AddressInfo } from "node:net";
import type { HttpApp } from "../../src/api/app.ts";

/** Listens on a free port of 127.0.0.1 and returns the base URL. */
export const listenApp = async (app: HttpApp): Promise<string> => {
  await app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
};

export interface JsonResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** fetch + JSON body; throws only on network errors, never on a 4xx/5xx. */
export const fetchJson = async <T = unknown>(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<JsonResponse<T>> => {
  const headers: Record<string, string> = { ...init.headers };
  if (init.body !== undefined) headers["content-type"] ??= "application/json";
  const response = await fetch(url, {
    method: init.method ?? "GET",
    headers,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : null) as T };
};
