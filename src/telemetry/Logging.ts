import { Cause, Effect, HashMap, Inspectable, Layer, Logger } from "effect"
import { logFormat } from "../Config.js"

const render = (value: unknown): string =>
  Array.isArray(value) ? value.map(render).join(" ") : typeof value === "string" ? value : Inspectable.toStringUnknown(value)

/** `2026-11-24T10:00:00.000Z INFO  Connected to IMAP: support@example.com trigger=start` */
export const textLogger = Logger.make(({ annotations, cause, date, logLevel, message }) => {
  const fields = [...HashMap.toEntries(annotations)].map(([key, value]) => ` ${key}=${render(value)}`).join("")
  const failure = Cause.isEmpty(cause) ? "" : ` ${Cause.pretty(cause)}`
  globalThis.console.error(`${date.toISOString()} ${logLevel.label.padEnd(5)} ${render(message)}${fields}${failure}`)
})

/** Logs go to stderr so that stdout carries only what a command prints (`status --json`). */
export const LoggingLive = Layer.unwrapEffect(
  Effect.map(logFormat, (format) =>
    Logger.replace(Logger.defaultLogger, format === "json" ? Logger.withConsoleError(Logger.jsonLogger) : textLogger)
  )
)
