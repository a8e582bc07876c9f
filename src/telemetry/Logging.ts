import { Cause, Effect, FiberRef, FiberRefs, HashMap, Inspectable, Layer, Logger, LogLevel, Option } from "effect"
import { includePii } from "../config/Telemetry.js"
import { logFormat, logLevel } from "../config/Config.js"
import { recordedSpan } from "./Tracing.js"
import { visible } from "../lib/Visible.js"

const render = (value: unknown): string =>
  Array.isArray(value) ? value.map(render).join(" ") : typeof value === "string" ? value : Inspectable.toStringUnknown(value)

/** The span a log line was written in, so that a line leads to its trace in Jaeger. */
const spanOf = (context: FiberRefs.FiberRefs) => recordedSpan(FiberRefs.getOrDefault(context, FiberRef.currentContext))

/** `2026-11-24T10:00:00.000Z INFO  Connected to IMAP: support@example.com trigger=start trace_id=… span_id=…` */
export const textLogger = Logger.make(({ annotations, cause, context, date, logLevel, message }) => {
  const span = spanOf(context)
  const fields = [
    ...HashMap.toEntries(annotations),
    ...Option.match(span, { onNone: () => [], onSome: (s) => [["trace_id", s.traceId], ["span_id", s.spanId]] as const })
  ].map(([key, value]) => ` ${key}=${visible(render(value))}`).join("")
  // A line names subjects and headers a sender wrote (`LOG_FORMAT=json` escapes them anyway); a
  // failure's cause keeps its line breaks, as it is mailroom's own stack trace.
  const failure = Cause.isEmpty(cause) ? "" : ` ${visible(Cause.pretty(cause), "\n")}`
  globalThis.console.error(`${date.toISOString()} ${logLevel.label.padEnd(5)} ${visible(render(message))}${fields}${failure}`)
})

/** Effect's JSON logger with the trace and span ids of the line's span. */
const jsonLogger = Logger.make((options) => {
  const line = JSON.parse(Logger.jsonLogger.log(options)) as Record<string, unknown>
  const span = spanOf(options.context)
  return JSON.stringify(Option.isSome(span) ? { ...line, trace_id: span.value.traceId, span_id: span.value.spanId } : line)
})

/**
 * Logs go to stderr so that stdout carries only what a command prints (`status --json`). Log lines
 * name subjects and addresses, so they become span events only with OTEL_INCLUDE_PII=true.
 */
export const LoggingLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const format = yield* logFormat
    const pii = yield* includePii
    const level = { debug: LogLevel.Debug, info: LogLevel.Info, warning: LogLevel.Warning, error: LogLevel.Error }[yield* logLevel]
    const lines = Layer.merge(
      Logger.replace(Logger.defaultLogger, format === "json" ? Logger.withConsoleError(jsonLogger) : textLogger),
      Logger.minimumLogLevel(level)
    )
    return pii ? lines : Layer.merge(lines, Logger.remove(Logger.tracerLogger))
  })
)
