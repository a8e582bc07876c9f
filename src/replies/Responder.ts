import type { SqlError } from "@effect/sql/SqlError"
import { Config, Data, Effect, Metric, Option, Schedule, Scope } from "effect"
import { replies } from "../telemetry/Metrics.js"
import { withEventTrace } from "../telemetry/Tracing.js"
import { IntakeConfig, mailboxUser } from "../config/Config.js"
import { databaseRetry } from "../log/Sql.js"
import type { EmailReceived, ReplyOutcome, StoredEvent } from "../log/Event.js"
import { ReplyFailed, ReplyIntended, ReplySent, ReplySkipped } from "../log/Event.js"
import { loopGuard, newMessageId, rateGuard, recipient, replySubject, threading, ticketToken } from "./Reply.js"
import { setting } from "../config/Settings.js"
import { Agent } from "./Agent.js"
import { Imap, markSeenPolicy } from "../mailbox/Imap.js"
import type { ImapSession } from "../mailbox/Imap.js"
import type { ImapError } from "../mailbox/ImapErrors.js"
import { authenticationRetry, connectionRetry, protocolRetry, throttledRetry } from "../mailbox/ImapErrors.js"
import type { LeadershipLost } from "../mailbox/Leadership.js"
import { Leadership } from "../mailbox/Leadership.js"
import type { OutboundMail, SmtpAuthenticationFailed, SmtpUnavailable } from "./Mailer.js"
import { Mailer, smtpAuthenticationRetry, smtpOutageRetry } from "./Mailer.js"
import { StateStore } from "../log/StateStore.js"
import { TicketRepo } from "../tickets/TicketRepo.js"
import { supervise } from "../lib/Supervise.js"

export const ReplyConfig = Config.all({
  sentMailbox: setting(
    "SENT_MAILBOX",
    "Folder where the SMTP server files what it sent; after a crash a reply's Message-ID is looked up there before it is sent again.",
    Config.nonEmptyString,
    { value: "[Gmail]/Sent Mail" }
  ),
  rateLimit: setting(
    "REPLY_RATE_LIMIT",
    "Replies per sender per hour; mail beyond it is recorded as skipped (rate_limited).",
    (name) => Config.integer(name).pipe(Config.validate({ message: "Expected a whole number above 0", validation: (n) => n > 0 })),
    { value: 5 }
  ),
  markSeen: markSeenPolicy
})

/** SENT_MAILBOX is missing: without it a crash could send a reply twice, so replies wait. */
export class SentMailboxMissing extends Data.TaggedError("SentMailboxMissing")<{ readonly mailbox: string }> {
  override get message() {
    return `the sent folder "${this.mailbox}" does not exist on the IMAP server: check SENT_MAILBOX (Gmail names it "[Gmail]/Sent Mail", or its translation); replies wait until it is found`
  }
}

export type ResponderError = SqlError | ImapError | SmtpAuthenticationFailed | SmtpUnavailable | SentMailboxMissing | LeadershipLost

const scheduleFor = (error: ResponderError): Schedule.Schedule<unknown, unknown> => {
  switch (error._tag) {
    case "SmtpAuthenticationFailed":
      return smtpAuthenticationRetry
    case "SmtpUnavailable":
      return smtpOutageRetry
    case "AuthenticationFailed":
      return authenticationRetry
    case "Throttled":
      return throttledRetry
    case "ConnectionLost":
      return connectionRetry
    case "SqlError":
    case "LeadershipLost":
      return databaseRetry
    case "MailboxNotFound":
    case "ImapProtocolError":
    case "SentMailboxMissing":
      return protocolRetry
  }
}

export interface ReplySummary {
  readonly sent: number
  readonly skipped: number
  readonly failed: number
}

const PAGE = 100
const THREAD_MESSAGES = 10
const HOUR = 60 * 60 * 1000

const outbound = (intent: ReplyIntended): OutboundMail => ({
  messageId: intent.messageId,
  from: intent.from,
  to: intent.to,
  subject: intent.subject,
  text: intent.text,
  inReplyTo: intent.inReplyTo,
  references: intent.references
})

/**
 * Answers each EmailReceived once: guard → agent → ReplyIntended (committed) → SMTP → ReplySent.
 * It reads the log from its own stored position and moves it only past mail whose outcome is
 * committed; an intent without an outcome is first looked up in SENT_MAILBOX, so a crash between
 * SMTP and the commit never sends twice.
 */
export class Responder extends Effect.Service<Responder>()("mailroom/Responder", {
  effect: Effect.gen(function*() {
    const config = yield* ReplyConfig
    const { mailbox } = yield* IntakeConfig
    const own = (yield* mailboxUser).toLowerCase()
    const repo = yield* TicketRepo
    const state = yield* StateStore
    const imap = yield* Imap
    const agent = yield* Agent
    const mailer = yield* Mailer
    const leadership = yield* Leadership
    const consumer = `responder:${mailbox}`
    const enabled = agent.kind !== "off"

    // A responder that starts on an existing log answers what arrives from now on, not the history.
    if (enabled) yield* state.initPosition(consumer, yield* repo.lastSeq)

    const record = <A extends ReplyIntended | ReplyOutcome>(data: A) => repo.appendReply(mailbox, data).pipe(Effect.as(data))

    const sent = (intent: ReplyIntended, outcome: Pick<ReplySent, "response" | "attempts" | "foundInSent">) =>
      new ReplySent({
        emailEventId: intent.emailEventId,
        ticketId: intent.ticketId,
        customerId: intent.customerId,
        messageId: intent.messageId,
        to: intent.to.address,
        ...outcome
      })

    const deliver = (intent: ReplyIntended) =>
      mailer.send(outbound(intent)).pipe(
        Effect.flatMap((delivery) =>
          record(sent(intent, { response: delivery.response, attempts: delivery.attempts, foundInSent: false }))
        ),
        Effect.catchTag("SmtpRejected", (error) =>
          record(
            new ReplyFailed({
              emailEventId: intent.emailEventId,
              ticketId: intent.ticketId,
              customerId: intent.customerId,
              stage: "smtp",
              reason: error.message,
              attempts: 1,
              messageId: intent.messageId
            })
          )),
        // Once SMTP has the message, its ReplySent is committed even when a shutdown is under way.
        Effect.uninterruptible
      )

    /** An intent without an outcome: a crash or an outage came between it and its ReplySent. */
    const resume = (intent: ReplyIntended, session: Effect.Effect<ImapSession, ImapError>) =>
      Effect.gen(function*() {
        const found = yield* Effect.flatMap(session, (s) => s.findByMessageId(config.sentMailbox, intent.messageId)).pipe(
          Effect.catchTag("MailboxNotFound", () => new SentMailboxMissing({ mailbox: config.sentMailbox }))
        )
        if (found.length === 0) {
          yield* Effect.logInfo(`Reply ${intent.messageId} is not in ${config.sentMailbox}: sending it now`)
          return yield* deliver(intent)
        }
        yield* Effect.logInfo(`Reply ${intent.messageId} is already in ${config.sentMailbox}: recording it as sent, not sending it again`)
        return yield* record(sent(intent, {
          response: `found in ${config.sentMailbox} (UID ${found[0]}) after a restart`,
          attempts: 0,
          foundInSent: true
        }))
      })

    const answer = (event: StoredEvent, email: EmailReceived) =>
      Effect.gen(function*() {
        const base = { emailEventId: event.id, ticketId: email.ticketId, customerId: email.customerId }
        const skip = loopGuard(email, own) ??
          rateGuard(
            yield* repo.repliesSentSince(email.customerId, recipient(email).address, new Date(Date.now() - HOUR)),
            config.rateLimit
          )
        if (skip) return yield* record(new ReplySkipped({ ...base, ...skip }))
        const thread = yield* repo.ticketThread(email.ticketId, THREAD_MESSAGES)
        const reply = yield* agent.reply({ email, mailbox: own, ticketToken: ticketToken(email.ticketId), thread }).pipe(Effect.either)
        if (reply._tag === "Left") {
          return yield* record(
            new ReplyFailed({ ...base, stage: "agent", reason: reply.left.message, attempts: reply.left.attempts, messageId: null })
          )
        }
        const intent = yield* record(
          new ReplyIntended({
            ...base,
            messageId: newMessageId(own),
            from: own,
            to: recipient(email),
            subject: replySubject(email.subject, email.ticketId),
            ...threading(email),
            text: reply.right.text,
            agent: reply.right.agent,
            model: reply.right.model
          })
        )
        return yield* deliver(intent)
      })

    const logOutcome = (outcome: ReplyOutcome, email: EmailReceived) => {
      switch (outcome._tag) {
        case "ReplySent":
          return outcome.foundInSent ? Effect.void : Effect.logInfo(`Replied to ${outcome.to} on ticket ${outcome.ticketId}`)
        case "ReplyDrafted":
          return outcome.foundExisting ? Effect.void : Effect.logInfo(`Left a draft answer on ticket ${outcome.ticketId} in ${outcome.mailbox}`)
        case "ReplySkipped":
          return Effect.logInfo(`No reply to ${email.from.address} (${outcome.reason}): ${outcome.detail}`)
        case "ReplyFailed":
          return Effect.logWarning(`Reply to ${email.from.address} failed (${outcome.stage}): ${outcome.reason}`)
      }
    }

    /** With MARK_SEEN=after-reply, the customer's mail is flagged once its reply is sent or skipped. */
    const flagSeen = (event: StoredEvent, session: Effect.Effect<ImapSession, ImapError>) =>
      Effect.gen(function*() {
        if (event.uid === null) return
        const s = yield* session
        const status = yield* s.open(event.mailbox)
        if (status.uidValidity === event.uidvalidity) yield* s.markSeen([event.uid])
      })

    const handle = Effect.fn("Responder.reply")(function*(event: StoredEvent, email: EmailReceived, session: Effect.Effect<ImapSession, ImapError>) {
      yield* Effect.annotateCurrentSpan({ "mailroom.ticket_id": email.ticketId, "mailroom.event.id": event.id })
      const known = yield* repo.replyState(event.id)
      const outcome = known.outcome ?? (known.intent ? yield* resume(known.intent, session) : yield* answer(event, email))
      yield* Effect.annotateCurrentSpan({ "mailroom.reply.outcome": outcome._tag })
      if (known.outcome === undefined) yield* logOutcome(outcome, email)
      if (config.markSeen === "after-reply" && outcome._tag !== "ReplyFailed") yield* flagSeen(event, session)
      return outcome
    })

    /** Answers everything committed so far; an IMAP connection is opened only when one is needed. */
    const drainAll = Effect.scoped(Effect.gen(function*() {
      const session = yield* Effect.cached(Scope.extend(imap.connect, yield* Effect.scope))
      let summary: ReplySummary = { sent: 0, skipped: 0, failed: 0 }
      while (true) {
        const events = yield* repo.eventsAfter(yield* state.position(consumer), PAGE).pipe(Effect.withTracerEnabled(false))
        if (events.length === 0) return summary
        for (const event of events) {
          if (event.data._tag !== "EmailReceived" || event.mailbox !== mailbox) continue
          const outcome = yield* handle(event, event.data, session).pipe(withEventTrace(event))
          yield* Metric.increment(Metric.tagged(replies, "outcome", outcome._tag))
          yield* state.savePosition(consumer, event.seq)
          summary = {
            sent: summary.sent + (outcome._tag === "ReplySent" ? 1 : 0),
            skipped: summary.skipped + (outcome._tag === "ReplySkipped" ? 1 : 0),
            failed: summary.failed + (outcome._tag === "ReplyFailed" ? 1 : 0)
          }
        }
        yield* state.savePosition(consumer, events.at(-1)!.seq)
      }
    }))

    /** `--once`: answers what is committed. None when AGENT=off or another instance is answering. */
    const drain: Effect.Effect<Option.Option<ReplySummary>, ResponderError> = enabled
      ? leadership.lead(consumer, drainAll, { wait: false })
      : Effect.succeedNone

    /** Follows the log until interrupted; each kind of failure waits by its own Schedule and is logged once. */
    const run = enabled
      ? Effect.logInfo(`Answering new mail in ${mailbox} with AGENT=${agent.kind}`).pipe(
        Effect.zipRight(supervise<ResponderError, never>({
          work: (healthy) =>
            leadership.lead(consumer, repo.appends.follow(drainAll.pipe(Effect.zipRight(healthy)), "1 second")).pipe(
              Effect.asVoid
            ),
          scheduleFor,
          recoveredLine: (was) => `Replies go out again (recovered from ${was})`
        })),
        Effect.annotateLogs("service", "responder")
      )
      : Effect.void

    const pending = Effect.gen(function*() {
      const position = yield* state.position(consumer)
      return (yield* repo.eventsAfter(position, PAGE)).filter((e) => e.type === "EmailReceived").length
    })

    return { drain, run, pending, consumer, enabled } as const
  })
}) {}
