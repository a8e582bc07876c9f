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
# glibc hands buffers of 2 MB and more (a batch's Bind message, a large mail) back at once instead of
# keeping them: a 10,000-mail backlog peaks 10–20 MB lower at the same speed (README, Performance).
ENV MALLOC_MMAP_THRESHOLD_=2097152
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY knowledge ./knowledge
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
CMD ["node", "dist/main.js"]
