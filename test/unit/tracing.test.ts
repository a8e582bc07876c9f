import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { currentTraceparent, withSpanWhenTracing } from "../../src/telemetry/Tracing.js"

const traceparentIn = (tracing: boolean) =>
  currentTraceparent.pipe(Effect.withSpan("mailroom.email"), Effect.provide(Layer.setTracerEnabled(tracing)))

describe("currentTraceparent", () => {
  it.effect("is the W3C traceparent of the current span when tracing is on", () =>
    Effect.map(traceparentIn(true), (value) => expect(value).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)))

  it.effect("is null when tracing is off, rather than the ids of a no-op span", () =>
    Effect.map(traceparentIn(false), (value) => expect(value).toBeNull()))

  it.effect("is null outside any span", () => Effect.map(currentTraceparent, (value) => expect(value).toBeNull()))
})

describe("withSpanWhenTracing", () => {
  const spanNameIn = (tracing: boolean) =>
    Effect.option(Effect.currentSpan).pipe(
      Effect.map(Option.map((span) => span.name)),
      withSpanWhenTracing("mailroom.email", { attributes: { "mailroom.uid": 7 } }),
      Effect.provide(Layer.setTracerEnabled(tracing))
    )

  it.effect("runs the effect in a span of that name when tracing is on", () =>
    Effect.map(spanNameIn(true), (name) => expect(name).toEqual(Option.some("mailroom.email"))))

  it.effect("runs the effect without any span when tracing is off", () =>
    Effect.map(spanNameIn(false), (name) => expect(name).toEqual(Option.none())))
})
