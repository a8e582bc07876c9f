import { SqlClient } from "@effect/sql"
import type { Statement } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Duration, Effect, Layer, Option, Ref, Stream } from "effect"
import type { Scope } from "effect"
import { eventLogPoll } from "../config/Config.js"
import { DatabaseConfig } from "../config/Config.js"
import { instanceId } from "../lib/Instance.js"
import type { EventData, EventType, StoredEvent } from "./Event.js"
import type { SealedRow } from "./Sealing.js"
import { open, seal } from "./Sealing.js"
import { inTransactionOpenedWith } from "./Sql.js"
import type { KeysRead } from "./Vault.js"
import { Vault } from "./Vault.js"

/** An event on its way into the log: everything but `seq`, which the commit gives it. */
export type NewEvent = Omit<StoredEvent, "seq">

export interface AppendOptions {
  /**
   * Data-modifying statements (INSERT, UPDATE) sent in the same statement as the events, as WITH
   * clauses, to save a round trip each while the append lock is held. Only the PostgreSQL log takes them.
   */
  readonly alongside?: ReadonlyArray<Statement.Fragment>
  /** The customer keys the caller read in the same transaction (Vault.liveKeysJson), for sealing. */
  readonly keys?: KeysRead
}

/** Appends the events of the transaction it is handed to. */
export type Append = (events: ReadonlyArray<NewEvent>, options?: AppendOptions) => Effect.Effect<void, SqlError>

export interface ConsumeOptions {
  /** Events per page handed to the handler. */
  readonly page: number
}

/**
 * Handles one page of events in `seq` order. `advance` stores progress within the page (what is
 * done is not handed over again after a failure or a restart); the whole page counts as done once
 * the handler returns.
 */
export type Handler<E, R> = (
  events: ReadonlyArray<StoredEvent>,
  advance: (seq: bigint) => Effect.Effect<void, SqlError>
) => Effect.Effect<void, E, R>

export interface EventLogShape {
  /**
   * Runs `write` in one transaction that holds the append lock, so that `seq` order is commit order
   * and a reader never skips a slower writer's events. Whatever `write` writes beside its events
   * (projections, cursors) commits with them. Consumers wake once it has committed.
   */
  readonly transaction: <A, E, R>(write: (append: Append) => Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  /**
   * `transaction`, with `read` (constant SQL, without parameters) sent in the round trip that opens
   * it and takes the lock, its rows handed to `write`: a check that must hold under the lock costs no
   * round trip of its own. Only on the SQL log.
   */
  readonly transactionAfter: <Row, A, E, R>(
    read: string,
    write: (append: Append, rows: ReadonlyArray<Row>) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | SqlError, R>
  readonly read: (after: bigint, limit: number) => Effect.Effect<ReadonlyArray<StoredEvent>, SqlError>
  /**
   * The events a condition on the `events` table picks, in `seq` order, their personal fields opened.
   * Only on the SQL log: the stores that query it by their data's plain fields.
   */
  readonly readWhere: (condition: Statement.Fragment) => Effect.Effect<ReadonlyArray<StoredEvent>, SqlError>
  readonly lastSeq: Effect.Effect<bigint, SqlError>
  readonly countsByType: Effect.Effect<Readonly<Record<string, number>>, SqlError>
  /** A consumer's stored position: the last `seq` it has handled. */
  readonly position: (consumer: string) => Effect.Effect<bigint, SqlError>
  /** Where a consumer that has never run starts; a consumer with a position keeps it. */
  readonly startAt: (consumer: string, seq: bigint) => Effect.Effect<void, SqlError>
  /** Hands every event after the consumer's position to `handle`, page by page; returns the number handled once caught up. */
  readonly drain: <E, R>(consumer: string, handle: Handler<E, R>, options: ConsumeOptions) => Effect.Effect<number, E | SqlError, R>
  /**
   * `drain`, then again whenever the log grows: at once for this process's commits and, on a shared
   * PostgreSQL, for other instances' through LISTEN/NOTIFY, with EVENT_LOG_POLL as a backstop.
   */
  readonly consume: <E, R>(
    consumer: string,
    handle: Handler<E, R>,
    options: ConsumeOptions & { readonly onDrained?: Effect.Effect<void> }
  ) => Effect.Effect<never, E | SqlError, R>
}

/** Serialises appends: `seq` order is commit order, so a reader by seq misses nothing ("mail"). */
const APPEND_LOCK = 0x6d61696c

/** PostgreSQL's bound on the parameters of one statement. */
const MAX_PARAMETERS = 65_535

/** The channel commits are announced on; the payload names the instance, for those who read it by hand. */
export const CHANNEL = "mailroom_events"

/**
 * Wake-ups: a Deferred completed (and replaced) at every commit this process sees. A waiter takes
 * the current one before it reads, so a commit during the read makes it read again at once.
 */
const makeWakeups = Effect.gen(function*() {
  const next = yield* Ref.make(yield* Deferred.make<void>())
  const wake = Effect.flatMap(Deferred.make<void>(), (fresh) =>
    Effect.flatMap(Ref.getAndSet(next, fresh), (done) => Deferred.succeed(done, undefined)))
  return { next: Ref.get(next), wake } as const
})

type Wakeups = Effect.Effect.Success<typeof makeWakeups>

const makeConsumers = (
  log: Pick<EventLogShape, "read">,
  positions: { readonly get: (consumer: string) => Effect.Effect<bigint, SqlError>; readonly save: (consumer: string, seq: bigint) => Effect.Effect<void, SqlError> },
  wakeups: Wakeups,
  backstop: Duration.DurationInput,
  /** Starts hearing other instances' commits (once; later calls do nothing). */
  listening: Effect.Effect<void> = Effect.void
) => {
  const drain = <E, R>(consumer: string, handle: Handler<E, R>, options: ConsumeOptions) =>
    Effect.gen(function*() {
      let total = 0
      while (true) {
        // An idle log is read every few hundred milliseconds: no trace per empty read.
        const after = yield* positions.get(consumer).pipe(Effect.withTracerEnabled(false))
        const events = yield* log.read(after, options.page).pipe(Effect.withTracerEnabled(false))
        if (events.length === 0) return total
        yield* handle(events, (seq) => positions.save(consumer, seq))
        yield* positions.save(consumer, events.at(-1)!.seq)
        total += events.length
      }
    })

  const consume = <E, R>(consumer: string, handle: Handler<E, R>, options: ConsumeOptions & { readonly onDrained?: Effect.Effect<void> }) =>
    Effect.zipRight(
      listening,
      Effect.gen(function*() {
        const woken = yield* wakeups.next
        yield* drain(consumer, handle, options)
        if (options.onDrained) yield* options.onDrained
        yield* Deferred.await(woken).pipe(Effect.timeoutOption(backstop))
      }).pipe(Effect.forever)
    )

  return { drain, consume } as const
}

interface EventRow extends SealedRow {
  readonly seq: string
  readonly id: string
  readonly type: EventType
  readonly mailbox: string
  readonly uidvalidity: string | null
  readonly uid: string | null
  readonly ticket_id: string | null
  readonly occurred_at: Date
  readonly trace: string | null
}

const nullableNumber = (value: string | null) => value === null ? null : Number(value)

const fromRow = (row: EventRow, { data, erased }: { readonly data: EventData; readonly erased: boolean }): StoredEvent => ({
  seq: BigInt(row.seq),
  id: row.id,
  type: row.type,
  mailbox: row.mailbox,
  uidvalidity: nullableNumber(row.uidvalidity),
  uid: nullableNumber(row.uid),
  ticketId: row.ticket_id,
  occurredAt: row.occurred_at,
  data,
  trace: row.trace,
  ...(erased ? { erased } : {})
})

const makeSql = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const vault = yield* Vault
  const shared = Option.isSome((yield* DatabaseConfig).url)
  const wakeups = yield* makeWakeups

  const withClauses = (alongside: ReadonlyArray<Statement.Fragment>) =>
    alongside.length === 0 ? sql.literal("") : sql`WITH ${sql.join(", ", false)(alongside.map((statement, i) => sql`${sql.literal(`w${i}`)} AS (${statement})`))}`

  const each = (statements: ReadonlyArray<Statement.Fragment>) => Effect.forEach(statements, (statement) => sql`${statement}`, { discard: true })

  const append: Append = (events, { alongside: others = [], keys } = {}) =>
    events.length === 0 ? each(others) : Effect.flatMap(seal(vault, events, keys), ({ insertKeys, rows: sealed }) => {
      // New customers' keys go first: a statement's WITH clauses and its main part see one snapshot,
      // and nothing in the log refers to a key by a foreign key.
      const alongside = insertKeys === undefined ? others : [insertKeys, ...others]
      const insert = sql`INSERT INTO events ${
        sql.insert(events.map((event, i) => ({
          id: event.id,
          type: event.type,
          mailbox: event.mailbox,
          uidvalidity: event.uidvalidity,
          uid: event.uid,
          ticket_id: event.ticketId,
          occurred_at: event.occurredAt,
          data: sealed[i]!.data,
          key_id: sealed[i]!.keyId,
          sealed: sealed[i]!.sealed,
          trace: event.trace
        })))
      }`
      if (alongside.length === 0) return Effect.asVoid(insert)
      const together = sql`${withClauses(alongside)} ${insert}`
      // A statement carries at most 65,535 parameters (the protocol counts them in 16 bits): a batch
      // of mail with long recipient lists goes one statement at a time rather than fail every retry.
      return together.compile()[1].length <= MAX_PARAMETERS ? Effect.asVoid(together) : Effect.zipRight(each(alongside), insert)
    })

  // A custom plan copies every bound value into the plan as a constant, the raw mail included: a
  // generic plan reads the parameters where they are (docs/performance.md). The notification is
  // delivered at commit, and only if the transaction commits, wherever in it it was made.
  const lockAndSettings = `SELECT pg_advisory_xact_lock(${APPEND_LOCK}), set_config('plan_cache_mode', 'force_generic_plan', true)${
    shared ? `, pg_notify('${CHANNEL}', '${instanceId.replaceAll("'", "''")}')` : ""
  }`
  const locked = inTransactionOpenedWith(sql, lockAndSettings)

  const transaction = <A, E, R>(write: (append: Append) => Effect.Effect<A, E, R>) =>
    locked(Effect.suspend(() => write(append))).pipe(Effect.tap(() => wakeups.wake))

  const transactionAfter = <Row, A, E, R>(read: string, write: (append: Append, rows: ReadonlyArray<Row>) => Effect.Effect<A, E, R>) =>
    locked.reading(read, (rows: ReadonlyArray<Row>) => write(append, rows)).pipe(Effect.tap(() => wakeups.wake))

  const opened = (rows: ReadonlyArray<EventRow>) =>
    Effect.map(open(vault, rows), (data) => rows.map((row, i) => fromRow(row, data[i]!)))

  const read = (after: bigint, limit: number) =>
    sql<EventRow>`SELECT * FROM events WHERE seq > ${after.toString()} ORDER BY seq LIMIT ${limit}`.pipe(Effect.flatMap(opened))

  const positions = {
    get: (consumer: string) =>
      sql<{ readonly last_seq: string }>`SELECT last_seq FROM positions WHERE consumer = ${consumer}`.pipe(
        Effect.map((rows) => BigInt(rows[0]?.last_seq ?? 0))
      ),
    save: (consumer: string, seq: bigint) =>
      sql`
        INSERT INTO positions (consumer, last_seq) VALUES (${consumer}, ${seq.toString()})
        ON CONFLICT (consumer) DO UPDATE SET last_seq = GREATEST(positions.last_seq, EXCLUDED.last_seq), updated_at = now()
      `.pipe(Effect.asVoid)
  }

  // Other instances' commits arrive as notifications; the one LISTEN connection serves every consumer.
  // Lost (the connection dropped), it is made again, and meanwhile EVENT_LOG_POLL covers. Opened by
  // the first consumer, not with the log: a command that only writes (erase, reprocess) needs none,
  // and one that ended while LISTEN was still connecting left that connection open, and the process
  // running, after it was done.
  const listening = shared
    ? yield* Effect.cached(Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      yield* pg.listen(CHANNEL).pipe(
        Stream.runForEach(() => wakeups.wake),
        Effect.catchAll((error) => Effect.logDebug(`LISTEN ${CHANNEL} ended (${error.message}); listening again`)),
        Effect.zipRight(Effect.sleep("1 second")),
        Effect.forever,
        Effect.withTracerEnabled(false),
        Effect.forkIn(yield* Effect.scope)
      )
    }).pipe(Effect.provide(yield* Effect.context<PgClient.PgClient | Scope.Scope>())))
    : Effect.void

  const backstop = shared ? yield* eventLogPoll : Duration.seconds(5)
  return EventLog.of({
    transaction,
    transactionAfter,
    read,
    readWhere: (condition) => sql<EventRow>`SELECT * FROM events WHERE ${condition} ORDER BY seq`.pipe(Effect.flatMap(opened)),
    lastSeq: sql<{ seq: string }>`SELECT coalesce(max(seq), 0) AS seq FROM events`.pipe(
      Effect.map((rows) => BigInt(rows[0]?.seq ?? 0))
    ),
    countsByType: sql<{ type: string; count: string }>`SELECT type, count(*) AS count FROM events GROUP BY type`.pipe(
      Effect.map((rows) => Object.fromEntries(rows.map((row) => [row.type, Number(row.count)])))
    ),
    position: positions.get,
    startAt: (consumer, seq) =>
      sql`INSERT INTO positions (consumer, last_seq) VALUES (${consumer}, ${seq.toString()}) ON CONFLICT (consumer) DO NOTHING`.pipe(
        Effect.asVoid
      ),
    ...makeConsumers({ read }, positions, wakeups, backstop, listening)
  })
})

/** The same log in memory, for tests: one writer at a time, events appended only if the write succeeds. */
const makeMemory = Effect.gen(function*() {
  const events = yield* Ref.make<ReadonlyArray<StoredEvent>>([])
  const stored = yield* Ref.make(new Map<string, bigint>())
  const lock = yield* Effect.makeSemaphore(1)
  const wakeups = yield* makeWakeups

  const transaction = <A, E, R>(write: (append: Append) => Effect.Effect<A, E, R>) =>
    lock.withPermits(1)(Effect.gen(function*() {
      const pending: Array<NewEvent> = []
      const result = yield* write((batch, { alongside = [] } = {}) =>
        alongside.length > 0 ? Effect.dieMessage("SQL alongside events: the in-memory log takes none") : Effect.sync(() => void pending.push(...batch)))
      yield* Ref.update(events, (all) => [...all, ...pending.map((event, i) => ({ ...event, seq: BigInt(all.length + i + 1) }))])
      return result
    })).pipe(Effect.tap(() => wakeups.wake))

  const read = (after: bigint, limit: number) => Ref.get(events).pipe(Effect.map((all) => all.filter((e) => e.seq > after).slice(0, limit)))
  const positions = {
    get: (consumer: string) => Ref.get(stored).pipe(Effect.map((map) => map.get(consumer) ?? 0n)),
    save: (consumer: string, seq: bigint) =>
      Ref.update(stored, (map) => new Map(map).set(consumer, seq > (map.get(consumer) ?? 0n) ? seq : map.get(consumer)!))
  }
  return EventLog.of({
    transaction,
    transactionAfter: () => Effect.dieMessage("transactionAfter takes SQL: the in-memory log has none"),
    read,
    readWhere: () => Effect.dieMessage("readWhere takes SQL: the in-memory log has none"),
    lastSeq: Ref.get(events).pipe(Effect.map((all) => all.at(-1)?.seq ?? 0n)),
    countsByType: Ref.get(events).pipe(
      Effect.map((all) => all.reduce<Record<string, number>>((acc, e) => ({ ...acc, [e.type]: (acc[e.type] ?? 0) + 1 }), {}))
    ),
    position: positions.get,
    startAt: (consumer, seq) => Ref.update(stored, (map) => map.has(consumer) ? map : new Map(map).set(consumer, seq)),
    ...makeConsumers({ read }, positions, wakeups, "5 seconds")
  })
})

/**
 * The append-only event log: the one owner of appending (lock, insert, wake-up), reading, and each
 * consumer's stored position.
 */
export class EventLog extends Context.Tag("mailroom/EventLog")<EventLog, EventLogShape>() {
  static readonly Live = Layer.scoped(EventLog, makeSql)
  static readonly Test = Layer.effect(EventLog, makeMemory)
}
