import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger } from "effect"
import { vi } from "vitest"
import { textLogger } from "../../src/telemetry/Logging.js"

const lineFrom = (tracing: boolean) =>
  Effect.gen(function*() {
    const spy = vi.spyOn(globalThis.console, "error").mockImplementation(() => {})
    yield* Effect.logInfo("Connected to IMAP").pipe(Effect.annotateLogs("trigger", "start"), Effect.withSpan("Imap.connect"))
    const line = String(spy.mock.calls.at(-1)?.[0])
    spy.mockRestore()
    return line
  }).pipe(Effect.provide(Layer.merge(Logger.replace(Logger.defaultLogger, textLogger), Layer.setTracerEnabled(tracing))))

describe("textLogger", () => {
  it.effect("ends a line with the trace and span ids of its span when tracing is on", () =>
    Effect.map(lineFrom(true), (line) => expect(line).toMatch(/INFO  Connected to IMAP trigger=start trace_id=[0-9a-f]{32} span_id=[0-9a-f]{16}$/)))

  it.effect("leaves the ids out when tracing is off, rather than printing no-op ids", () =>
    Effect.map(lineFrom(false), (line) => expect(line).toMatch(/INFO  Connected to IMAP trigger=start$/)))
})
