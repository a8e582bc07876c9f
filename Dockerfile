# syntax=docker/dockerfile:1
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-slim
ENV NODE_ENV=production MAILROOM_DATA_DIR=/data KNOWLEDGE_DIR=/app/knowledge
# Memory (README, Performance; `npm run bench` measures a row with these two): glibc hands buffers of
# 2 MB and more (a batch's Bind message, a large mail) back at once instead of keeping them. V8's
# young generation mailroom keeps at its first size itself (lib/HeapGrowth); the 4 MB cap on its
# semi-spaces stays as the bound should that ever change. A 10,000-mail backlog peaked at 173 MB with
# these against 204 MB without (2026-12-07).
ENV MALLOC_MMAP_THRESHOLD_=2097152 NODE_OPTIONS=--max-semi-space-size=4
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY knowledge ./knowledge
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# /healthz, /readyz and /metrics. Loopback by default; docker-compose.yml sets HEALTH_HOST=0.0.0.0 to publish it.
ENV HEALTH_PORT=9464
EXPOSE 9464
# node:20-slim has no curl: Node's own fetch asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.HEALTH_PORT + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/main.js"]
