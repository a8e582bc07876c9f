import type { IncomingMail } from "./Incoming.js"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer } from "effect"
import type { IntakeDecision } from "./Decide.js"
import { decide } from "./Decide.js"
import { answerKey, intakeEventTypes, MailboxReset } from "../log/Event.js"
import type { StoredEvent } from "../log/Event.js"
import type { NewEvent } from "../log/EventLog.js"
import { EventLog } from "../log/EventLog.js"
import type { KnownRows } from "./Known.js"
import { knownFromLog, knownQuery } from "./Known.js"
import { project, projectionStatements } from "./Projection.js"
import type { Cursor } from "../log/StateStore.js"
import { advanceStatement, StateStore } from "../log/StateStore.js"
import { Vault } from "../log/Vault.js"

/** The cursor's UIDVALIDITY changed under a batch (another instance reset it): nothing was written. */
export class CursorMoved extends Data.TaggedError("CursorMoved")<{ readonly mailbox: string }> {
  override get message() {
    return `the cursor of ${this.mailbox} moved during the batch; the batch was rolled back and will be fetched again`
  }
}

export interface Batch {
  readonly mailbox: string
  readonly uidValidity: number
  readonly items: ReadonlyArray<IncomingMail>
  /**
   * The cursor moves here: the highest UID the batch covers, whether or not each UID had mail.
   * Absent for mail that comes from no cursor (an import); its `uid` is then its position in the source.
   */
  readonly cursorTo?: number
  /**
   * \Seen is stored up to here (a pass's earlier batches): the cursor's seen_uid moves with this
   * commit, rather than in a statement of its own that would wait for this transaction's lock on
   * the cursor row. Only with `cursorTo`.
   */
  readonly seenTo?: number
}

export interface Committed {
  readonly decisions: ReadonlyArray<IntakeDecision>
  /** UIDs whose intake event was already in the log (written by an earlier run or another instance). */
  readonly alreadyRecorded: ReadonlyArray<number>
}

export interface TicketRepoShape {
  /** Events, projections and the cursor of one batch, in one transaction of the log. */
  readonly commit: (batch: Batch) => Effect.Effect<Committed, SqlError | CursorMoved>
  /** Appends MailboxReset and starts the mailbox over under its new UIDVALIDITY, in one transaction. */
  readonly resetMailbox: (previous: Cursor, next: Cursor) => Effect.Effect<void, SqlError>
  /** UIDs in (above, upTo] that have an intake event: the mails whose \Seen flag may still be missing. */
  readonly recordedUids: (
    mailbox: string,
    uidValidity: number,
    above: number,
    upTo: number
  ) => Effect.Effect<ReadonlyArray<number>, SqlError>
  /**
   * The newest `limit` messages of a ticket that this sender wrote or was answered with, oldest
   * first: a prompt never holds another participant's mail.
   */
  readonly ticketThread: (ticketId: string, sender: string, limit: number) => Effect.Effect<TicketThread, SqlError>
  /** Which of these Message-IDs mailroom has in `mailbox`: customers' mail and its own answers. */
  readonly knownMessageIds: (mailbox: string, messageIds: ReadonlyArray<string>) => Effect.Effect<ReadonlySet<string>, SqlError>
}

export interface ThreadMessage {
  readonly direction: "inbound" | "outbound"
  readonly from: string
  readonly subject: string
  readonly text: string
  /** An inbound mail's HTML part, against which its text part is checked before the model reads it (PartsAgree). */
  readonly html: string | null
  readonly at: Date
}

export interface TicketThread {
  readonly messages: ReadonlyArray<ThreadMessage>
}

/** The log events one batch's decisions become. */
const intakeEvents = (batch: Batch, decisions: ReadonlyArray<IntakeDecision>, at: Date): Array<NewEvent> => {
  const traces = new Map(batch.items.map((item) => [item.uid, item.trace ?? null]))
  return decisions.map((decision) => ({
    id: decision.eventId,
    type: decision.data._tag,
    mailbox: batch.mailbox,
    uidvalidity: batch.uidValidity,
    uid: decision.uid,
    ticketId: decision.ticketId,
    occurredAt: at,
    data: decision.data,
    trace: traces.get(decision.uid) ?? null
  }))
}

const resetEvent = (previous: Cursor, next: Cursor): NewEvent => ({
  id: crypto.randomUUID(),
  type: "MailboxReset",
  mailbox: next.mailbox,
  uidvalidity: next.uidValidity,
  uid: null,
  ticketId: null,
  occurredAt: new Date(),
  data: new MailboxReset({ previousUidValidity: previous.uidValidity, uidValidity: next.uidValidity }),
  trace: null
})

const makeSql = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const log = yield* EventLog
  const state = yield* StateStore
  const { customerId } = yield* Vault

  const commit = (batch: Batch) =>
    log.transaction((append) =>
      Effect.gen(function*() {
        // The cursor moves first, in the statement that finds what is already recorded and what the
        // batch points at: round trips saved while the append lock is held (every mailbox's commit
        // waits for it). Under a new UIDVALIDITY nothing moves, and the whole transaction rolls back.
        // What is known is read for the whole batch: a mail recorded before (after a crash) only
        // adds what the rest would find anyway.
        const uids = batch.items.map((item) => item.uid)
        // Without the range, a table with no statistics yet (a first import) had `= ANY` filter the
        // mailbox's whole stretch of the index; with it, only the batch's is read (0 to -1, nothing,
        // for an empty batch).
        const lowest = uids.reduce((low, uid) => Math.min(low, uid), uids.length > 0 ? Infinity : 0)
        const highest = uids.reduce((high, uid) => Math.max(high, uid), -1)
        const knownNow = knownQuery(sql, batch.items, customerId)
        const [found] = yield* sql<KnownRows & { readonly moved: boolean; readonly recorded: ReadonlyArray<string> }>`
          ${batch.cursorTo === undefined ? sql.literal("") : sql`WITH advanced AS (${advanceStatement(sql, batch.mailbox, batch.uidValidity, batch.cursorTo, batch.seenTo)})`}
          SELECT ${batch.cursorTo === undefined ? sql.literal("false") : sql.literal("NOT EXISTS (SELECT 1 FROM advanced)")} AS moved,
            ARRAY(SELECT uid::text FROM events WHERE mailbox = ${batch.mailbox} AND uidvalidity = ${batch.uidValidity}
              AND uid BETWEEN ${lowest} AND ${highest} AND uid = ANY(${uids})
              AND type IN ('EmailReceived', 'EmailDuplicate', 'EmailQuarantined')) AS recorded,
            known.*
          FROM (${knownNow.statement}) AS known
        `
        if (found!.moved) return yield* new CursorMoved({ mailbox: batch.mailbox })
        const alreadyRecorded = new Set(found!.recorded.map(Number))
        const fresh = batch.items.filter((item) => !alreadyRecorded.has(item.uid))
        const { keys, known } = knownNow.read(found!)
        const decisions = decide(fresh, known, { customerId })
        const at = new Date()
        // Raw mail, events and the projection in one statement, for the same reason.
        yield* append(intakeEvents(batch, decisions, at), {
          alongside: [...rawStatement(sql, fresh), ...projectionStatements(sql, project(batch.mailbox, decisions, at), at)],
          keys
        })
        return { decisions, alreadyRecorded: [...alreadyRecorded] }
      })
    ).pipe(
      Effect.withSpan("TicketRepo.commit", {
        kind: "client",
        attributes: {
          "db.system.name": "postgresql",
          "db.operation.name": "COMMIT",
          "mailroom.mailbox": batch.mailbox,
          "mailroom.batch.size": batch.items.length
        }
      })
    )

  const ticketThread = (ticketId: string, sender: string, limit: number) =>
    sql<{ direction: "inbound" | "outbound"; from_email: string; subject: string; text: string; html: string | null; received_at: Date }>`
      SELECT direction, from_email, subject, text, CASE WHEN direction = 'inbound' THEN html END AS html, received_at FROM messages
      WHERE ticket_id = ${ticketId}
        AND ((direction = 'inbound' AND from_email = ${sender}) OR (direction = 'outbound' AND to_email = ${sender}))
      ORDER BY received_at DESC, id LIMIT ${limit}
    `.pipe(Effect.map((rows) => ({
      messages: [...rows].reverse().map((row) => ({
        direction: row.direction,
        from: row.from_email,
        subject: row.subject,
        text: row.text,
        html: row.html,
        at: row.received_at
      }))
    } satisfies TicketThread)))

  const knownMessageIds = (mailbox: string, messageIds: ReadonlyArray<string>) =>
    messageIds.length === 0
      ? Effect.succeed(new Set<string>())
      : sql<{ message_id: string }>`SELECT message_id FROM messages WHERE mailbox = ${mailbox} AND message_id IN ${sql.in(messageIds)}`.pipe(
        Effect.map((rows) => new Set(rows.map((row) => row.message_id)))
      )

  return TicketRepo.of({
    commit,
    resetMailbox: (previous, next) =>
      log.transaction((append) => Effect.zipRight(append([resetEvent(previous, next)]), state.reset(next))).pipe(
        Effect.withSpan("TicketRepo.resetMailbox")
      ),
    recordedUids: (mailbox, uidValidity, above, upTo) =>
      sql<{ uid: string }>`
        SELECT uid FROM events WHERE mailbox = ${mailbox} AND uidvalidity = ${uidValidity}
          AND uid > ${above} AND uid <= ${upTo} AND type IN ('EmailReceived', 'EmailDuplicate', 'EmailQuarantined')
        ORDER BY uid
      `.pipe(Effect.map((rows) => rows.map((row) => Number(row.uid)))),
    ticketThread,
    knownMessageIds
  })
})

/** Raw bytes, content-addressed: a mail seen twice is stored once. */
const rawStatement = (sql: SqlClient.SqlClient, items: Batch["items"]) => {
  const sources = [...new Map(items.map((item) => [item.rawSha256, item])).values()]
  return sources.length === 0 ? [] : [sql`
    INSERT INTO raw_messages ${
    sql.insert(sources.map((item) => ({ sha256: item.rawSha256, size: item.size, headers_only: item.headersOnly, bytes: item.source })))
  } ON CONFLICT (sha256) DO NOTHING`]
}

/** The same contract over the in-memory log, for tests: decisions come from the same pure functions. */
/** Each answer's intent, by the EmailReceived it answers and its retry: what a ReplySent in the memory log sent. */
const intentsByEmail = (events: ReadonlyArray<StoredEvent>) =>
  new Map(events.flatMap((e) => e.data._tag === "ReplyIntended" ? [[answerKey(e.data), e.data] as const] : []))

const makeMemory = Effect.gen(function*() {
  const log = yield* EventLog
  const state = yield* StateStore
  const { customerId } = yield* Vault
  const all = log.read(0n, Number.MAX_SAFE_INTEGER)
  const intakeUids = (mailbox: string, uidValidity: number) =>
    Effect.map(all, (events) =>
      events.filter((e) => e.mailbox === mailbox && e.uidvalidity === uidValidity && intakeEventTypes.includes(e.type)).map((e) => e.uid!)
    )
  return TicketRepo.of({
    commit: (batch) =>
      log.transaction((append) =>
        Effect.gen(function*() {
          const recorded = new Set(yield* intakeUids(batch.mailbox, batch.uidValidity))
          const fresh = batch.items.filter((item) => !recorded.has(item.uid))
          const decisions = decide(fresh, knownFromLog(yield* all), { customerId })
          if (batch.cursorTo !== undefined && !(yield* state.advance(batch.mailbox, batch.uidValidity, batch.cursorTo))) {
            return yield* new CursorMoved({ mailbox: batch.mailbox })
          }
          if (batch.cursorTo !== undefined && batch.seenTo !== undefined) yield* state.markSeen(batch.mailbox, batch.uidValidity, batch.seenTo)
          yield* append(intakeEvents(batch, decisions, new Date()))
          return { decisions, alreadyRecorded: batch.items.filter((i) => recorded.has(i.uid)).map((i) => i.uid) }
        })
      ),
    resetMailbox: (previous, next) => log.transaction((append) => Effect.zipRight(append([resetEvent(previous, next)]), state.reset(next))),
    recordedUids: (mailbox, uidValidity, above, upTo) =>
      intakeUids(mailbox, uidValidity).pipe(Effect.map((uids) => uids.filter((uid) => uid > above && uid <= upTo))),
    ticketThread: (ticketId, sender, limit) =>
      Effect.map(all, (events) => {
        const intents = intentsByEmail(events)
        const messages = events.filter((e) => e.ticketId === ticketId).flatMap((e): Array<ThreadMessage> => {
          if (e.data._tag === "EmailReceived" && e.data.from.address === sender) {
            return [{ direction: "inbound", from: e.data.from.address, subject: e.data.subject, text: e.data.text, html: e.data.html, at: e.occurredAt }]
          }
          const intent = e.data._tag === "ReplySent" ? intents.get(answerKey(e.data)) : undefined
          return intent && intent.to.address === sender
            ? [{ direction: "outbound", from: intent.from, subject: intent.subject, text: intent.text, html: null, at: e.occurredAt }]
            : []
        })
        return { messages: messages.slice(-limit) }
      }),
    knownMessageIds: (mailbox, messageIds) =>
      Effect.map(all, (events) => {
        const intents = intentsByEmail(events)
        const known = new Set(events.filter((e) => e.mailbox === mailbox).flatMap((e) =>
          e.data._tag === "EmailReceived" && e.data.messageId !== null
            ? [e.data.messageId]
            : e.data._tag === "ReplySent"
            ? [intents.get(answerKey(e.data))?.messageId ?? ""]
            : []
        ))
        return new Set(messageIds.filter((id) => known.has(id)))
      })
  })
})

/** Intake's writes to the log and its projections, and the ticket queries built on them. */
export class TicketRepo extends Context.Tag("mailroom/TicketRepo")<TicketRepo, TicketRepoShape>() {
  static readonly Live = Layer.effect(TicketRepo, makeSql)
  static readonly Test = Layer.effect(TicketRepo, makeMemory)
}
