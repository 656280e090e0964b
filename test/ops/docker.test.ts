/**
 * Docker cannot run on the CI machines, so the Dockerfile and
 * docker-compose.yml are checked by reading them: the compose file with a
 * YAML parser (services, healthchecks, start order, configuration variables
 * that brewcast really reads and accepts, published ports), the Dockerfile
 * for its stages and user, and the HAProxy config with `haproxy -c` when
 * HAProxy is installed.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadConfig } from "../../src/config/load-config.ts";
import { CONFIG_FIELDS } from "../../src/config/schema.ts";
import { fileDescriptorBudget } from "../../src/ops/fd-budget.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (path: string) => readFileSync(new URL(path, ROOT), "utf8");

/** The ports docs/operations.md documents, and nothing else, reach the host. */
const DOCUMENTED_HOST_PORTS = { api: [8080], haproxy: [1883, 8083], mosquitto: [1884] };

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string | number | null>;
  healthcheck?: { test?: unknown };
  depends_on?: Record<string, { condition?: string }>;
  ports?: string[];
  volumes?: string[];
  ulimits?: { nofile?: { soft: number; hard: number } };
}

const COMPOSE_TEXT = read("docker-compose.yml");
const compose = parse(COMPOSE_TEXT, { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const brewcastServices = Object.entries(services).filter(([, s]) => s.image === "brewcast:local");

/** `${VAR}`, `${VAR:-default}`, `${VAR:?message}` as compose interpolates them, with values for the unset ones. */
const interpolate = (value: string, env: Record<string, string>): string =>
  value
    .replace(/\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}/g, (_, name: string, op: string | undefined, rest) =>
      env[name] !== undefined ? env[name] : op?.endsWith("-") ? rest : "",
    )
    .replaceAll("$$", "$");

/** What the operator's shell gives the compose file's required variables. */
const COMPOSE_ANSWERS = {
  BREWCAST_ADMIN_TOKEN: "a-compose-admin-token",
  BREWCAST_BRIDGE_SECRET: "a-compose-bridge-secret",
};

/** A service's environment as compose would hand it over. */
const environmentOf = (service: Service): Record<string, string> =>
  Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([key, value]) => [
      key,
      interpolate(String(value ?? ""), COMPOSE_ANSWERS),
    ]),
  );

const interpolationVariables = [...COMPOSE_TEXT.matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1]!);

describe("docker-compose.yml", () => {
  it("has postgres, redis, two broker nodes, their load balancer, a bridge, the api and a partner's mosquitto", () => {
    expect(Object.keys(services).sort()).toEqual(
      ["api", "bridge", "broker-1", "broker-2", "haproxy", "mosquitto", "postgres", "redis"].sort(),
    );
    expect(Object.fromEntries(brewcastServices.map(([name, s]) => [name, s.command]))).toEqual({
      "broker-1": ["broker"],
      "broker-2": ["broker"],
      bridge: ["bridge"],
      api: ["start"],
    });
    expect(services.mosquitto!.image).toMatch(/^eclipse-mosquitto:2/);
  });

  it("gives every service a healthcheck", () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.healthcheck?.test, `${name} healthcheck`).toBeDefined();
    }
    // The brewcast services check /healthz, which every role serves.
    for (const [name, service] of brewcastServices) {
      expect(JSON.stringify(service.healthcheck!.test), name).toContain("/healthz");
    }
  });

  it("starts each service only after what it needs is healthy", () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dependency, spec] of Object.entries(service.depends_on ?? {})) {
        expect(Object.keys(services), `${name} → ${dependency}`).toContain(dependency);
        expect(spec.condition, `${name} → ${dependency}`).toBe("service_healthy");
      }
    }
    for (const [name, service] of brewcastServices) {
      expect(Object.keys(service.depends_on ?? {}), name).toContain("postgres");
    }
    expect(Object.keys(services["broker-1"]!.depends_on!)).toContain("redis");
    expect(Object.keys(services.haproxy!.depends_on!).sort()).toEqual(["broker-1", "broker-2"]);
  });

  it("sets only variables brewcast reads, with values its config accepts", () => {
    const known = new Set(Object.keys(CONFIG_FIELDS));
    for (const [name, service] of brewcastServices) {
      const env = environmentOf(service);
      for (const key of Object.keys(env)) expect(known, `${name}: ${key}`).toContain(key);
      const loaded = loadConfig(env);
      expect(loaded.unknownVariables, name).toEqual([]);
      expect(loaded.config.DATABASE_URL, name).toMatch(/@postgres:5432\//);
      expect(loaded.config.BREWCAST_HOST, name).toBe("0.0.0.0");
      expect(env.BREWCAST_BRIDGE_SECRET, `${name} shares the bridge identity`).toBe(
        COMPOSE_ANSWERS.BREWCAST_BRIDGE_SECRET,
      );
    }
    for (const name of ["broker-1", "broker-2"]) {
      expect(services[name]!.environment!.REDIS_URL, name).toBe("redis://redis:6379");
    }
    // The bridge and the api publish through the balancer: neither runs an embedded broker.
    for (const name of ["bridge", "api"]) {
      expect(services[name]!.environment!.BREWCAST_MQTT_URL, name).toBe("mqtt://haproxy:1883");
    }
    // Secrets come from the operator's environment; a missing one stops `docker compose up`.
    expect(services.api!.environment!.BREWCAST_ADMIN_TOKEN).toMatch(/^\$\{BREWCAST_ADMIN_TOKEN:\?/);
    expect(String(services.bridge!.environment!.BREWCAST_BRIDGE_SECRET)).toMatch(
      /^\$\{BREWCAST_BRIDGE_SECRET:\?/,
    );
  });

  it("gives every brewcast service more open files than its connection caps need", () => {
    for (const [name, service] of brewcastServices) {
      const env = environmentOf(service);
      const role = service.command?.[0] === "start" ? "all" : (service.command?.[0] as "broker" | "bridge");
      const { needed } = fileDescriptorBudget(loadConfig(env).config, role, undefined);
      expect(service.ulimits?.nofile?.soft, name).toBeGreaterThanOrEqual(needed);
    }
  });

  it("documents every variable it interpolates", () => {
    const docs = read("docs/operations.md");
    for (const name of new Set(interpolationVariables)) expect(docs, name).toContain(name);
  });

  it("publishes only the documented host ports, on 127.0.0.1", () => {
    const published: Record<string, number[]> = {};
    for (const [name, service] of Object.entries(services)) {
      for (const mapping of service.ports ?? []) {
        const match = /^127\.0\.0\.1:(\d+):(\d+)$/.exec(String(mapping));
        expect(match, `${name}: ${mapping}`).not.toBeNull();
        published[name] = [...(published[name] ?? []), Number(match![1])];
      }
    }
    expect(published).toEqual(DOCUMENTED_HOST_PORTS);
    const docs = read("docs/operations.md");
    for (const port of Object.values(DOCUMENTED_HOST_PORTS).flat()) expect(docs).toContain(String(port));
  });

  it("is documented with the images it really uses, service by service", () => {
    const docs = read("docs/operations.md");
    const table = docs.slice(docs.indexOf("| Service | Image | Role |"));
    const documented: Record<string, string> = {};
    for (const line of table.split("\n").slice(2)) {
      if (!line.startsWith("|")) break;
      const [names, image] = line
        .slice(1)
        .split("|")
        .map((cell) => cell.trim());
      for (const name of names!.split(",")) {
        documented[name.trim().replaceAll("`", "")] = image!.replace(/^brewcast `\w+`$/, "brewcast:local");
      }
    }
    expect(documented).toEqual(
      Object.fromEntries(Object.entries(services).map(([name, s]) => [name, s.image])),
    );
  });

  it("mounts files that exist: the shipped Mosquitto configs and the HAProxy config", () => {
    const mounts = Object.values(services).flatMap((s) => s.volumes ?? []);
    const files = mounts
      .map((mount) => interpolate(mount, {}).split(":")[0]!)
      .filter((source) => source.startsWith("./"));
    expect(files.sort()).toEqual(
      [
        "./mosquitto/partner-bridge.conf",
        "./mosquitto/partner-broker.conf",
        "./ops/haproxy/haproxy.cfg",
      ].sort(),
    );
    for (const file of files) expect(existsSync(new URL(file, ROOT)), file).toBe(true);
    expect(mounts).toContain("./mosquitto/partner-broker.conf:/mosquitto/config/mosquitto.conf:ro");
    // partner-broker.conf's include_dir is where the bridge file is mounted.
    expect(read("mosquitto/partner-broker.conf")).toMatch(/^include_dir \/mosquitto\/config\/conf\.d$/m);
    expect(mounts.some((m) => m.endsWith(":/mosquitto/config/conf.d/brewcast.conf:ro"))).toBe(true);
  });
});

const haproxyInstalled = !spawnSync("haproxy", ["-v"], { stdio: "ignore" }).error;
if (!haproxyInstalled) {
  process.stdout.write(
    "test/ops/docker.test.ts: haproxy not installed (Debian: haproxy); `haproxy -c` skipped\n",
  );
}

describe("ops/haproxy/haproxy.cfg", () => {
  const cfg = read("ops/haproxy/haproxy.cfg");

  it("balances MQTT over both broker nodes and has the health endpoint the compose healthcheck calls", () => {
    const servers = [...cfg.matchAll(/^\s*server (\S+) (\S+):(\d+)/gm)].map((m) => `${m[2]}:${m[3]}`);
    expect(new Set(servers)).toEqual(
      new Set(["broker-1:1883", "broker-2:1883", "broker-1:8080", "broker-2:8080"]),
    );
    expect(cfg).toMatch(/^\s*bind :1883$/m);
    expect(cfg).toMatch(/^\s*bind :8083$/m);
    expect(cfg).toMatch(/^\s*bind 127\.0\.0\.1:8404$/m);
    expect(cfg).toMatch(/^\s*monitor-uri \/healthz$/m);
  });

  it.skipIf(!haproxyInstalled)("passes haproxy -c", () => {
    const result = spawnSync("haproxy", ["-c", "-f", new URL("ops/haproxy/haproxy.cfg", ROOT).pathname], {
      encoding: "utf8",
    });
    expect(result.status, result.stderr + result.stdout).toBe(0);
  });
});

describe("Dockerfile", () => {
  const dockerfile = read("Dockerfile");
  const dockerignore = read(".dockerignore")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
  const instructions = dockerfile
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));

  it("builds in one stage and runs production dependencies only, as a non-root user", () => {
    const stages = instructions.filter((i) => i.startsWith("FROM ")).map((i) => i.split(/\s+/).at(-1));
    expect(stages).toEqual(["build", "deps", "runtime"]);
    expect(instructions).toContain("RUN npm run build");
    expect(instructions.some((i) => /^RUN npm ci --omit=dev\b/.test(i))).toBe(true);
    const runtime = instructions.slice(instructions.findIndex((i) => i.endsWith("AS runtime")));
    expect(runtime.filter((i) => i.startsWith("USER ")).at(-1)).toBe("USER node");
    expect(runtime).toContain('ENTRYPOINT ["node", "bin/brewcast.js"]');
    expect(runtime).toContain('CMD ["start"]');
    expect(runtime.some((i) => i.startsWith("HEALTHCHECK ") && i.includes("/healthz"))).toBe(true);
    expect(runtime.join("\n")).toMatch(/BREWCAST_HOST=0\.0\.0\.0/);
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
  });

  it("copies only files that exist and that .dockerignore lets through", () => {
    const sources = instructions
      .filter((i) => i.startsWith("COPY ") && !i.includes("--from="))
      .flatMap((i) =>
        i
          .split(/\s+/)
          .slice(1, -1)
          .filter((part) => !part.startsWith("--")),
      );
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(existsSync(new URL(source, ROOT)), source).toBe(true);
      const top = source.replace(/\/$/, "").split("/")[0]!;
      expect(dockerignore, source).not.toContain(top);
    }
    // The build reads the migrations and writes them beside the compiled migrate.js.
    expect(JSON.parse(read("package.json")).scripts.build).toBe(
      "tsc -p tsconfig.build.json && node scripts/copy-migrations.mjs",
    );
  });

  it("needs no devDependency at run time: every package src/ imports is a production dependency", () => {
    const pkg = JSON.parse(read("package.json")) as { dependencies: Record<string, string> };
    const listing = spawnSync("git", ["ls-files", "src"], { cwd: ROOT, encoding: "utf8" }).stdout;
    const files = listing.split("\n").filter((f) => f.endsWith(".ts"));
    expect(files.length).toBeGreaterThan(10);
    const builtins = new Set(builtinModules);
    const undeclared = new Map<string, string>();
    for (const file of files) {
      if (!existsSync(new URL(file, ROOT))) continue;
      const text = read(file);
      const specifiers = [
        ...[...text.matchAll(/^\s*(?:import|export)\s(?!type\s)[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]!),
        ...[...text.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]!),
      ];
      for (const specifier of specifiers) {
        if (specifier.startsWith(".") || specifier.startsWith("node:") || builtins.has(specifier)) continue;
        const name = specifier.startsWith("@")
          ? specifier.split("/").slice(0, 2).join("/")
          : specifier.split("/")[0]!;
        if (!(name in pkg.dependencies)) undeclared.set(name, file);
      }
    }
    expect([...undeclared.keys()]).toEqual([]);
  });
});
