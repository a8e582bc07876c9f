import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { currentTraceparent } from "../../src/telemetry/Tracing.js"

const traceparentIn = (tracing: boolean) =>
  currentTraceparent.pipe(Effect.withSpan("mailroom.email"), Effect.provide(Layer.setTracerEnabled(tracing)))

describe("currentTraceparent", () => {
  it.effect("is the W3C traceparent of the current span when tracing is on", () =>
    Effect.map(traceparentIn(true), (value) => expect(value).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)))

  it.effect("is null when tracing is off, rather than the ids of a no-op span", () =>
    Effect.map(traceparentIn(false), (value) => expect(value).toBeNull()))

  it.effect("is null outside any span", () => Effect.map(currentTraceparent, (value) => expect(value).toBeNull()))
})
