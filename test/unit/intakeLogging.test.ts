import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel, Option } from "effect"
import { MemoryMailbox } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { mail, pipelineLayer } from "./layers.js"

const ingestLogging = (level: LogLevel.LogLevel) => {
  const lines: Array<string> = []
  const mailbox = new MemoryMailbox()
  for (let i = 0; i < 5; i++) mailbox.append(mail({ subject: `Question ${i}` }))
  mailbox.append("From: nobody\r\nSubject: no sender\r\n\r\nx\r\n")
  const capture = Logger.replace(Logger.defaultLogger, Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  }))
  return Effect.flatMap(Poller, (poller) => poller.once).pipe(
    Effect.map(Option.getOrThrow),
    Effect.provide(pipelineLayer(mailbox)),
    Effect.provide(Layer.merge(capture, Logger.minimumLogLevel(level))),
    Effect.as(lines)
  )
}

describe("intake's log lines", () => {
  it.effect("at info: one line for the batch, and one per quarantined mail, none per received mail", () =>
    Effect.map(ingestLogging(LogLevel.Info), (lines) => {
      expect(lines.filter((line) => line.startsWith("INFO Recorded"))).toEqual([
        "INFO Recorded 6 email(s): 5 received (5 new ticket(s)), 0 duplicate(s), 1 quarantined"
      ])
      expect(lines.filter((line) => line.startsWith("WARN Quarantined"))).toHaveLength(1)
      expect(lines.filter((line) => line.includes("Created ticket"))).toEqual([])
    }))

  it.effect("at debug: a line per mail as well", () =>
    Effect.map(ingestLogging(LogLevel.Debug), (lines) => {
      expect(lines.filter((line) => line.startsWith("DEBUG Created ticket"))).toHaveLength(5)
    }))
})
