import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Layer, Logger, LogLevel } from "effect"
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

describe("textLogger and what a sender wrote", () => {
  const linesOf = (effect: Effect.Effect<void>) =>
    Effect.gen(function*() {
      const spy = vi.spyOn(globalThis.console, "error").mockImplementation(() => {})
      yield* effect
      const written = spy.mock.calls.map((call) => String(call[0]))
      spy.mockRestore()
      return written
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, textLogger)))

  it.effect("writes a subject's line breaks, escape codes and bidi controls as escapes: one line, nothing forged, nothing sent to the terminal", () =>
    Effect.gen(function*() {
      const subject = "Hi\r\n2026-12-06T00:00:00.000Z ERROR mailroom lost every mail\u001b[2J\u202eevil\u2028"
      const [line, ...more] = yield* linesOf(Effect.logDebug(`Created ticket t1 from UID 7: ${subject}`).pipe(
        Effect.annotateLogs("subject", subject),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      ))
      expect(more).toEqual([])
      expect(line).not.toMatch(/[\u0000-\u001f\u202e\u2028]/)
      expect(line).toContain("from UID 7: Hi\\u000d\\u000a2026-12-06T00:00:00.000Z ERROR mailroom lost every mail\\u001b[2J\\u202eevil\\u2028 subject=Hi\\u000d")
    }))

  it.effect("keeps the line breaks of a failure's own stack trace", () =>
    Effect.map(
      linesOf(Effect.logError("The relay stopped", Cause.die(new Error("boom")))),
      ([line]) => {
        expect(line).toContain("The relay stopped")
        expect(line!.split("\n").length).toBeGreaterThan(2)
      }
    ))
})
