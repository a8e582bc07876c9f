import type { IncomingMail } from "./Incoming.js"
import { Effect, Exit, FiberRef, LogLevel, Metric, Option, Ref, Stream } from "effect"
import type { Tracer } from "effect"
import { includePii } from "../config/Telemetry.js"
import { markSeenPolicy } from "../config/Config.js"
import type { Backfill } from "../config/Config.js"
import { IntakeConfig } from "../config/Config.js"
import type { RawMail } from "../mail/Email.js"
import type { Incoming } from "./Decide.js"
import type { ImapSession, MailboxStatus, UidRange } from "../mailbox/Imap.js"

import { Parser } from "../mail/Parser.js"
import { countDecisions, readIncoming, readIncomingBatch } from "./Incoming.js"
import { SenderAuthenticator } from "../mail/SenderAuth.js"
import type { Cursor } from "../log/StateStore.js"
import { StateStore } from "../log/StateStore.js"
import { TicketRepo } from "./TicketRepo.js"
import { Watched } from "../mailbox/Watched.js"
import type { FetchBatch } from "../mailbox/Batches.js"
import { planBatches, smallMailBound } from "../mailbox/Batches.js"
import { backlog, emails, pollCount, processingDuration } from "../telemetry/Metrics.js"
import { currentTraceparent, withEventTrace, withSpanWhenTracing } from "../telemetry/Tracing.js"

export interface PassSummary {
  readonly found: number
  readonly received: number
  readonly ticketsCreated: number
  readonly duplicates: number
  readonly quarantined: number
  /** Already in the log from an earlier, interrupted run; only their \Seen flag was missing. */
  readonly alreadyRecorded: number
}

export const emptySummary: PassSummary = {
  found: 0,
  received: 0,
  ticketsCreated: 0,
  duplicates: 0,
  quarantined: 0,
  alreadyRecorded: 0
}

export const addSummaries = (a: PassSummary, b: PassSummary): PassSummary => ({
  found: a.found + b.found,
  received: a.received + b.received,
  ticketsCreated: a.ticketsCreated + b.ticketsCreated,
  duplicates: a.duplicates + b.duplicates,
  quarantined: a.quarantined + b.quarantined,
  alreadyRecorded: a.alreadyRecorded + b.alreadyRecorded
})

/** mailroom_emails by outcome, once per batch rather than once per mail. */
export const countOutcomes = (counts: Pick<PassSummary, "received" | "duplicates" | "quarantined">) =>
  Effect.forEach(
    [["EmailReceived", counts.received], ["EmailDuplicate", counts.duplicates], ["EmailQuarantined", counts.quarantined]] as const,
    ([outcome, count]) => count > 0 ? Metric.incrementBy(Metric.tagged(emails, "outcome", outcome), count) : Effect.void,
    { discard: true }
  )

/**
 * imapflow reads an RFC822.SIZE line in 15–40 µs: past a thousand mails, a second SEARCH (one line,
 * one round trip) costs less than a line per mail, even to a server 20 ms away.
 */
const SIZES_BY_SEARCH_OVER = 1000

/** Where a mailbox seen for the first time (or under a new UIDVALIDITY) starts, per IMAP_BACKFILL. */
export const startingCursor = (mailbox: string, status: MailboxStatus, backfill: Backfill): Cursor => {
  const existing = Math.max(0, status.uidNext - 1)
  switch (backfill) {
    case "all":
      return { mailbox, uidValidity: status.uidValidity, lastUid: 0, backfillTo: 0, seenUid: 0 }
    case "unseen":
      return { mailbox, uidValidity: status.uidValidity, lastUid: 0, backfillTo: existing, seenUid: 0 }
    case "none":
      return { mailbox, uidValidity: status.uidValidity, lastUid: existing, backfillTo: existing, seenUid: existing }
  }
}

/** One pass over the mailbox: new UIDs above the cursor → fetch in batches → parse → commit → \Seen. */
export class Intake extends Effect.Service<Intake>()("mailroom/Intake", {
  effect: Effect.gen(function*() {
    const config = yield* IntakeConfig
    const parser = yield* Parser
    const senders = yield* SenderAuthenticator
    const read = readIncoming(parser, senders)
    const readBatch = readIncomingBatch(parser, senders)
    const repo = yield* TicketRepo
    const state = yield* StateStore
    const { key: mailbox, folder } = yield* Watched
    const pii = yield* includePii
    // MARK_SEEN=after-reply: the responder flags received mail once its reply is sent or skipped.
    const afterReply = (yield* markSeenPolicy) === "after-reply"

    const cursorFor = Effect.fn("Intake.cursor")(function*(status: MailboxStatus) {
      const fresh = startingCursor(mailbox, status, config.backfill)
      const current = yield* state.cursor(mailbox)
      if (Option.isNone(current)) {
        yield* state.reset(fresh)
        yield* Effect.logInfo(
          `First look at ${mailbox}: ${
            { unseen: "taking the unread mail", all: "taking every mail", none: "taking only new mail" }[config.backfill]
          } (IMAP_BACKFILL=${config.backfill})`
        )
        return fresh
      }
      if (current.value.uidValidity !== status.uidValidity) {
        yield* repo.resetMailbox(current.value, fresh)
        yield* Effect.logWarning(
          `UIDVALIDITY of ${mailbox} changed from ${current.value.uidValidity} to ${status.uidValidity}: rescanning (IMAP_BACKFILL=${config.backfill}); Message-IDs already recorded become duplicates`
        )
        return fresh
      }
      return current.value
    })

    /** After a crash between commit and \Seen, the flags of recorded mail are set again. */
    const repairSeen = Effect.fn("Intake.repairSeen")(function*(session: ImapSession, cursor: Cursor) {
      if (cursor.seenUid >= cursor.lastUid) return
      const uids = yield* repo.recordedUids(mailbox, cursor.uidValidity, cursor.seenUid, cursor.lastUid)
      if (!afterReply) yield* session.markSeen(uids)
      yield* state.markSeen(mailbox, cursor.uidValidity, cursor.lastUid)
    })

    /**
     * The mail in `range` with sizes. Over SIZES_BY_SEARCH_OVER mails, only those a second SEARCH
     * finds LARGER than smallMailBound are sized; the rest are planned at the bound.
     */
    const sizesBySearch = (session: ImapSession, range: UidRange, unseenOnly: boolean) =>
      Effect.gen(function*() {
        const uids = yield* session.search(range, { unseenOnly })
        if (uids.length <= SIZES_BY_SEARCH_OVER) return yield* session.sizes(uids)
        const bound = smallMailBound(config)
        const larger = yield* session.search(range, { unseenOnly, larger: bound }).pipe(
          // LARGER is IMAP4rev1's own; a server (or proxy) that refuses it gets every size asked.
          Effect.catchTag("ImapProtocolError", () => Effect.succeed(undefined))
        )
        if (larger === undefined) return yield* session.sizes(uids)
        const large = yield* session.sizes(larger)
        const sizes = new Map(large.map((mail) => [mail.uid, mail.size]))
        return uids.map((uid) => ({ uid, size: sizes.get(uid) ?? bound }))
      })

    /**
     * The mails to take, with their sizes: the backfill range's unread mail, then everything above
     * it, in one FETCH unless UIDNEXT says it may be more than SIZES_BY_SEARCH_OVER mails.
     */
    const candidates = (session: ImapSession, cursor: Cursor, status: MailboxStatus) =>
      Effect.gen(function*() {
        const backfill = cursor.lastUid < cursor.backfillTo
          ? yield* sizesBySearch(session, { from: cursor.lastUid + 1, to: cursor.backfillTo }, true)
          : []
        const from = Math.max(cursor.lastUid, cursor.backfillTo) + 1
        const fresh = status.uidNext > 0 && from >= status.uidNext
          ? []
          : status.uidNext - from > SIZES_BY_SEARCH_OVER
          ? yield* sizesBySearch(session, { from }, false)
          : yield* session.sizesFrom(from)
        return [...backfill, ...fresh]
      })

    /** Each mail gets a trace of its own, linked to the pass that found it. */
    const prepare = (pass: Option.Option<Tracer.AnySpan>) => (raw: RawMail) =>
      Effect.gen(function*() {
        const mail = yield* read(raw, yield* currentTraceparent)
        if (mail.parsed._tag === "Accepted" && pii) {
          yield* Effect.annotateCurrentSpan({ "mailroom.from": mail.parsed.email.from.address, "mailroom.subject": mail.parsed.email.subject })
        }
        return mail
      }).pipe(
        // Per-mail spans share one call site: capturing it 10,000 times per backlog tells nothing new.
        withSpanWhenTracing("mailroom.email", {
          captureStackTrace: false,
          root: true,
          links: Option.match(pass, { onNone: () => [], onSome: (span) => [{ _tag: "SpanLink", span, attributes: {} }] }),
          attributes: { "mailroom.mailbox": mailbox, "mailroom.uid": raw.uid, "messaging.message.body.size": raw.size }
        })
      )

    /** Each mail in a span of its own while tracing; else the batch is read at once (readIncomingBatch). */
    const readAll = (raws: ReadonlyArray<RawMail>, pass: Option.Option<Tracer.AnySpan>) =>
      Effect.flatMap(FiberRef.get(FiberRef.currentTracerEnabled), (tracing) =>
        tracing ? Effect.forEach(raws, prepare(pass), { concurrency: 16 }) : readBatch(raws))

    /** Closes each mail's trace with what became of it; with the tracer off, nothing per mail. */
    const traceOutcomes = (committed: Effect.Effect.Success<ReturnType<typeof repo.commit>>, mails: ReadonlyArray<Incoming>) =>
      Effect.flatMap(FiberRef.get(FiberRef.currentTracerEnabled), (tracing) => tracing ? traceEach(committed, mails) : Effect.void)

    const traceEach = (committed: Effect.Effect.Success<ReturnType<typeof repo.commit>>, mails: ReadonlyArray<Incoming>) =>
      Effect.suspend(() => {
        const traces = new Map(mails.map((mail) => [mail.uid, mail.trace ?? null]))
        return Effect.forEach(committed.decisions, (decision) =>
          Effect.void.pipe(
            Effect.withSpan("mailroom.email.recorded", {
              captureStackTrace: false,
              attributes: {
                "mailroom.uid": decision.uid,
                "mailroom.event.type": decision.data._tag,
                "mailroom.event.id": decision.eventId,
                ...(decision.ticketId ? { "mailroom.ticket.id": decision.ticketId } : {})
              }
            }),
            withEventTrace({ trace: traces.get(decision.uid) ?? null })
          ), { discard: true })
      })

    /**
     * One line per batch; one per mail only at LOG_LEVEL=debug (checked once per batch: building a
     * line per mail costs even when the logger drops it). A quarantined mail always gets its own.
     */
    const logDecisions = (committed: Effect.Effect.Success<ReturnType<typeof repo.commit>>, summary: PassSummary) =>
      Effect.gen(function*() {
        const debug = LogLevel.lessThanEqual(yield* FiberRef.get(FiberRef.currentMinimumLogLevel), LogLevel.Debug)
        for (const { data, uid } of committed.decisions) {
          if (data._tag === "EmailQuarantined") yield* Effect.logWarning(`Quarantined UID ${uid} (${data.reason}): ${data.detail}`)
          else if (!debug) continue
          else if (data._tag === "EmailDuplicate") yield* Effect.logDebug(`Skipped duplicate of ${data.messageId} (UID ${uid})`)
          else if (data.newTicket) yield* Effect.logDebug(`Created ticket ${data.ticketId} from UID ${uid}: ${data.subject}`)
          else yield* Effect.logDebug(`Added UID ${uid} to ticket ${data.ticketId}: ${data.subject}`)
        }
        if (committed.decisions.length > 0) {
          yield* Effect.logInfo(
            `Recorded ${committed.decisions.length} email(s): ${summary.received} received (${summary.ticketsCreated} new ticket(s)), ` +
              `${summary.duplicates} duplicate(s), ${summary.quarantined} quarantined`
          )
        }
      })

    const summarize = (committed: Effect.Effect.Success<ReturnType<typeof repo.commit>>): PassSummary => ({
      found: committed.decisions.length + committed.alreadyRecorded.length,
      ...countDecisions(committed.decisions),
      alreadyRecorded: committed.alreadyRecorded.length
    })

    const commitBatch = (cursor: Cursor, batch: FetchBatch, mails: ReadonlyArray<IncomingMail>, seenTo: number) =>
      Effect.gen(function*() {
        const committed = yield* repo.commit({
          mailbox,
          uidValidity: cursor.uidValidity,
          items: mails,
          cursorTo: Math.max(...batch.uids),
          ...(seenTo > 0 ? { seenTo } : {})
        })
        const summary = summarize(committed)
        yield* logDecisions(committed, summary)
        yield* traceOutcomes(committed, mails)
        yield* countOutcomes(summary)
        return {
          summary,
          seen: afterReply
            ? committed.decisions.flatMap((d) => d.data._tag === "EmailReceived" ? [] : [d.uid])
            : mails.map((mail) => mail.uid),
          seenUpTo: Math.max(...batch.uids)
        }
      })

    const pass = Effect.fn("Intake.pass")(function*(session: ImapSession) {
      const status = yield* session.open(folder)
      yield* session.hold(folder)
      const cursor = yield* cursorFor(status)
      yield* repairSeen(session, cursor)
      const found = yield* candidates(session, cursor, status)
      yield* Effect.annotateCurrentSpan({ "mailroom.mailbox": mailbox, "messaging.batch.message_count": found.length })
      yield* Metric.increment(pollCount)
      yield* Metric.set(backlog, found.length)
      const span = yield* Effect.option(Effect.currentSpan)
      if (found.length === 0) {
        yield* Effect.logInfo("No new emails found")
      } else {
        yield* Effect.logInfo(`Found ${found.length} new email(s)`)
      }
      const batches = planBatches(found, config)
      // Fetched and parsed in one stage: Dovecot serves a batch faster than it is parsed, so a fetched
      // batch waiting for the parser would only hold memory, and make nothing faster.
      const fetchAndRead = (batch: FetchBatch) =>
        session.fetch(batch.uids, { headersOnly: batch.headersOnly, bytes: batch.bytes }).pipe(
          Effect.flatMap((raws) => readAll(raws, span)),
          Effect.map((mails) => ({ batch, mails }))
        )
      // \Seen once recorded; the cursor's seen_uid follows, so that repairSeen redoes what a crash cut
      // off. Over several batches it moves in the next commit, up to the \Seen stored by then, and
      // once at the end: an UPDATE of its own after each \Seen waited for the next commit's lock on
      // the cursor row (about 3% of a small pass).
      const seenSoFar = yield* Ref.make(0)
      const flushSeen = Effect.flatMap(Ref.get(seenSoFar), (upTo) => upTo > 0 ? state.markSeen(mailbox, cursor.uidValidity, upTo) : Effect.void)
      // A shutdown signal lets the commit in flight finish; a \Seen it cuts off, repairSeen redoes.
      const record = ({ batch, mails }: Effect.Effect.Success<ReturnType<typeof fetchAndRead>>) =>
        Effect.flatMap(Ref.get(seenSoFar), (seenTo) => Effect.uninterruptible(commitBatch(cursor, batch, mails, seenTo))).pipe(
          Metric.trackDuration(processingDuration)
        )
      const flag = ({ seen, seenUpTo, summary }: Effect.Effect.Success<ReturnType<typeof record>>) =>
        Effect.uninterruptible(session.markSeen(seen).pipe(Effect.zipRight(Ref.update(seenSoFar, (upTo) => Math.max(upTo, seenUpTo))))).pipe(
          Effect.as(summary)
        )
      // One batch (most passes on IDLE news: a mail or two) has nothing to overlap, and a stream's
      // machinery costs thousands of runtime steps a pass: a thousand mailboxes' passes feel it.
      const summary = yield* (batches.length <= 1
        ? Effect.forEach(batches, (batch) => fetchAndRead(batch).pipe(Effect.flatMap(record), Effect.flatMap(flag))).pipe(
          Effect.map((summaries) => summaries.reduce(addSummaries, emptySummary))
        )
        : Stream.fromIterable(batches).pipe(
          Stream.mapEffect(fetchAndRead),
          Stream.buffer({ capacity: 1 }),
          Stream.mapEffect(record),
          // UID STORE waits behind the next batch's FETCH on the one connection: the next commit need not.
          Stream.buffer({ capacity: 1 }),
          Stream.mapEffect(flag),
          Stream.runFold(emptySummary, addSummaries)
        )).pipe(
          Effect.tap(() => flushSeen),
          // Cut short, the \Seen stored so far is still written down where it can be; else repairSeen stores it again.
          Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.ignore(flushSeen))
        )
      if (cursor.lastUid < cursor.backfillTo) {
        yield* state.advance(mailbox, cursor.uidValidity, cursor.backfillTo)
        yield* state.markSeen(mailbox, cursor.uidValidity, cursor.backfillTo)
      }
      if (found.length > 0) yield* Effect.logInfo(`Processed ${summary.found} email(s)`)
      return summary
    }, Effect.scoped)

    return { pass, mailbox } as const
  })
}) {}
