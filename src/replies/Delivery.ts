import type { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect } from "effect"
import type { ReplyConfig } from "../config/Replies.js"
import type { AutoRetry, EmailReceived, ReplyIntended, ReplyOutcome, StoredEvent } from "../log/Event.js"
import { ReplyDrafted, ReplyFailed, ReplySent, ReplySkipped } from "../log/Event.js"
import type { DraftsMailboxMissing, DraftsShape } from "./Drafts.js"
import { withReason } from "./Drafts.js"
import type { MailerShape, OneAnswerRefused, OutboundMail } from "./Mailer.js"
import { refusesOneAnswer } from "./Mailer.js"
import type { personCheck } from "./Person.js"
import type { Ahead, ReplyStoreShape } from "./ReplyStore.js"
import type { SmtpHold, WithSession } from "./ResponderErrors.js"
import { handedOver, isSmtpHold, SentMailboxMissing } from "./ResponderErrors.js"

const outbound = (intent: ReplyIntended): OutboundMail => ({
  messageId: intent.messageId,
  from: intent.from,
  to: intent.to,
  subject: intent.subject,
  text: intent.text,
  inReplyTo: intent.inReplyTo,
  references: intent.references
})

/** Which answer to a mail is asked for: its first (0, when it was recorded), or a retry asked for then. */
export interface Asked {
  readonly retry: number
  /** LLM_OUTAGE_WAIT and SMTP_OUTAGE_WAIT count from here: an automatic retry keeps its failure's. */
  readonly at: Date
  /** Automatic retries in a row so far (ReplyRetried.automatic), 0 for a first answer or a person's retry. */
  readonly automatic: number
}

/**
 * When an answer whose recipient the SMTP server refused for now is asked for again by itself:
 * SMTP_RETRY_AFTER after the failure, twice that after the next, and so on, the last at
 * SMTP_OUTAGE_WAIT from where its wait began. None once that is past.
 */
export const autoRetryOf = (
  config: Pick<ReplyConfig, "smtpRetryAfter" | "smtpOutageWait">,
  asked: Asked,
  now: number
): AutoRetry | null => {
  const until = asked.at.getTime() + Duration.toMillis(config.smtpOutageWait)
  if (now >= until) return null
  const at = Math.min(until, now + Duration.toMillis(config.smtpRetryAfter) * 2 ** asked.automatic)
  return { at: new Date(at).toISOString(), waitFrom: asked.at.toISOString(), count: asked.automatic + 1 }
}

/** Failures recorded before this are long past SMTP_OUTAGE_WAIT (mailroom was stopped meanwhile): only a person asks for them again. */
export const autoRetrySince = (config: Pick<ReplyConfig, "smtpOutageWait">, now: number) =>
  new Date(now - 2 * Duration.toMillis(config.smtpOutageWait))

const nextStep = (autoRetry: AutoRetry | null) =>
  autoRetry === null
    ? "; it is not asked for again by itself past SMTP_OUTAGE_WAIT: `mailroom replies retry` asks for it again"
    : `; it is asked for again by itself at ${autoRetry.at.slice(0, 19).replace("T", " ")} UTC, or at once with \`mailroom replies retry\``

export interface DeliveryDeps {
  readonly config: ReplyConfig
  readonly mailbox: string
  readonly store: ReplyStoreShape
  readonly mailer: MailerShape
  readonly drafts: DraftsShape
  readonly personAnswered: ReturnType<typeof personCheck>
}

/**
 * From a committed ReplyIntended to its one outcome: sent over SMTP, or left in the drafts folder.
 * An intent resumed without an outcome (a crash, an outage, a sending limit) is first looked up where
 * it would have gone, so nothing is sent or drafted twice.
 */
export const makeDelivery = ({ config, drafts, mailbox, mailer, personAnswered, store }: DeliveryDeps) => {
  // A customer erased while their answer was on its way: the answer went out (it cannot be called
  // back), nothing of it is recorded, and their erased mail is never answered again.
  const record = <A extends ReplyOutcome>(data: A, intent?: ReplyIntended) =>
    store.append(mailbox, data, intent).pipe(
      Effect.catchTag("CustomerErasedMeanwhile", () =>
        Effect.logInfo(`The customer on ticket ${data.ticketId} was erased while the answer was on its way: its ${data._tag} is not recorded`)),
      Effect.as(data)
    )

  const sent = (intent: ReplyIntended, outcome: Pick<ReplySent, "response" | "attempts" | "foundInSent">) =>
    new ReplySent({
      emailEventId: intent.emailEventId,
      ticketId: intent.ticketId,
      customerId: intent.customerId,
      retry: intent.retry,
      messageId: intent.messageId,
      to: intent.to.address,
      ...outcome
    })

  const base = (intent: ReplyIntended) => ({
    emailEventId: intent.emailEventId,
    ticketId: intent.ticketId,
    customerId: intent.customerId,
    retry: intent.retry
  })

  /**
   * The customers whose answers may wait behind an earlier one (ReplyStore.mayWait): read at each
   * page, and added to as this responder records a failure asked for again by itself, so that the
   * look for an earlier answer costs a query only for them.
   */
  const mayWait = new Set<string>()
  const beginPage = Effect.map(store.mayWait({ mailbox, since: autoRetrySince(config, Date.now()) }), (customers) => {
    mayWait.clear()
    for (const customer of customers) mayWait.add(customer)
  })
  const waitingAhead = (intent: ReplyIntended) =>
    mayWait.has(intent.customerId)
      ? store.waitingAhead({ mailbox, customerId: intent.customerId, mailId: intent.emailEventId, since: autoRetrySince(config, Date.now()) })
      : Effect.succeed(undefined)

  /** A refusal of this one answer (for good), or of its recipient for now, which is asked for again by itself. */
  const refused = (intent: ReplyIntended, asked: Asked, error: OneAnswerRefused) => {
    const failed = { ...base(intent), stage: "smtp" as const, messageId: intent.messageId }
    if (error._tag === "SmtpRejected") return record(new ReplyFailed({ ...failed, reason: error.message, attempts: 1, autoRetry: null }))
    const autoRetry = autoRetryOf(config, asked, Date.now())
    if (autoRetry !== null) mayWait.add(intent.customerId)
    return record(new ReplyFailed({ ...failed, reason: error.message + nextStep(autoRetry), attempts: error.attempts, autoRetry }))
  }

  /**
   * Answers to one customer go in order. While an earlier answer to them waits for its automatic
   * retry (a relay greylisting them, their domain not found), a later one is not sent past it, even
   * when the relay would take it now: it waits, and is asked for again with that one (on its own
   * schedule while that retry is under way), up to SMTP_OUTAGE_WAIT as a refused answer would.
   */
  const heldBehind = (intent: ReplyIntended, asked: Asked, ahead: Ahead) => {
    const own = autoRetryOf(config, asked, Date.now())
    const until = asked.at.getTime() + Duration.toMillis(config.smtpOutageWait)
    const autoRetry = own === null || ahead.at === null ? own : { ...own, at: new Date(Math.min(Date.parse(ahead.at), until)).toISOString() }
    const reason = `held back behind the answer on ticket ${ahead.ticketId} to the same customer, which waits for the SMTP server to take it: ` +
      `answers to one customer go in order` + nextStep(autoRetry)
    return record(new ReplyFailed({ ...base(intent), stage: "smtp", messageId: intent.messageId, reason, attempts: 0, autoRetry }))
  }

  const send = (intent: ReplyIntended, asked: Asked) =>
    mailer.send(outbound(intent), { retryRecipient: asked.automatic === 0 }).pipe(
      Effect.flatMap((delivery) =>
        record(sent(intent, { response: delivery.response, attempts: delivery.attempts, foundInSent: false }), intent)
      ),
      // It fails, and the rest go on: a customer's domain must not stall the mailbox's answers.
      Effect.catchIf(refusesOneAnswer, (error) => refused(intent, asked, error)),
      // Once SMTP has the message, its ReplySent is committed even when a shutdown is under way.
      Effect.uninterruptible
    )

  /** Drafts are looked up by Message-ID before they are appended, so a crash never leaves two. */
  const draft = (intent: ReplyIntended, session: WithSession) =>
    session((s) => drafts.save(s, withReason(outbound(intent), intent.draftReason))).pipe(
      Effect.flatMap((saved) =>
        record(
          new ReplyDrafted({
            ...base(intent),
            messageId: intent.messageId,
            mailbox: saved.mailbox,
            uid: saved.uid,
            foundExisting: saved.foundExisting,
            reason: intent.draftReason
          })
        )
      ),
      // With REPLY_MODE=send only answers that need a person become drafts: without a drafts
      // folder they are skipped, and the rest go on. With REPLY_MODE=draft every answer waits.
      Effect.catchTag("DraftsMailboxMissing", (error): Effect.Effect<ReplyOutcome, DraftsMailboxMissing | SqlError> =>
        config.mode === "draft"
          ? Effect.fail(error)
          : record(new ReplySkipped({ ...base(intent), reason: "needs_human", detail: `${intent.draftReason ?? "the answer needs a person"}; ${error.message}` }))
      ),
      Effect.uninterruptible
    )

  const waitedOn = (asked: Asked) => Duration.millis(Math.max(0, Date.now() - asked.at.getTime()))
  const overdue = (asked: Asked) => Duration.greaterThanOrEqualTo(waitedOn(asked), config.smtpOutageWait)

  const handOver = (intent: ReplyIntended, asked: Asked, error: SmtpHold, session: WithSession) =>
    draft(handedOver(intent, error, Duration.seconds(Math.round(Duration.toSeconds(waitedOn(asked))))), session)

  /** What the SMTP server last held an answer back with, until it takes one again. */
  let holding: SmtpHold | undefined

  /**
   * The SMTP server holds every answer back (its sending limit, a refused login or From, an
   * outage): the answer waits, up to SMTP_OUTAGE_WAIT from when its mail was recorded (or its retry
   * asked for). Past that a person gets it as a draft, rather than the customer an answer that late.
   * While the server holds answers back, one past that wait is not tried first: a backlog of them
   * must not become a burst of refused logins, which can lock the account.
   */
  const sendOrHandOver = (intent: ReplyIntended, asked: Asked, session: WithSession) =>
    Effect.flatMap(
      waitingAhead(intent),
      (ahead) =>
        ahead !== undefined
          ? heldBehind(intent, asked, ahead)
          : holding !== undefined && overdue(asked)
          ? handOver(intent, asked, holding, session)
          : send(intent, asked).pipe(
            Effect.tap(() => Effect.sync(() => void (holding = undefined))),
            Effect.catchIf(isSmtpHold, (error) =>
              Effect.gen(function*() {
                holding = error
                if (!overdue(asked)) return yield* Effect.fail(error)
                return yield* handOver(intent, asked, error, session)
              }))
          )
    )

  const deliver = (intent: ReplyIntended, asked: Asked, session: WithSession) =>
    intent.mode === "draft" ? draft(intent, session) : sendOrHandOver(intent, asked, session)

  /** An intent without an outcome: a crash or an outage came between it and its ReplySent. */
  const resume = (intent: ReplyIntended, event: StoredEvent, email: EmailReceived, session: WithSession, asked: Asked) =>
    intent.mode === "draft" ? draft(intent, session) : resumeSend(intent, event, email, session, asked)

  /** A restart between handing an answer over as a draft and recording it: the draft stands. */
  const handedOverBefore = (intent: ReplyIntended, session: WithSession) =>
    session((s) =>
      Effect.flatMap(s.folder(drafts.mailbox), (folder) =>
        Effect.map(s.findByMessageId(folder, intent.messageId), (found) => found[0] === undefined ? undefined : { folder, uid: found[0] }))
    ).pipe(Effect.catchTag("MailboxNotFound", () => Effect.succeed(undefined)))

  const resumeSend = (intent: ReplyIntended, event: StoredEvent, email: EmailReceived, session: WithSession, asked: Asked) =>
    Effect.gen(function*() {
      const { found, sentFolder } = yield* session((s) =>
        Effect.flatMap(s.folder(config.sentMailbox), (sentFolder) =>
          Effect.map(s.findByMessageId(sentFolder, intent.messageId), (found) => ({ found, sentFolder })))
      ).pipe(Effect.catchTag("MailboxNotFound", () => new SentMailboxMissing({ mailbox: config.sentMailbox })))
      const drafted = found.length === 0 && overdue(asked) ? yield* handedOverBefore(intent, session) : undefined
      if (drafted !== undefined) {
        return yield* record(
          new ReplyDrafted({
            ...base(intent),
            messageId: intent.messageId,
            mailbox: drafted.folder,
            uid: drafted.uid,
            foundExisting: true,
            reason: "the SMTP server held this answer back past SMTP_OUTAGE_WAIT, so it was not sent (found in the drafts folder after a restart)"
          })
        )
      }
      if (found.length === 0) {
        // An outage or a sending limit can hold an answer back for hours, and a person may have
        // answered the customer meanwhile: the automatic answer must not follow theirs.
        const answered = yield* personAnswered(event, email, session)
        if (answered !== undefined) return yield* record(new ReplySkipped({ ...base(intent), ...answered }))
        yield* Effect.logInfo(`Reply ${intent.messageId} is not in ${sentFolder}: sending it now`)
        return yield* sendOrHandOver(intent, asked, session)
      }
      yield* Effect.logInfo(`Reply ${intent.messageId} is already in ${sentFolder}: recording it as sent, not sending it again`)
      return yield* record(sent(intent, {
        response: `found in ${sentFolder} (UID ${found[0]}) after a restart`,
        attempts: 0,
        foundInSent: true
      }), intent)
    })

  return { beginPage, deliver, record, resume }
}
