import { Clock, ConfigProvider, Effect, Layer, Schedule } from "effect"
import { gmailPass } from "../support/mails.js"
import { Intake } from "../../src/tickets/Intake.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { Relay } from "../../src/bus/Relay.js"
import { EventBus, MemoryEventBus } from "../../src/bus/EventBus.js"
import type { MemoryMailbox } from "../../src/mailbox/Imap.js"
import { Imap } from "../../src/mailbox/Imap.js"
import { Leadership } from "../../src/mailbox/Leadership.js"
import { EventLog } from "../../src/log/EventLog.js"
import { StateStore } from "../../src/log/StateStore.js"
import { Vault } from "../../src/log/Vault.js"
import { Watched } from "../../src/mailbox/Watched.js"
import { ReplyStore } from "../../src/replies/ReplyStore.js"
import { TicketRepo } from "../../src/tickets/TicketRepo.js"
import { Parser } from "../../src/mail/Parser.js"
import { SenderAuthenticator } from "../../src/mail/SenderAuth.js"

export const baseEnv = {
  GMAIL_SENDER_EMAIL: "support@example.com",
  GMAIL_SENDER_PASSWORD: "abcd efgh ijkl mnop",
  IMAP_BACKFILL: "unseen"
}

export const configLayer = (env: Record<string, string> = {}) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ ...baseEnv, ...env }))))

/** The stores in memory: the log's rules without a database. */
export const storeLayer = Layer.mergeAll(TicketRepo.Test, ReplyStore.Test).pipe(
  Layer.provideMerge(Layer.mergeAll(EventLog.Test, StateStore.Test, Vault.Test, Watched.Test()))
)

/** The whole pipeline on in-memory services: a mailbox, the log, the cursor and a recording bus. */
export const pipelineLayer = (mailbox: MemoryMailbox, env: Record<string, string> = {}) =>
  Layer.mergeAll(Poller.Default, Relay.Default, Intake.Default).pipe(
    Layer.provide(Intake.Default),
    Layer.provide(
      Layer.mergeAll(Imap.Test(mailbox), Parser.Default, SenderAuthenticator.Default, EventBus.Test(new MemoryEventBus()), Leadership.Test)
    ),
    Layer.provideMerge(storeLayer),
    Layer.provide(configLayer(env))
  )

/** The UIDs the log holds an intake event for, in log order. */
export const intakeUids = Effect.flatMap(EventLog, (log) => log.read(0n, 1000)).pipe(
  Effect.map((events) => events.filter((e) => e.type.startsWith("Email")).map((e) => e.uid))
)

/** Real time for a forked poller to do what is due (parsing is asynchronous); the test clock stands still. */
export const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 300)))

/** Waits in real time, up to 10 s on a loaded machine, until the log holds exactly these UIDs. */
export const untilUids = (uids: ReadonlyArray<number>) =>
  intakeUids.pipe(
    Effect.filterOrFail((found) => JSON.stringify(found) === JSON.stringify(uids)),
    Effect.retry({ times: 100, schedule: Schedule.spaced("100 millis") }),
    Effect.withClock(Clock.make()),
    Effect.orElse(() => intakeUids)
  )

let counter = 0

/** A small well-formed mail; `null` leaves a header out. */
export const mail = (options: {
  readonly from?: string | null
  readonly subject?: string
  readonly text?: string
  readonly messageId?: string | null
  readonly inReplyTo?: string
  readonly references?: ReadonlyArray<string>
  readonly headers?: Record<string, string>
  /** Its Date header; a fixed day in the past unless given. */
  readonly date?: Date
  /** Topped with the Authentication-Results Gmail's MX writes for a sender that passed DMARC. */
  readonly authenticated?: boolean
} = {}): string => {
  counter += 1
  const headers = [
    options.authenticated ? gmailPass(options.from ?? "ada@customer.test") : undefined,
    options.from === null ? undefined : `From: ${options.from ?? "Ada Customer <ada@customer.test>"}`,
    "To: support@example.com",
    `Subject: ${options.subject ?? `Question ${counter}`}`,
    options.messageId === null ? undefined : `Message-ID: ${options.messageId ?? `<m${counter}.${Date.now()}@customer.test>`}`,
    options.inReplyTo ? `In-Reply-To: ${options.inReplyTo}` : undefined,
    options.references ? `References: ${options.references.join(" ")}` : undefined,
    `Date: ${options.date ? options.date.toUTCString().replace(/GMT$/, "+0000") : "Tue, 24 Nov 2026 10:00:00 +0000"}`,
    ...Object.entries(options.headers ?? {}).map(([key, value]) => `${key}: ${value}`),
    "Content-Type: text/plain; charset=utf-8"
  ].filter((line) => line !== undefined)
  return `${headers.join("\r\n")}\r\n\r\n${options.text ?? "Hello, I need help."}\r\n`
}
