import { Command, Options } from "@effect/cli"
import type { SqlClient } from "@effect/sql"
import { Console, Duration, Effect, Option } from "effect"
import type { Layer } from "effect"
import { gmailApiEnabled, IntakeConfig } from "../config/Config.js"
import { allSettings, renderEnvExample } from "../config/All.js"
import { authCommand } from "./Auth.js"
import { StartupRefused } from "./Fatal.js"
import { importCommand } from "./Import.js"
import { reprocessCommand } from "./Reprocess.js"
import type { PassSummary } from "../tickets/Intake.js"
import { Poller } from "../mailbox/Poller.js"
import { Fleet } from "../mailbox/Fleet.js"
import { Relay } from "../bus/Relay.js"
import type { ReplySummary } from "../replies/Responder.js"
import { Responder } from "../replies/Responder.js"
import { collectStatus, formatStatus } from "./Status.js"
import { checkCommand } from "./Check.js"
import { reconcileCommand } from "./Reconcile.js"
import { replayCommand } from "./Replay.js"
import { eraseCommand, exportCommand } from "./Erase.js"
import { repliesCommand, retryCommand } from "./Replies.js"
import type { HealthState } from "../telemetry/Health.js"
import type { EventLog } from "../log/EventLog.js"
import { runRetention } from "../log/Retention.js"
import { serveHealth } from "../telemetry/Health.js"

const once = Options.boolean("once").pipe(
  Options.withDescription("Run one pass over the mailbox, print a summary and exit.")
)

const interval = Options.integer("interval").pipe(
  Options.withDescription("Seconds between passes, IDLE or not; overrides IMAP_POLL_INTERVAL (default 60) and IMAP_IDLE_POLL_INTERVAL (default 600). New mail is taken at once where the server supports IDLE."),
  Options.optional
)

const relayWait = Duration.seconds(30)

export const refuseWhenGmailApiOwnsReceiving = Effect.gen(function*() {
  if (yield* gmailApiEnabled) {
    return yield* new StartupRefused({
      reason: "GMAIL_API_ENABLED=true: another worker receives this mailbox through the Gmail API, so mailroom will not poll it. Unset GMAIL_API_ENABLED to let mailroom receive."
    })
  }
})

const describeSummary = (summary: PassSummary) =>
  `Summary: ${summary.received} received (${summary.ticketsCreated} new ticket(s)), ${summary.duplicates} duplicate(s), ${summary.quarantined} quarantined` +
  (summary.alreadyRecorded > 0 ? `, ${summary.alreadyRecorded} already recorded` : "")

const describeReplies = (replies: ReplySummary) =>
  `Replies: ${replies.sent} sent, ${replies.skipped} skipped, ${replies.failed} failed` +
  (replies.drafted > 0 ? `, ${replies.drafted} left as drafts` : "")

/** What a `--once` run's answers wait for, when they wait; the next run tries again. */
const waitingFor = {
  SmtpUnavailable: "waiting for the SMTP server; they go out on the next run",
  SmtpLimitReached: "waiting for the SMTP server's sending limit to reset; they go out on a run after it has",
  LlmUnavailable: "waiting for the LLM; they go out on the next run"
} as const

/** One pass over each mailbox, in the order they are configured; then the bus, then the answers. */
const runOnce = Effect.gen(function*() {
  const fleet = yield* Fleet
  const relay = yield* Relay
  // A mailbox that fails (a folder gone, a login refused) is reported on its own; the others go on.
  const attempts = yield* Effect.forEach(fleet, (mailbox) =>
    mailbox.run(Effect.flatMap(Poller, (poller) => poller.once)).pipe(Effect.either, Effect.map((summary) => ({ mailbox, summary }))))
  const failed = attempts.flatMap(({ mailbox, summary }) => summary._tag === "Left" ? [{ mailbox, error: summary.left }] : [])
  for (const { error, mailbox } of failed) {
    if (fleet.length > 1) yield* Effect.logError(`${mailbox.watched.key}: ${error.message}`)
  }
  const passes = attempts.flatMap(({ mailbox, summary }) => summary._tag === "Right" ? [{ mailbox, summary: summary.right }] : [])
  for (const { mailbox, summary } of passes) {
    if (Option.isNone(summary)) yield* Console.log(`Another instance is ingesting ${mailbox.watched.key}; this pass is left to it`)
  }
  const relayed = yield* relay.drain.pipe(Effect.timeout(relayWait), Effect.option)
  if (Option.isNone(relayed)) {
    yield* Effect.logWarning(`The event bus did not take every event within ${Duration.format(relayWait)}; ${yield* relay.pending} or more are still pending and go out on the next run`)
  }
  const several = fleet.length > 1
  for (const { mailbox, summary } of passes) {
    if (Option.isSome(summary)) yield* Console.log(`${several ? `${mailbox.watched.key}: ` : ""}${describeSummary(summary.value)}`)
  }
  // Replies come after ingest and relay, so that an SMTP or LLM failure holds neither back.
  for (const { mailbox } of passes) {
    const replies = yield* mailbox.run(Effect.flatMap(Responder, (responder) => responder.enabled ? Effect.map(Effect.either(responder.drain), Option.some) : Effect.succeedNone))
    if (Option.isNone(replies)) continue
    yield* relay.drain.pipe(Effect.timeout(relayWait), Effect.ignore)
    const prefix = several ? `${mailbox.watched.key}: ` : ""
    if (replies.value._tag === "Left") {
      // An outage is transient: what was recorded stays recorded and the replies go out on the next run.
      const outage = replies.value.left
      if (outage._tag !== "SmtpUnavailable" && outage._tag !== "SmtpLimitReached" && outage._tag !== "LlmUnavailable") return yield* outage
      yield* Effect.logWarning(outage.message)
      yield* Console.log(`${prefix}Replies: ${waitingFor[outage._tag]}`)
      continue
    }
    yield* Console.log(
      prefix + Option.match(replies.value.right, {
        onNone: () => `Another instance is answering ${mailbox.watched.key}; replies are left to it`,
        onSome: describeReplies
      })
    )
  }
  if (failed.length > 0) return yield* failed[0]!.error
})

export const runForever = (seconds: Option.Option<number>) =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const relay = yield* Relay
    const watch = (mailbox: (typeof fleet)[number]) =>
      mailbox.run(Effect.gen(function*() {
        const poller = yield* Poller
        const responder = yield* Responder
        const config = yield* IntakeConfig
        // --interval N is the guide's: a pass every N seconds, whether the server announces new mail or not.
        const intervals = Option.match(seconds, {
          onNone: () => ({ idle: config.idlePollInterval, poll: config.pollInterval }),
          onSome: (n) => ({ idle: Duration.seconds(n), poll: Duration.seconds(n) })
        })
        yield* Effect.logInfo(
          `Watching ${mailbox.watched.key}: at once when the server announces new mail (IDLE), with a pass every ${Duration.format(intervals.idle)} besides; ` +
            `without IDLE, a pass every ${Duration.format(intervals.poll)}`
        )
        // Without an agent there is nothing to answer: no second fiber per mailbox for it.
        yield* responder.enabled
          ? Effect.all([poller.forever(intervals), responder.run], { concurrency: "unbounded", discard: true })
          : poller.forever(intervals)
      }))
    yield* Effect.all([
      Effect.forEach(fleet, watch, { concurrency: "unbounded", discard: true }),
      relay.run,
      serveHealth({ relayConsumer: relay.consumer }),
      runRetention
    ], { concurrency: "unbounded", discard: true })
  })

export interface CliLayers<E1, E2, E3> {
  /** Poller, relay and responder over the live services; the health endpoints read HealthState and the database, retention the database and the log. */
  readonly app: Layer.Layer<Fleet | Relay | HealthState | EventLog | SqlClient.SqlClient, E1>
  /** The stores and each mailbox's connection, for `status`. */
  readonly status: Layer.Layer<Effect.Effect.Context<typeof collectStatus>, E2>
  /** Each mailbox's connection, agent and SMTP server over the database, for `check`. */
  readonly check: Layer.Layer<Effect.Effect.Context<ReturnType<typeof checkCommand>>, E2>
  /** The database and the log alone, for `replay`, `erase` and `replies`: they need no mailbox settings. */
  readonly store: Layer.Layer<
    | Effect.Effect.Context<ReturnType<typeof replayCommand>>
    | Effect.Effect.Context<ReturnType<typeof eraseCommand>>
    | Effect.Effect.Context<ReturnType<typeof exportCommand>>
    | Effect.Effect.Context<ReturnType<typeof repliesCommand>>
    | Effect.Effect.Context<ReturnType<typeof retryCommand>>,
    E3
  >
}

const describeRun = () =>
  [
    "Watches a support mailbox over IMAP and records every email once, as an append-only event in PostgreSQL, projected into customers, tickets and messages.",
    "",
    "Settings (environment variables, or a .env file in the working directory):",
    ...allSettings.map((s) => `  ${s.name}${s.default === undefined ? "" : ` (default ${s.default})`}: ${s.help}`)
  ].join("\n")

/**
 * @effect/cli takes a repeated option given without its value (`replies retry --id` at the end of
 * the line, or before another flag) as not given at all: that would ask again for every failed
 * answer of the day, or reprocess every quarantined mail, when one was meant. Refused instead.
 */
const repeatedOptions = ["--id", "--reason"]

export const refuseRepeatedWithoutValue = (argv: ReadonlyArray<string>): Effect.Effect<void, StartupRefused> => {
  const bare = argv.find((arg, i) => repeatedOptions.includes(arg) && (argv[i + 1] === undefined || argv[i + 1]!.startsWith("-")))
  return bare === undefined ? Effect.void : new StartupRefused({ reason: `${bare} needs a value after it` })
}

/**
 * The command tree. Layers are provided inside each handler, so that `--help` and `settings` need no
 * configuration; built by main.ts after every module has declared its settings.
 */
export const makeCli = <E1, E2, E3>(layers: CliLayers<E1, E2, E3>) => {
  const run = Command.make("mailroom", { once, interval }, (flags) =>
    Option.match(flags.interval, {
      onSome: (seconds) => seconds > 0 ? Effect.void : new StartupRefused({ reason: "--interval takes a whole number of seconds above 0" }),
      onNone: () => Effect.void
    }).pipe(
      // The flags are checked before the layers open the database or log in.
      Effect.zipRight(Effect.if(flags.once, { onTrue: () => runOnce, onFalse: () => runForever(flags.interval) }).pipe(Effect.provide(layers.app)))
    )
  ).pipe(Command.withDescription(describeRun()))

  const status = Command.make(
    "status",
    { json: Options.boolean("json").pipe(Options.withDescription("Print the report as JSON.")) },
    ({ json }) =>
      Effect.flatMap(collectStatus, (report) => Console.log(json ? JSON.stringify(report, null, 2) : formatStatus(report))).pipe(
        Effect.provide(layers.status)
      )
  ).pipe(
    Command.withDescription(
      "Per mailbox: UIDVALIDITY and cursor, backlog on the server, lock holder, connection state, last error, whether answers go out; the last 24 hours' answers and how many a person should look at (mailroom replies); counts by event type; outbox lag. With the embedded database it works while mailroom is stopped."
    )
  )

  const check = Command.make(
    "check",
    { json: Options.boolean("json").pipe(Options.withDescription("Print the lines as JSON.")) },
    (options) => checkCommand(options).pipe(Effect.asVoid, Effect.provide(layers.check))
  ).pipe(
    Command.withDescription(
      "Checks the setup without taking any mail: every setting, the database (opened and migrated, as a start does), each mailbox's login and folder, and with answers on the sender checks of the newest mail, the sent and drafts folders, the SMTP login (nothing is sent) and the agent (AGENT=openai: one small request), and Kafka. One line each, with what to change; exits 1 when any failed."
    )
  )

  const settingsCommand = Command.make("settings", {}, () => Console.log(renderEnvExample())).pipe(
    Command.withDescription("Prints every setting with its help and default, as a .env file (.env.example is this output).")
  )

  const replay = Command.make(
    "replay",
    { check: Options.boolean("check").pipe(Options.withDescription("Only compare, and exit with 1 when they differ; nothing is changed.")) },
    ({ check }) => replayCommand({ check }).pipe(Effect.asVoid, Effect.provide(layers.store))
  ).pipe(
    Command.withDescription(
      "Rebuilds customers, tickets, messages and ticket_participants from the event log and swaps them in, in one transaction that holds the log's append lock; prints what differed. The log itself is only read."
    )
  )

  const erase = Command.make(
    "erase",
    { customer: Options.text("customer").pipe(Options.withDescription("The customer's email address.")) },
    ({ customer }) => eraseCommand(customer).pipe(Effect.asVoid, Effect.provide(layers.store))
  ).pipe(
    Command.withDescription(
      "The right to erasure: deletes the customer's tickets, messages and raw mail, destroys the keys their personal data in the event log is sealed under (so it can no longer be read), records CustomerErased and sends Kafka tombstones for their tickets. Their next mail opens a new customer."
    )
  )

  const exportData = Command.make(
    "export",
    {
      customer: Options.text("customer").pipe(Options.withDescription("The customer's email address.")),
      raw: Options.boolean("raw").pipe(Options.withDescription("Add each stored raw mail of theirs, base64."))
    },
    ({ customer, raw }) => exportCommand(customer, { raw }).pipe(Effect.asVoid, Effect.provide(layers.store))
  ).pipe(
    Command.withDescription(
      "The right of access: prints as JSON everything mailroom holds of the customer (their tickets with every message in them, their mail in other tickets, every event of theirs with its personal fields opened, and with --raw the raw mail): what erase would delete or make unreadable. Read-only."
    )
  )

  const retry = Command.make(
    "retry",
    {
      since: Options.text("since").pipe(Options.withDescription("Answers of this span: 30m, 24h, 7d, 2w."), Options.withDefault("24h")),
      ids: Options.text("id").pipe(
        Options.withDescription("The id of a ReplyFailed, or of a ReplySkipped as needs_human (mailroom replies --json shows them as eventId); may be given more than once. Given, --since is not looked at."),
        Options.repeated
      )
    },
    (options) => retryCommand(options).pipe(Effect.asVoid, Effect.provide(layers.store))
  ).pipe(
    Command.withDescription(
      "Asks again for answers that failed (ReplyFailed: an LLM outage longer than LLM_OUTAGE_WAIT, an SMTP refusal) or needed a person when no drafts folder could take them (needs_human): each mail is answered anew, once, unless a person answered it meanwhile from the mailbox; what was recorded stays in the log. Other skips (a cap, an unauthenticated sender) are the policy's and are not asked again."
    )
  )

  const replies = Command.make(
    "replies",
    {
      since: Options.text("since").pipe(
        Options.withDescription("How far back: 30m, 24h, 7d, 2w."),
        Options.withDefault("7d")
      ),
      all: Options.boolean("all").pipe(Options.withDescription("List every answer, sent and skipped alike, not only those for a person.")),
      customer: Options.text("customer").pipe(
        Options.withDescription("Only this customer's mail (an email address), every answer listed."),
        Options.optional
      ),
      limit: Options.integer("limit").pipe(Options.withDescription("At most this many, newest first."), Options.withDefault(50)),
      json: Options.boolean("json").pipe(Options.withDescription("Print the report as JSON."))
    },
    (options) => repliesCommand(options).pipe(Effect.asVoid, Effect.provide(layers.store))
  ).pipe(
    Command.withSubcommands([retry]),
    Command.withDescription(
      "What the automatic answers came to (sent, drafts, failures, skips by reason, mail still waiting) and the mails a person should look at: drafts to check and send, failures, and questions left unanswered (an unauthenticated sender, a cap, an answer that needed a person). Read from the event log: on PostgreSQL while mailroom runs, on the embedded database while it is stopped."
    )
  )

  const reconcile = Command.make(
    "reconcile",
    { check: Options.boolean("check").pipe(Options.withDescription("Only report the gaps, and exit with 1 when there are any.")) },
    ({ check }) => reconcileCommand({ check }).pipe(Effect.asVoid, Effect.provide(layers.app))
  ).pipe(
    Command.withDescription(
      "Compares the mail on the server that the cursor has passed with the events in the log, and takes in any mail without one (the running process does this every RECONCILE_INTERVAL seconds)."
    )
  )

  return run.pipe(
    Command.withSubcommands([check, status, settingsCommand, authCommand, importCommand, reprocessCommand, replay, reconcile, erase, exportData, replies])
  )
}
