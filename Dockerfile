# syntax=docker/dockerfile:1
# brewcast: one image for every role. The command picks it:
#   start (default)  API + bridge; with BREWCAST_MQTT_URL set, no embedded broker
#   broker           the MQTT broker alone (several share REDIS_URL behind a TCP load balancer)
#   bridge           the bridge alone, publishing to BREWCAST_MQTT_URL
#   migrate, check-config
# Build: docker build -t brewcast .   Run: docker run -p 8080:8080 -p 1883:1883 brewcast
# See docs/operations.md ("Docker").

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: TypeScript → dist/ (with the SQL migrations copied beside dist/store/migrate.js)
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/copy-migrations.mjs scripts/
COPY src/ src/
RUN npm run build

# ---- production dependencies only
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    BREWCAST_HOST=0.0.0.0 \
    BREWCAST_HTTP_PORT=8080 \
    BREWCAST_MQTT_PORT=1883 \
    BREWCAST_DATA_DIR=/data
WORKDIR /app
# The embedded database (used only when DATABASE_URL is unset) lives in /data.
RUN mkdir -p /data && chown node:node /data
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root bin/ ./bin/
# The code is root-owned and read-only to the process; it runs as the image's unprivileged `node` user.
USER node
VOLUME ["/data"]
EXPOSE 8080 1883
# Liveness: /healthz on the HTTP port (every role serves it). Readiness (/readyz) is for load balancers.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.BREWCAST_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Open files: an image cannot raise its limit; run it with `--ulimit nofile=65536:65536` (the compose
# file does), above the budget of docs/operations.md (11,200 with the default connection caps).
# The CLI handles SIGTERM itself (graceful stop within 10 s), so node can be PID 1.
ENTRYPOINT ["node", "bin/brewcast.js"]
CMD ["start"]
