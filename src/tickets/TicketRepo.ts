import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Deferred, Duration, Effect, Layer, Ref, Schema } from "effect"
import { DatabaseConfig } from "../config/Config.js"
import type { Incoming, IntakeDecision, Known, KnownMail, TicketParties } from "./Decide.js"
import { decide, lookupKeys, lookupTokens } from "./Decide.js"
import { EventData, MailboxReset } from "../log/Event.js"
import type { EventType, ReplyEvent, ReplyIntended, ReplyOutcome, StoredEvent } from "../log/Event.js"
import { project } from "./Projection.js"
import { outboundRow, ticketToken } from "../replies/Reply.js"
import type { Cursor } from "../log/StateStore.js"
import { StateStore } from "../log/StateStore.js"
import { inTransaction } from "../log/Sql.js"
import { currentTraceparent } from "../telemetry/Tracing.js"

/** The cursor's UIDVALIDITY changed under a batch (another instance reset it): nothing was written. */
export class CursorMoved extends Data.TaggedError("CursorMoved")<{ readonly mailbox: string }> {
  override get message() {
    return `the cursor of ${this.mailbox} moved during the batch; the batch was rolled back and will be fetched again`
  }
}

export interface Batch {
  readonly mailbox: string
  readonly uidValidity: number
  readonly items: ReadonlyArray<Incoming & { readonly source: Buffer }>
  /** The cursor moves here: the highest UID the batch covers, whether or not each UID had mail. */
  readonly cursorTo: number
}

export interface Committed {
  readonly decisions: ReadonlyArray<IntakeDecision>
  /** UIDs whose intake event was already in the log (written by an earlier run or another instance). */
  readonly alreadyRecorded: ReadonlyArray<number>
}

/** Appends this process made to the log, so that its readers (relay, responder) wake at once instead of polling. */
export interface LogAppends {
  /**
   * Runs `step` (a drain of the log), then again whenever this process appends, and at least every
   * `poll` for what other instances append to a shared PostgreSQL; the embedded database is this
   * process's alone (its data folder is locked), so there the poll is only a 5 s backstop.
   */
  readonly follow: <E, R>(step: Effect.Effect<unknown, E, R>, poll: Duration.DurationInput) => Effect.Effect<never, E, R>
}

const makeAppends = (othersAppend: boolean) =>
  Effect.gen(function*() {
    // Completed, and replaced, at each append.
    const next = yield* Ref.make(yield* Deferred.make<void>())
    const bump = Effect.flatMap(Deferred.make<void>(), (fresh) =>
      Effect.flatMap(Ref.getAndSet(next, fresh), (done) => Deferred.succeed(done, undefined)))
    const follow = <E, R>(step: Effect.Effect<unknown, E, R>, poll: Duration.DurationInput) =>
      Effect.gen(function*() {
        // Taken before the drain: an append during it has completed this one, and the drain runs again at once.
        const appended = yield* Ref.get(next)
        yield* step
        yield* Deferred.await(appended).pipe(Effect.timeoutOption(othersAppend ? poll : "5 seconds"))
      }).pipe(Effect.forever)
    return { bump, appends: { follow } satisfies LogAppends }
  })

export interface TicketRepoShape {
  readonly appends: LogAppends
  /** Events, projections and the cursor of one batch, in one transaction. */
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
  readonly eventsAfter: (seq: bigint, limit: number) => Effect.Effect<ReadonlyArray<StoredEvent>, SqlError>
  readonly countsByType: Effect.Effect<Readonly<Record<string, number>>, SqlError>
  readonly lastSeq: Effect.Effect<bigint, SqlError>
  /** The reply events recorded for one EmailReceived. */
  readonly replyState: (emailEventId: string) => Effect.Effect<ReplyState, SqlError>
  /**
   * Appends one reply event; a ReplySent also writes the answer's outbound `messages` row (from its
   * ReplyIntended), in the same transaction. The database refuses a second intent or outcome.
   */
  readonly appendReply: (mailbox: string, data: ReplyEvent) => Effect.Effect<string, SqlError>
  /** Replies sent since `since` to this customer or to this address (a Reply-To can point anywhere). */
  readonly repliesSentSince: (customerId: string, to: string, since: Date) => Effect.Effect<number, SqlError>
  /** Answers sent or drafted since `since`, on one ticket or (without ticketId) across the log. */
  readonly answersSince: (scope: { readonly ticketId?: string }, since: Date) => Effect.Effect<number, SqlError>
  /**
   * The newest `limit` messages of a ticket that this sender wrote or was answered with, oldest
   * first: a prompt never holds another participant's mail.
   */
  readonly ticketThread: (ticketId: string, sender: string, limit: number) => Effect.Effect<TicketThread, SqlError>
}

export interface ReplyState {
  readonly intent: ReplyIntended | undefined
  readonly outcome: ReplyOutcome | undefined
}

export interface ThreadMessage {
  readonly direction: "inbound" | "outbound"
  readonly from: string
  readonly subject: string
  readonly text: string
  readonly at: Date
}

export interface TicketThread {
  readonly messages: ReadonlyArray<ThreadMessage>
}

const isIntent = (data: EventData): data is ReplyIntended => data._tag === "ReplyIntended"
const isOutcome = (data: EventData): data is ReplyOutcome =>
  data._tag === "ReplySent" || data._tag === "ReplyDrafted" || data._tag === "ReplySkipped" || data._tag === "ReplyFailed"

const replyStateOf = (events: ReadonlyArray<EventData>): ReplyState => ({
  intent: events.find(isIntent),
  outcome: events.find(isOutcome)
})

const encodeData = Schema.encodeSync(EventData)
const decodeData = Schema.decodeUnknownSync(EventData)

/** Serialises appends, so that `seq` order is commit order and a relay reading by seq misses nothing. */
const APPEND_LOCK = 0x6d61696c

interface EventRow {
  readonly seq: string
  readonly id: string
  readonly type: EventType
  readonly mailbox: string
  readonly uidvalidity: string | null
  readonly uid: string | null
  readonly ticket_id: string | null
  readonly occurred_at: Date
  readonly data: unknown
  readonly trace: string | null
}

const nullableNumber = (value: string | null) => value === null ? null : Number(value)

const fromRow = (row: EventRow): StoredEvent => ({
  seq: BigInt(row.seq),
  id: row.id,
  type: row.type,
  mailbox: row.mailbox,
  uidvalidity: nullableNumber(row.uidvalidity),
  uid: nullableNumber(row.uid),
  ticketId: row.ticket_id,
  occurredAt: row.occurred_at,
  data: decodeData(typeof row.data === "string" ? JSON.parse(row.data) : row.data),
  trace: row.trace
})

const makeSql = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const state = yield* StateStore
  const { appends, bump } = yield* makeAppends((yield* DatabaseConfig).url._tag === "Some")

  const known = (mailbox: string, items: Batch["items"]) =>
    Effect.gen(function*() {
      const ids = lookupKeys(items)
      const hashes = items.flatMap((item) =>
        item.parsed._tag === "Accepted" && item.parsed.email.messageId === null ? [item.rawSha256] : []
      )
      const byTicketToken = yield* ticketsByToken(mailbox, lookupTokens(items))
      if (ids.length === 0 && hashes.length === 0) {
        return { byMessageId: new Map(), byRawSha256: new Map(), byTicketToken, parties: yield* partiesOf([...byTicketToken.values()]) }
      }
      const rows = yield* sql<{ message_id: string | null; raw_sha256: string | null; id: string; ticket_id: string }>`
        SELECT message_id, raw_sha256, id, ticket_id FROM messages
        WHERE mailbox = ${mailbox} AND (message_id = ANY(${ids}) OR (message_id IS NULL AND raw_sha256 = ANY(${hashes})))
      `
      const byMessageId = new Map<string, KnownMail>()
      const byRawSha256 = new Map<string, KnownMail>()
      for (const row of rows) {
        const mail = { eventId: row.id, ticketId: row.ticket_id }
        if (row.message_id !== null) byMessageId.set(row.message_id, mail)
        else if (row.raw_sha256 !== null) byRawSha256.set(row.raw_sha256, mail)
      }
      const tickets = new Set([...byTicketToken.values(), ...rows.map((row) => row.ticket_id)])
      return { byMessageId, byRawSha256, byTicketToken, parties: yield* partiesOf([...tickets]) } satisfies Known
    })

  const partiesOf = (ticketIds: ReadonlyArray<string>) =>
    ticketIds.length === 0
      ? Effect.succeed(new Map<string, TicketParties>())
      : sql<{ id: string; customer_id: string; address: string | null }>`
        SELECT t.id, t.customer_id, p.address FROM tickets t LEFT JOIN ticket_participants p ON p.ticket_id = t.id
        WHERE t.id = ANY(${ticketIds})
      `.pipe(Effect.map((rows) => {
        const parties = new Map<string, { customerId: string; participants: Set<string> }>()
        for (const row of rows) {
          const entry = parties.get(row.id) ?? { customerId: row.customer_id, participants: new Set<string>() }
          if (row.address !== null) entry.participants.add(row.address)
          parties.set(row.id, entry)
        }
        return parties as ReadonlyMap<string, TicketParties>
      }))

  const ticketsByToken = (mailbox: string, tokens: ReadonlyArray<string>) =>
    tokens.length === 0
      ? Effect.succeed(new Map<string, string>())
      : sql<{ token: string; id: string }>`
        SELECT left(replace(id::text, '-', ''), 12) AS token, id FROM tickets
        WHERE mailbox = ${mailbox} AND left(replace(id::text, '-', ''), 12) = ANY(${tokens})
      `.pipe(Effect.map((rows) => {
        const ids = new Map<string, Array<string>>()
        for (const row of rows) ids.set(row.token, [...(ids.get(row.token) ?? []), row.id])
        return new Map([...ids].flatMap(([token, [id, ...others]]) => others.length === 0 ? [[token, id!] as const] : []))
      }))

  const insert = (table: string, rows: ReadonlyArray<object>, suffix = "") =>
    rows.length === 0
      ? Effect.void
      : sql`INSERT INTO ${sql(table)} ${sql.insert(rows as ReadonlyArray<Record<string, unknown>>)} ${sql.literal(suffix)}`.pipe(Effect.asVoid)

  const write = (batch: Batch, decisions: ReadonlyArray<IntakeDecision>) =>
    Effect.gen(function*() {
      const at = new Date()
      const sources = new Map(batch.items.map((item) => [item.rawSha256, item]))
      const traces = new Map(batch.items.map((item) => [item.uid, item.trace ?? null]))
      const rows = project(batch.mailbox, decisions, at)
      yield* insert(
        "raw_messages",
        [...sources.values()].map((item) => ({
          sha256: item.rawSha256,
          size: item.size,
          headers_only: item.headersOnly,
          bytes: item.source
        })),
        "ON CONFLICT (sha256) DO NOTHING"
      )
      yield* insert(
        "events",
        decisions.map((decision) => ({
          id: decision.eventId,
          type: decision.data._tag,
          mailbox: batch.mailbox,
          uidvalidity: batch.uidValidity,
          uid: decision.uid,
          ticket_id: decision.ticketId,
          occurred_at: at,
          data: JSON.stringify(encodeData(decision.data)),
          trace: traces.get(decision.uid) ?? null
        }))
      )
      yield* insert(
        "customers",
        rows.customers,
        "ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name WHERE customers.name = '' AND EXCLUDED.name <> ''"
      )
      yield* insert("tickets", rows.tickets)
      if (rows.followedUp.length > 0) {
        yield* sql`UPDATE tickets SET updated_at = ${at} WHERE id = ANY(${rows.followedUp})`
      }
      yield* insert("messages", rows.messages.map((row) => ({ ...row, references: [...row.references] })))
      yield* insert("ticket_participants", rows.participants, "ON CONFLICT DO NOTHING")
    })

  const commit = (batch: Batch) =>
    Effect.gen(function*() {
      // A custom plan copies every bound value into the plan as a constant, the raw mail included:
      // a fifth of PostgreSQL's CPU on a backlog. A generic plan reads the parameters where they are.
      yield* sql`SELECT pg_advisory_xact_lock(${APPEND_LOCK}), set_config('plan_cache_mode', 'force_generic_plan', true)`
      const uids = batch.items.map((item) => item.uid)
      const recorded = uids.length === 0 ? [] : yield* sql<{ uid: string }>`
        SELECT uid FROM events WHERE mailbox = ${batch.mailbox} AND uidvalidity = ${batch.uidValidity}
          AND uid = ANY(${uids}) AND type IN ('EmailReceived', 'EmailDuplicate', 'EmailQuarantined')
      `
      const alreadyRecorded = new Set(recorded.map((row) => Number(row.uid)))
      const fresh = batch.items.filter((item) => !alreadyRecorded.has(item.uid))
      const decisions = decide(fresh, yield* known(batch.mailbox, fresh))
      yield* write(batch, decisions)
      const moved = !(yield* state.advance(batch.mailbox, batch.uidValidity, batch.cursorTo))
      if (moved) return yield* new CursorMoved({ mailbox: batch.mailbox })
      return { decisions, alreadyRecorded: [...alreadyRecorded] }
    }).pipe(
      inTransaction(sql),
      Effect.tap(() => bump),
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

  const decodeRow = (row: { readonly data: unknown }) => decodeData(typeof row.data === "string" ? JSON.parse(row.data) : row.data)

  const replyState = (emailEventId: string) =>
    sql<{ data: unknown }>`
      SELECT data FROM events
      WHERE type IN ('ReplyIntended', 'ReplySent', 'ReplyDrafted', 'ReplySkipped', 'ReplyFailed') AND data->>'emailEventId' = ${emailEventId}
      ORDER BY seq
    `.pipe(Effect.map((rows) => replyStateOf(rows.map(decodeRow))))

  const appendReply = (mailbox: string, data: ReplyEvent) =>
    Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(${APPEND_LOCK})`
      const id = crypto.randomUUID()
      const at = new Date()
      yield* insert("events", [{
        id,
        type: data._tag,
        mailbox,
        uidvalidity: null,
        uid: null,
        ticket_id: data.ticketId,
        occurred_at: at,
        data: JSON.stringify(encodeData(data)),
        trace: yield* currentTraceparent
      }])
      if (data._tag === "ReplySent") {
        const { intent } = yield* replyState(data.emailEventId)
        if (intent !== undefined) {
          const row = outboundRow(id, mailbox, intent, at)
          yield* insert("messages", [{ ...row, references: [...row.references] }], "ON CONFLICT DO NOTHING")
          yield* sql`UPDATE tickets SET updated_at = ${at} WHERE id = ${data.ticketId}`
        }
      }
      return id
    }).pipe(
      inTransaction(sql),
      Effect.tap(() => bump),
      Effect.withSpan("TicketRepo.appendReply", { kind: "client", attributes: { "mailroom.event.type": data._tag } })
    )

  const ticketThread = (ticketId: string, sender: string, limit: number) =>
    sql<{ direction: "inbound" | "outbound"; from_email: string; subject: string; text: string; received_at: Date }>`
      SELECT direction, from_email, subject, text, received_at FROM messages
      WHERE ticket_id = ${ticketId}
        AND ((direction = 'inbound' AND from_email = ${sender}) OR (direction = 'outbound' AND to_email = ${sender}))
      ORDER BY received_at DESC, id LIMIT ${limit}
    `.pipe(Effect.map((rows) => ({
      messages: [...rows].reverse().map((row) => ({
        direction: row.direction,
        from: row.from_email,
        subject: row.subject,
        text: row.text,
        at: row.received_at
      }))
    } satisfies TicketThread)))

  return TicketRepo.of({
    appends,
    commit,
    resetMailbox: (previous, next) =>
      Effect.gen(function*() {
        yield* sql`SELECT pg_advisory_xact_lock(${APPEND_LOCK})`
        const data = new MailboxReset({ previousUidValidity: previous.uidValidity, uidValidity: next.uidValidity })
        yield* insert("events", [{
          id: crypto.randomUUID(),
          type: data._tag,
          mailbox: next.mailbox,
          uidvalidity: next.uidValidity,
          uid: null,
          ticket_id: null,
          occurred_at: new Date(),
          data: JSON.stringify(encodeData(data)),
          trace: null
        }])
        yield* state.reset(next)
      }).pipe(inTransaction(sql), Effect.tap(() => bump), Effect.withSpan("TicketRepo.resetMailbox")),
    recordedUids: (mailbox, uidValidity, above, upTo) =>
      sql<{ uid: string }>`
        SELECT uid FROM events WHERE mailbox = ${mailbox} AND uidvalidity = ${uidValidity}
          AND uid > ${above} AND uid <= ${upTo} AND type IN ('EmailReceived', 'EmailDuplicate', 'EmailQuarantined')
        ORDER BY uid
      `.pipe(Effect.map((rows) => rows.map((row) => Number(row.uid)))),
    eventsAfter: (seq, limit) =>
      sql<EventRow>`SELECT * FROM events WHERE seq > ${seq.toString()} ORDER BY seq LIMIT ${limit}`.pipe(
        Effect.map((rows) => rows.map(fromRow))
      ),
    countsByType: sql<{ type: string; count: string }>`SELECT type, count(*) AS count FROM events GROUP BY type`.pipe(
      Effect.map((rows) => Object.fromEntries(rows.map((row) => [row.type, Number(row.count)])))
    ),
    lastSeq: sql<{ seq: string }>`SELECT coalesce(max(seq), 0) AS seq FROM events`.pipe(
      Effect.map((rows) => BigInt(rows[0]?.seq ?? 0))
    ),
    replyState,
    appendReply,
    repliesSentSince: (customerId, to, since) =>
      sql<{ n: string }>`
        SELECT count(*) AS n FROM events
        WHERE type = 'ReplySent' AND (data->>'customerId' = ${customerId} OR data->>'to' = ${to}) AND occurred_at > ${since}
      `.pipe(Effect.map((rows) => Number(rows[0]?.n ?? 0))),
    answersSince: (scope, since) =>
      (scope.ticketId === undefined
        ? sql<{ n: string }>`
          SELECT count(*) AS n FROM events WHERE type IN ('ReplySent', 'ReplyDrafted') AND occurred_at > ${since}`
        : sql<{ n: string }>`
          SELECT count(*) AS n FROM events
          WHERE type IN ('ReplySent', 'ReplyDrafted') AND ticket_id = ${scope.ticketId} AND occurred_at > ${since}`).pipe(
          Effect.map((rows) => Number(rows[0]?.n ?? 0))
        ),
    ticketThread
  })
})

/** The same contract in memory, for tests: decisions and projections come from the same pure functions. */
const makeMemory = Effect.gen(function*() {
  const state = yield* StateStore
  const events = yield* Ref.make<ReadonlyArray<StoredEvent>>([])
  const known = yield* Ref.make<Known>({ byMessageId: new Map(), byRawSha256: new Map(), byTicketToken: new Map(), parties: new Map() })
  const { appends, bump } = yield* makeAppends(false)
  const append = (rows: ReadonlyArray<Omit<StoredEvent, "seq">>) =>
    Ref.update(events, (all) => [...all, ...rows.map((row, i) => ({ ...row, seq: BigInt(all.length + i + 1) }))]).pipe(
      Effect.zipRight(bump)
    )
  const intakeUids = (mailbox: string, uidValidity: number) =>
    Ref.get(events).pipe(
      Effect.map((all) =>
        all.filter((e) => e.mailbox === mailbox && e.uidvalidity === uidValidity && e.uid !== null).map((e) => e.uid!)
      )
    )
  return TicketRepo.of({
    appends,
    commit: (batch) =>
      Effect.gen(function*() {
        const recorded = new Set(yield* intakeUids(batch.mailbox, batch.uidValidity))
        const fresh = batch.items.filter((item) => !recorded.has(item.uid))
        const decisions = decide(fresh, yield* Ref.get(known))
        const next = yield* Ref.get(known)
        const byMessageId = new Map(next.byMessageId)
        const byRawSha256 = new Map(next.byRawSha256)
        const byTicketToken = new Map(next.byTicketToken)
        const parties = new Map(next.parties)
        for (const d of decisions) {
          if (d.data._tag !== "EmailReceived") continue
          const mail = { eventId: d.eventId, ticketId: d.data.ticketId }
          if (d.data.messageId) byMessageId.set(d.data.messageId, mail)
          else byRawSha256.set(d.data.rawSha256, mail)
          if (d.data.newTicket) byTicketToken.set(ticketToken(d.data.ticketId), d.data.ticketId)
          const before = parties.get(d.data.ticketId) ?? { customerId: d.data.customerId, participants: new Set<string>() }
          parties.set(d.data.ticketId, { customerId: before.customerId, participants: new Set([...before.participants, ...d.participants]) })
        }
        if (!(yield* state.advance(batch.mailbox, batch.uidValidity, batch.cursorTo))) {
          return yield* new CursorMoved({ mailbox: batch.mailbox })
        }
        yield* Ref.set(known, { byMessageId, byRawSha256, byTicketToken, parties })
        yield* append(decisions.map((d) => ({
          id: d.eventId,
          type: d.data._tag,
          mailbox: batch.mailbox,
          uidvalidity: batch.uidValidity,
          uid: d.uid,
          ticketId: d.ticketId,
          occurredAt: new Date(),
          data: d.data,
          trace: batch.items.find((item) => item.uid === d.uid)?.trace ?? null
        })))
        return { decisions, alreadyRecorded: batch.items.filter((i) => recorded.has(i.uid)).map((i) => i.uid) }
      }),
    resetMailbox: (previous, next) =>
      append([{
        id: crypto.randomUUID(),
        type: "MailboxReset",
        mailbox: next.mailbox,
        uidvalidity: next.uidValidity,
        uid: null,
        ticketId: null,
        occurredAt: new Date(),
        data: new MailboxReset({ previousUidValidity: previous.uidValidity, uidValidity: next.uidValidity }),
        trace: null
      }]).pipe(Effect.zipRight(state.reset(next))),
    recordedUids: (mailbox, uidValidity, above, upTo) =>
      intakeUids(mailbox, uidValidity).pipe(Effect.map((uids) => uids.filter((uid) => uid > above && uid <= upTo))),
    eventsAfter: (seq, limit) =>
      Ref.get(events).pipe(Effect.map((all) => all.filter((e) => e.seq > seq).slice(0, limit))),
    countsByType: Ref.get(events).pipe(
      Effect.map((all) => all.reduce<Record<string, number>>((acc, e) => ({ ...acc, [e.type]: (acc[e.type] ?? 0) + 1 }), {}))
    ),
    lastSeq: Ref.get(events).pipe(Effect.map((all) => all.at(-1)?.seq ?? 0n)),
    replyState: (emailEventId) => Ref.get(events).pipe(Effect.map((all) => replyStateOf(repliesTo(all, emailEventId)))),
    appendReply: (mailbox, data) =>
      Effect.gen(function*() {
        const before = replyStateOf(repliesTo(yield* Ref.get(events), data.emailEventId))
        if ((isIntent(data) && before.intent) || (isOutcome(data) && before.outcome)) {
          return yield* Effect.die(new Error(`a ${data._tag} for ${data.emailEventId} is already recorded`))
        }
        const id = crypto.randomUUID()
        yield* append([{ id, type: data._tag, mailbox, uidvalidity: null, uid: null, ticketId: data.ticketId, occurredAt: new Date(), data, trace: null }])
        if (data._tag === "ReplySent" && before.intent) {
          const mail = { eventId: id, ticketId: data.ticketId }
          yield* Ref.update(known, (k) => ({ ...k, byMessageId: new Map(k.byMessageId).set(before.intent!.messageId, mail) }))
        }
        return id
      }),
    repliesSentSince: (customerId, to, since) =>
      Ref.get(events).pipe(
        Effect.map((all) =>
          all.filter((e) =>
            e.data._tag === "ReplySent" && (e.data.customerId === customerId || e.data.to === to) && e.occurredAt > since
          ).length
        )
      ),
    answersSince: (scope, since) =>
      Ref.get(events).pipe(
        Effect.map((all) =>
          all.filter((e) =>
            (e.data._tag === "ReplySent" || e.data._tag === "ReplyDrafted") && e.occurredAt > since &&
            (scope.ticketId === undefined || e.data.ticketId === scope.ticketId)
          ).length
        )
      ),
    ticketThread: (ticketId, sender, limit) =>
      Ref.get(events).pipe(Effect.map((all) => {
        const intents = new Map(all.flatMap((e) => isIntent(e.data) ? [[e.data.emailEventId, e.data] as const] : []))
        const messages = all.filter((e) => e.ticketId === ticketId).flatMap((e): Array<ThreadMessage> => {
          if (e.data._tag === "EmailReceived" && e.data.from.address === sender) {
            return [{ direction: "inbound", from: e.data.from.address, subject: e.data.subject, text: e.data.text, at: e.occurredAt }]
          }
          const intent = e.data._tag === "ReplySent" ? intents.get(e.data.emailEventId) : undefined
          return intent && intent.to.address === sender
            ? [{ direction: "outbound", from: intent.from, subject: intent.subject, text: intent.text, at: e.occurredAt }]
            : []
        })
        return { messages: messages.slice(-limit) }
      }))
  })
})

const repliesTo = (all: ReadonlyArray<StoredEvent>, emailEventId: string) =>
  all.flatMap((e) => (isIntent(e.data) || isOutcome(e.data)) && e.data.emailEventId === emailEventId ? [e.data] : [])

/** The event log and its projections. */
export class TicketRepo extends Context.Tag("mailroom/TicketRepo")<TicketRepo, TicketRepoShape>() {
  static readonly Live = Layer.effect(TicketRepo, makeSql)
  static readonly Test = Layer.effect(TicketRepo, makeMemory)
}
