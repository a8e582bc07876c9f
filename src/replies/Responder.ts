import { Duration, Effect, Layer, Metric, Option, Ref, Schedule, Scope } from "effect"
import { ReplyConfig } from "../config/Replies.js"
import { replies, repliesPaused } from "../telemetry/Metrics.js"
import { withEventTrace } from "../telemetry/Tracing.js"
import type { ReplyOutcome, StoredEvent } from "../log/Event.js"
import { EmailReceived, ReplyFailed, ReplyIntended, ReplySkipped } from "../log/Event.js"
import { partsApart, partsUncheckable, storedReadable } from "../mail/PartsAgree.js"
import { newMessageId, recipient, replySubject, safeDisplayName, threading, ticketToken } from "./Reply.js"
import { Agent, mayBeTheMails } from "./Agent.js"
import type { AgentFailed, Answer } from "./Agent.js"
import { cleanText } from "../mail/Text.js"
import { needsHuman, ownWords } from "./Checks.js"
import { Drafts } from "./Drafts.js"
import type { Asked } from "./Delivery.js"
import { autoRetrySince, makeDelivery } from "./Delivery.js"
import { personCheck } from "./Person.js"
import type { Recorder } from "./Policy.js"
import { makePolicy, ownAddressesOf } from "./Policy.js"
import { Vault } from "../log/Vault.js"
import { Watched } from "../mailbox/Watched.js"
import { Imap } from "../mailbox/Imap.js"
import { Leadership } from "../mailbox/Leadership.js"
import { Mailer } from "./Mailer.js"
import type { Handler } from "../log/EventLog.js"
import { EventLog } from "../log/EventLog.js"
import { ReplyStore } from "./ReplyStore.js"
import type { ReplyState } from "./ReplyStore.js"
import type { ResponderError, WithSession } from "./ResponderErrors.js"
import { LlmRefused, LlmUnavailable, scheduleFor } from "./ResponderErrors.js"
import { TicketRepo } from "../tickets/TicketRepo.js"
import type { TicketThread } from "../tickets/TicketRepo.js"
import { supervise } from "../lib/Supervise.js"
import { instanceId } from "../lib/Instance.js"
import type { HealthReport } from "../log/StateStore.js"
import { repliesHealthKey, StateStore } from "../log/StateStore.js"

export { LlmRefused, LlmUnavailable, SentMailboxMissing } from "./ResponderErrors.js"
export type { ResponderError } from "./ResponderErrors.js"

export interface ReplySummary {
  readonly sent: number
  readonly drafted: number
  readonly skipped: number
  readonly failed: number
}

/** What `mailroom` asks of a mailbox's responder. */
export interface ResponderShape {
  /** `--once`: answers what is committed; None when nothing answers or another instance is answering. */
  readonly drain: Effect.Effect<Option.Option<ReplySummary>, ResponderError>
  /** Follows the log until interrupted. */
  readonly run: Effect.Effect<void>
  readonly consumer: string
  readonly enabled: boolean
}

/** AGENT=off: nothing is answered; the events are there for an external agent. */
const answersNothing = (consumer: string): ResponderShape => ({ drain: Effect.succeedNone, run: Effect.void, consumer, enabled: false })

/**
 * What the model wrote, as the log can hold it: PostgreSQL stores no NUL and no lone surrogate, and a
 * mail can ask the model for either. Left in, the answer would go out and then fail to be recorded,
 * and every retry would send it again.
 */
const storable = (answer: Answer): Answer => ({
  ...answer,
  text: cleanText(answer.text),
  model: answer.model === null ? null : cleanText(answer.model)
})

/** Which answer an event asks for: a mail's first, or a retry (an automatic one keeps its failure's wait). */
const askedBy = (event: StoredEvent): Asked => {
  if (event.data._tag !== "ReplyRetried") return { retry: 0, at: event.occurredAt, automatic: 0 }
  const automatic = event.data.automatic
  return automatic === null
    ? { retry: event.data.retry, at: event.occurredAt, automatic: 0 }
    : { retry: event.data.retry, at: new Date(automatic.waitFrom), automatic: automatic.count }
}

const PAGE = 100
const THREAD_MESSAGES = 10

/** How often a following responder looks for automatic retries that have come: they are minutes apart (SMTP_RETRY_AFTER). */
const dueRetriesCheck = Schedule.spaced(Duration.seconds(30))

/**
 * The mail and its thread as the agent reads them: for each of the customer's mails whose text part
 * was written apart from its HTML, what the HTML shows. An earlier mail of the thread is checked
 * again here (PartsAgree.storedReadable), so hidden words answered long ago (or never answered, or
 * in a part too long to compare) do not reach a later prompt.
 */
const asShown = (email: EmailReceived, apart: { readonly shown: string } | undefined, thread: TicketThread) =>
  Effect.map(
    Effect.forEach(thread.messages, (m) =>
      m.direction === "outbound" || m.html === null
        ? Effect.succeed(m)
        : m.text === email.text && m.html === email.html
        ? Effect.succeed(apart === undefined ? m : { ...m, text: apart.shown })
        : Effect.map(storedReadable(m), (text) => ({ ...m, text }))),
    (messages) => ({ read: apart === undefined ? email : new EmailReceived({ ...email, text: apart.shown }), thread: { messages } })
  )

/**
 * Answers each EmailReceived once (and again, once, for each ReplyRetried a person asks for after a
 * failure): policy (loops, sender authentication, caps) → agent → checks →
 * ReplyIntended (committed) → SMTP or the drafts folder → ReplySent / ReplyDrafted. It reads the
 * log from its own stored position and moves it only past mail whose outcome is committed; an
 * intent without an outcome is first looked up in SENT_MAILBOX (or DRAFTS_MAILBOX), so a crash
 * between the send and the commit never sends twice.
 */
export class Responder extends Effect.Service<Responder>()("mailroom/Responder", {
  effect: Effect.gen(function*() {
    const config = yield* ReplyConfig
    const { key: mailbox, folder } = yield* Watched
    const own = yield* ownAddressesOf
    const tickets = yield* TicketRepo
    const store = yield* ReplyStore
    const log = yield* EventLog
    const drafts = yield* Drafts
    const imap = yield* Imap
    const agent = yield* Agent
    const mailer = yield* Mailer
    const leadership = yield* Leadership
    const vault = yield* Vault
    const consumer = `responder:${mailbox}`
    const state = yield* StateStore
    if (agent.kind === "off") return answersNothing(consumer)
    const paused = Metric.tagged(repliesPaused, "mailbox", mailbox)
    // Whether answers go out or wait, and why: for `status` (mailbox_health) and for alerts.
    const report = (health: HealthReport) =>
      state.reportHealth(repliesHealthKey(mailbox), instanceId, health).pipe(Effect.ignore, Effect.withTracerEnabled(false))
    const going = Effect.zipRight(Metric.set(paused, 0), report({ _tag: "State", state: "answering" }))
    const waiting = (error: ResponderError) =>
      Effect.zipRight(Metric.set(paused, 1), report({ _tag: "Error", state: `waiting (${error._tag})`, error: error.message }))
    const policy = yield* makePolicy(config, own, store, vault.customerId)
    const personAnswered = personCheck({ sentMailbox: config.sentMailbox, mailbox, tickets })

    // A responder that starts on an existing log answers what arrives from now on, not the history.
    yield* log.startAt(consumer, yield* log.lastSeq)

    const { beginPage, deliver, record, resume } = makeDelivery({ config, mailbox, store, mailer, drafts, personAnswered })

    /**
     * An outage or a rate limit: the mail waits (LlmUnavailable; LlmRefused for a refused key or
     * model), up to LLM_OUTAGE_WAIT from when it was recorded. The mail's own refused request, one
     * still failing past that, or a timeout or 5xx while the LLM answers a request of mailroom's own
     * (the mail's doing, which must not hold every other answer back for LLM_OUTAGE_WAIT), is ReplyFailed.
     */
    const agentFailed = (ids: Pick<ReplyFailed, "emailEventId" | "ticketId" | "customerId" | "retry">, recordedAt: Date, failure: AgentFailed) =>
      Effect.gen(function*() {
        const waited = Date.now() - recordedAt.getTime()
        const outage = failure.retryable && waited < Duration.toMillis(config.llmOutageWait)
        const mails = outage && mayBeTheMails(failure) && (yield* agent.answersOthers)
        if (outage && !mails) {
          const wait = { cause: failure, wait: config.llmOutageWait }
          return yield* (failure.configuration ? new LlmRefused(wait) : new LlmUnavailable(wait))
        }
        const reason = mails
          ? `${failure.message} (the LLM answers other requests: it fails on this mail)`
          : failure.retryable
          ? `${failure.message} (it waited ${Duration.format(Duration.seconds(Math.round(waited / 1000)))}, LLM_OUTAGE_WAIT)`
          : failure.message
        return yield* record(new ReplyFailed({ ...ids, stage: "agent", reason, attempts: failure.attempts, messageId: null }))
      })

    const answer = (event: StoredEvent, email: EmailReceived, session: WithSession, asked: Asked) => (recordIntent: Recorder) =>
      Effect.gen(function*() {
        const ids = { emailEventId: event.id, ticketId: email.ticketId, customerId: email.customerId, retry: asked.retry }
        const answered = yield* personAnswered(event, email, session)
        if (answered !== undefined) return yield* record(new ReplySkipped({ ...ids, ...answered }))
        // A text part written apart from the HTML is not what a person reading the mail sees: the
        // agent reads what the HTML shows, and the answer waits for a person.
        const apart = yield* partsApart(email)
        const { read, thread } = yield* asShown(email, apart, yield* tickets.ticketThread(email.ticketId, email.from.address, THREAD_MESSAGES))
        const reply = yield* agent.reply({ email: read, mailbox: own.address, ticketToken: ticketToken(email.ticketId), thread }).pipe(
          Effect.map(storable),
          Effect.either
        )
        if (reply._tag === "Left") return yield* agentFailed(ids, asked.at, reply.left)
        const human = needsHuman({
          text: reply.right.text,
          material: reply.right.material,
          customerTexts: [
            email.from.address,
            recipient(email).address,
            email.subject,
            ownWords(read.text),
            ...thread.messages.flatMap((m) => m.direction === "inbound" ? [m.subject, ownWords(m.text)] : [])
          ],
          own,
          maxChars: config.maxChars,
          truncated: reply.right.truncated,
          ...(apart === undefined ? {} : { unshown: apart.unshown }),
          partsUnchecked: partsUncheckable(email)
        })
        const to = recipient(email)
        const intent = new ReplyIntended({
          ...ids,
          messageId: newMessageId(own.address),
          from: own.address,
          to: { address: to.address, name: safeDisplayName(to.name) },
          subject: replySubject(email.subject, email.ticketId),
          ...threading(email),
          text: reply.right.text,
          agent: reply.right.agent,
          model: reply.right.model,
          mode: config.mode === "draft" || human !== undefined ? "draft" : "send",
          draftReason: human ?? null,
          recipientId: vault.customerId(to.address)
        })
        return yield* intendAndDeliver(intent, asked, session, recordIntent)
      })

    /** Records the intent (through the policy's `recordIntent`, for a new answer), then sends it or leaves it as a draft. */
    const intendAndDeliver = (intent: ReplyIntended, asked: Asked, session: WithSession, recordIntent: Recorder = (intend) => intend) =>
      Effect.gen(function*() {
        const intended = yield* recordIntent(store.intend(mailbox, intent).pipe(
          Effect.as(true),
          Effect.catchTag("CustomerErasedMeanwhile", () => Effect.succeed(false))
        ))
        if (!intended) {
          const { customerId, emailEventId, retry, ticketId } = intent
          return new ReplySkipped({ emailEventId, ticketId, customerId, retry, reason: "erased", detail: "the customer was erased while the answer was written" })
        }
        return yield* deliver(intent, asked, session)
      })

    /**
     * An automatic retry (ReplyFailed.autoRetry) sends the answer its failure was about again, as a
     * mail server would: the same text, which the policy and the checks passed, under a new
     * Message-ID. It is not written anew, so a domain that keeps refusing costs no LLM request. A
     * person's answer meanwhile still comes first.
     */
    const resend = (event: StoredEvent, email: EmailReceived, session: WithSession, asked: Asked, failed: ReplyIntended) =>
      Effect.gen(function*() {
        const answered = yield* personAnswered(event, email, session)
        if (answered !== undefined) {
          return yield* record(new ReplySkipped({ emailEventId: event.id, ticketId: email.ticketId, customerId: email.customerId, retry: asked.retry, ...answered }))
        }
        // As REPLY_MODE says now: set to draft since, it is left for a person as every answer is.
        const intent = new ReplyIntended({ ...failed, retry: asked.retry, messageId: newMessageId(own.address), mode: config.mode })
        return yield* intendAndDeliver(intent, asked, session)
      })

    const logOutcome = (outcome: ReplyOutcome) => {
      switch (outcome._tag) {
        case "ReplySent":
          return outcome.foundInSent ? Effect.void : Effect.logInfo(`Replied to ${outcome.to} on ticket ${outcome.ticketId}`)
        case "ReplyDrafted":
          return outcome.foundExisting ? Effect.void : Effect.logInfo(`Left a draft answer on ticket ${outcome.ticketId} in ${outcome.mailbox}`)
        case "ReplySkipped":
          return Effect.logInfo(`No automatic answer on ticket ${outcome.ticketId} (${outcome.reason}): ${outcome.detail}`)
        case "ReplyFailed": {
          const line = `The answer on ticket ${outcome.ticketId} failed (${outcome.stage}): ${outcome.reason}`
          // One asked for again by itself (a relay greylisting the customer, their domain not found,
          // an answer held behind such a one) needs nobody yet: a warning is for what a person must do.
          return outcome.autoRetry === null ? Effect.logWarning(line) : Effect.logInfo(line)
        }
      }
    }

    /** With MARK_SEEN=after-reply, the customer's mail is flagged once its reply is sent or skipped. */
    const flagSeen = (event: StoredEvent, session: WithSession) =>
      event.uid === null ? Effect.void : session((s) =>
        Effect.gen(function*() {
          const status = yield* s.open(folder)
          if (status.uidValidity === event.uidvalidity) yield* s.markSeen([event.uid!])
        })
      )

    /**
     * `known`: what was recorded for this answer when its page was read; only this responder adds to
     * it. `failed`: for an automatic retry, the intent whose sending failed.
     */
    const handle = Effect.fn("Responder.reply")(function*(
      event: StoredEvent,
      email: EmailReceived,
      session: WithSession,
      asked: Asked,
      known: ReplyState,
      failed: ReplyIntended | undefined
    ) {
      yield* Effect.annotateCurrentSpan({ "mailroom.ticket_id": email.ticketId, "mailroom.event.id": event.id, "mailroom.reply.retry": asked.retry })
      const outcome = known.outcome ?? (known.intent
        ? yield* resume(known.intent, event, email, session, asked)
        : failed?.mode === "send"
        ? yield* resend(event, email, session, asked, failed)
        : yield* policy.admit(
          { id: event.id, email },
          answer(event, email, session, asked),
          (skip) =>
            record(new ReplySkipped({ emailEventId: event.id, ticketId: email.ticketId, customerId: email.customerId, retry: asked.retry, ...skip }))
        ))
      yield* Effect.annotateCurrentSpan({ "mailroom.reply.outcome": outcome._tag })
      if (known.outcome === undefined) yield* logOutcome(outcome)
      if (config.markSeen === "after-reply" && outcome._tag !== "ReplyFailed") yield* flagSeen(event, session)
      // An outcome recorded before (a page handed over again after a failure) is not this run's.
      return known.outcome === undefined ? Option.some(outcome) : Option.none()
    })

    const count = (summary: ReplySummary, outcome: ReplyOutcome): ReplySummary => ({
      sent: summary.sent + (outcome._tag === "ReplySent" ? 1 : 0),
      drafted: summary.drafted + (outcome._tag === "ReplyDrafted" ? 1 : 0),
      skipped: summary.skipped + (outcome._tag === "ReplySkipped" ? 1 : 0),
      failed: summary.failed + (outcome._tag === "ReplyFailed" ? 1 : 0)
    })

    /**
     * Answers one page of the log: SMTP_CONCURRENCY customers at a time, each customer's mail in
     * order. The page's position is stored once every answer in it is recorded; a crash in between
     * hands the page over again, and what was already answered is then only looked up.
     */
    const answerPage = (summary: Ref.Ref<ReplySummary>): Handler<ResponderError, never> => (events) =>
      Effect.scoped(Effect.gen(function*() {
        // One IMAP connection, opened only when an answer needs it, one command sequence at a time.
        const connection = yield* Effect.cached(Scope.extend(imap.connect, yield* Effect.scope))
        const exclusive = yield* Effect.makeSemaphore(1)
        const session: WithSession = (use) => exclusive.withPermits(1)(Effect.flatMap(connection, use))
        const byCustomer = new Map<string, Array<{ readonly event: StoredEvent & { readonly data: EmailReceived }; readonly asked: Asked }>>()
        // A retry a person asked for (ReplyRetried) answers its mail anew, in its place in the log.
        const retried = events.flatMap((e) => e.data._tag === "ReplyRetried" && e.mailbox === mailbox ? [e.data.emailEventId] : [])
        const retriedMails = new Map((yield* store.mails(retried)).map((e) => [e.id, e]))
        for (const event of events) {
          const asked = askedBy(event)
          const mail = event.data._tag === "ReplyRetried" ? retriedMails.get(event.data.emailEventId) : event
          // An erased customer's mail is not answered: what it said is gone, and so is whom to answer.
          if (mail === undefined || mail.data._tag !== "EmailReceived" || event.mailbox !== mailbox || mail.erased) continue
          const email = mail as StoredEvent & { readonly data: EmailReceived }
          byCustomer.set(email.data.customerId, [...(byCustomer.get(email.data.customerId) ?? []), { event: email, asked }])
        }
        // A page of the log with nothing to answer (intake's own events, another mailbox's) reads nothing.
        if (byCustomer.size === 0) return
        // Whose answers may wait behind an earlier one: one read for the page.
        yield* beginPage
        // What was done already (a page handed over again after a crash or a failure): one read for the page.
        const states = yield* store.replyStates([...byCustomer.values()].flat().map(({ asked, event }) => ({ emailEventId: event.id, retry: asked.retry })))
        yield* Effect.forEach(byCustomer.values(), (mails) =>
          Effect.forEach(mails, ({ asked, event }) =>
            handle(event, event.data, session, asked, states(event.id, asked.retry), asked.automatic > 0 ? states(event.id, asked.retry - 1).intent : undefined).pipe(
              withEventTrace(event),
              Effect.tap(Option.match({
                onNone: () => Effect.void,
                onSome: (outcome) =>
                  Effect.zipRight(
                    Metric.increment(Metric.tagged(replies, "outcome", outcome._tag)),
                    Ref.update(summary, (before) => count(before, outcome))
                  )
              }))
            ), { discard: true }), { concurrency: mailer.concurrency, discard: true })
      }))

    const empty: ReplySummary = { sent: 0, drafted: 0, skipped: 0, failed: 0 }

    /**
     * Asks again for the answers whose automatic retry has come (ReplyFailed.autoRetry): each a
     * ReplyRetried in the log, which the responder then answers in its turn. A failure recorded more
     * than twice SMTP_OUTAGE_WAIT ago (mailroom was stopped meanwhile) is left for a person.
     */
    const askDue = Effect.gen(function*() {
      const now = new Date()
      for (const retry of yield* store.retryDue({ mailbox, now, since: autoRetrySince(config, now.getTime()) })) {
        yield* Effect.logInfo(
          `Asking again for the answer on ticket ${retry.ticketId}, whose recipient the SMTP server took no mail for (automatic retry ${retry.automatic?.count})`
        )
      }
    })

    /** Answers everything committed so far, the automatic retries that have come included. */
    const drainAll = Effect.gen(function*() {
      const summary = yield* Ref.make(empty)
      yield* askDue
      yield* log.drain(consumer, answerPage(summary), { page: PAGE })
      return yield* Ref.get(summary)
    })

    /** `--once`: answers what is committed. None when another instance is answering. */
    const drain: Effect.Effect<Option.Option<ReplySummary>, ResponderError> = leadership.lead(
      consumer,
      drainAll.pipe(Effect.tapError(waiting), Effect.tap(() => going)),
      { wait: false }
    )

    /** Follows the log until interrupted; each kind of failure waits by its own Schedule and is logged once. */
    const run: Effect.Effect<void> = Effect.logInfo(`Answering new mail in ${mailbox} with AGENT=${agent.kind}`).pipe(
      Effect.zipRight(going),
      Effect.zipRight(supervise<ResponderError, never>({
        work: (healthy) =>
          leadership.lead(
            consumer,
            Effect.flatMap(Ref.make(empty), (summary) =>
              // Neither ends but by failing, which the supervisor waits out as for any answer.
              Effect.raceFirst(
                log.consume(consumer, answerPage(summary), { page: PAGE, onDrained: healthy }),
                Effect.repeat(askDue, dueRetriesCheck).pipe(Effect.zipRight(Effect.never))
              ))
          ).pipe(Effect.asVoid),
        scheduleFor,
        onFailure: waiting,
        onRecovered: going,
        recoveredLine: (was) => `Replies go out again (recovered from ${was})`
      })),
      Effect.ensuring(report({ _tag: "State", state: "stopped" })),
      Effect.annotateLogs("service", "responder")
    )

    return { drain, run, consumer, enabled: true } satisfies ResponderShape
  })
}) {
  /**
   * AGENT=off: nothing is answered, so no agent, SMTP mailer, drafts folder or policy is built for
   * the mailbox (with a thousand mailboxes they add up); the events are there for an external agent.
   */
  static readonly Off = Layer.effect(Responder, Effect.map(Watched, ({ key }) => Responder.make(answersNothing(`responder:${key}`))))
}
