/**
 * The HTTP side of the health endpoints, imported by `serveHealth` only when HEALTH_PORT is set.
 */
import { createServer } from "node:http"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer } from "effect"
import { StartupRefused } from "../cli/Fatal.js"
import type { Check } from "./Health.js"
import { HealthState, livenessChecks, readinessChecks } from "./Health.js"
import { prometheusContentType, prometheusText } from "./Prometheus.js"

const verdict = (checks: ReadonlyArray<Check>, word: "alive" | "ready") =>
  HttpServerResponse.unsafeJson(
    {
      [word]: checks.every((c) => c.ok),
      failed: checks.filter((c) => !c.ok).map((c) => c.name),
      checks: Object.fromEntries(checks.map((c) => [c.name, c.detail]))
    },
    { status: checks.every((c) => c.ok) ? 200 : 503 }
  )

export interface ServeOptions {
  readonly host: string
  readonly port: number
  readonly maxOutboxLag: number
  readonly relayConsumer: string | undefined
}

/** Serves /healthz, /readyz and /metrics until interrupted. */
export const serve = (options: ServeOptions) =>
  Effect.gen(function*() {
    const { host, port } = options
    const state = yield* HealthState
    const router = HttpRouter.empty.pipe(
      HttpRouter.get("/healthz", Effect.map(state.snapshot, (snapshot) => verdict(livenessChecks(snapshot), "alive"))),
      HttpRouter.get(
        "/readyz",
        Effect.map(readinessChecks(options.relayConsumer, options.maxOutboxLag), (checks) => verdict(checks, "ready"))
      ),
      HttpRouter.get("/metrics", Effect.map(prometheusText, (text) => HttpServerResponse.text(text, { contentType: prometheusContentType })))
    )
    // Probes come every few seconds: a trace each would bury the traces worth reading.
    const server = HttpServer.serve(router).pipe(
      HttpMiddleware.withTracerDisabledWhen(() => true),
      Layer.provide(NodeHttpServer.layer(() => createServer(), { port, host }))
    )
    yield* Effect.scoped(Effect.gen(function*() {
      yield* Layer.build(server).pipe(
        Effect.catchTag("ServeError", (error) =>
          new StartupRefused({
            reason: `cannot serve the health endpoints on ${host}:${port} (${String(error.cause)}): choose another HEALTH_PORT or unset it`
          }))
      )
      yield* Effect.logInfo(`Health endpoints on http://${host}:${port}: /healthz, /readyz, /metrics`)
      return yield* Effect.never
    }))
  })
