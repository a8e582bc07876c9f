import { SqlClient } from "@effect/sql"
import { Data, Effect } from "effect"
import type { ReplyIntended, StoredEvent } from "../log/Event.js"
import { answerKey } from "../log/Event.js"
import { EventLog } from "../log/EventLog.js"
import { Vault } from "../log/Vault.js"
import type { EventLogShape } from "../log/EventLog.js"
import { outboundRow } from "../replies/Reply.js"
import type { TicketParties } from "./Decide.js"
import { newParticipants } from "./Decide.js"
import type { CustomerRow, MessageRow, ParticipantRow, TicketRow } from "./Projection.js"
import { project } from "./Projection.js"

export interface Rebuilt {
  readonly customers: ReadonlyArray<CustomerRow>
  readonly tickets: ReadonlyArray<TicketRow>
  readonly messages: ReadonlyArray<MessageRow>
  readonly participants: ReadonlyArray<ParticipantRow>
}

/**
 * The projections as a fold over the log, in `seq` order. Messages come out page by page, so that a
 * log of years need not be held in memory at once; the rest is small and kept until `rows`.
 */
/** A `CustomerErased` as replay needs it: what the live erase deleted must stay deleted. */
export interface Erasure {
  readonly seq: bigint
  readonly customerId: string
  /** The keyed id of the erased address: how participants, customers and recipients are matched. */
  readonly addressId: string
}

export const erasureOf = (event: StoredEvent): Erasure | undefined =>
  event.data._tag === "CustomerErased" ? { seq: event.seq, customerId: event.data.customerId, addressId: event.data.addressId } : undefined

export const makeReplay = (erasures: ReadonlyArray<Erasure> = [], keyedId: (address: string) => string = (address) => address) => {
  const customers = new Map<string, CustomerRow>()
  const tickets = new Map<string, TicketRow>()
  const parties = new Map<string, TicketParties>()
  const participants: Array<ParticipantRow> = []
  const intents = new Map<string, ReplyIntended>()
  const messageIds = new Set<string>()
  const touch = (ticketId: string, at: Date) => {
    const ticket = tickets.get(ticketId)
    if (ticket) tickets.set(ticketId, { ...ticket, updated_at: at })
  }
  const key = (mailbox: string, messageId: string) => `${mailbox}\u0000${messageId}`
  /** Recorded before its customer (or, for an answer, its recipient) was erased: the live erase deleted its rows. */
  const erasedLater = (event: StoredEvent, ids: ReadonlyArray<string | null>) =>
    erasures.some((erasure) => erasure.seq > event.seq && (ids.includes(erasure.customerId) || ids.includes(erasure.addressId)))
  const forget = (erasure: Erasure) => {
    for (const [email, customer] of customers) {
      if (customer.id === erasure.customerId || keyedId(email) === erasure.addressId) customers.delete(email)
    }
    const kept = participants.filter((row) => keyedId(row.address) !== erasure.addressId)
    participants.splice(0, participants.length, ...kept)
    for (const party of parties.values()) {
      for (const address of party.participants) if (keyedId(address) === erasure.addressId) (party.participants as Set<string>).delete(address)
    }
  }

  const apply = (events: ReadonlyArray<StoredEvent>): Array<MessageRow> => {
    const messages: Array<MessageRow> = []
    for (const event of events) {
      const data = event.data
      if (event.erased) continue
      if (data._tag === "CustomerErased") forget(erasureOf(event)!)
      if ("customerId" in data && data._tag !== "CustomerErased") {
        if (erasedLater(event, [data.customerId, data._tag === "ReplyIntended" ? data.recipientId : null])) continue
      }
      if (data._tag === "ReplyIntended") intents.set(answerKey(data), data)
      if (data._tag === "ReplySent") {
        const intent = intents.get(answerKey(data))
        intents.delete(answerKey(data))
        // ReplyStore writes the outbound row only when it finds the intent, and touches the ticket with it.
        if (intent === undefined || !tickets.has(intent.ticketId)) continue
        const row = outboundRow(event.id, event.mailbox, intent, event.occurredAt)
        // Live, the insert is ON CONFLICT DO NOTHING: our own answer may have come back in first.
        if (!messageIds.has(key(row.mailbox, row.message_id!))) {
          messageIds.add(key(row.mailbox, row.message_id!))
          messages.push(row)
        }
        touch(row.ticket_id, event.occurredAt)
      }
      if (data._tag !== "EmailReceived") continue
      // A follow-up on a ticket that an erasure deleted: its message went with the ticket, its sender stays a customer.
      const ticketErased = !data.newTicket && !tickets.has(data.ticketId)
      const before = parties.get(data.ticketId) ?? { customerId: data.customerId, participants: new Set<string>() }
      const added = ticketErased ? [] : newParticipants(data, before.customerId === data.customerId, before.participants)
      if (!ticketErased) parties.set(data.ticketId, { customerId: before.customerId, participants: new Set([...before.participants, ...added]) })
      // The same function that made the live rows, at the commit time the event carries.
      const rows = project(
        event.mailbox,
        [{ eventId: event.id, uid: event.uid ?? 0, ticketId: data.ticketId, data, participants: added }],
        event.occurredAt
      )
      for (const customer of rows.customers) {
        const known = customers.get(customer.email)
        if (known === undefined) customers.set(customer.email, customer)
        else if (known.name === "" && customer.name !== "") customers.set(customer.email, { ...known, name: customer.name })
      }
      if (ticketErased) continue
      for (const ticket of rows.tickets) tickets.set(ticket.id, ticket)
      for (const id of rows.followedUp) touch(id, event.occurredAt)
      for (const message of rows.messages) {
        if (message.message_id !== null) messageIds.add(key(message.mailbox, message.message_id))
        messages.push(message)
      }
      participants.push(...rows.participants)
    }
    return messages
  }

  const rows = (): Omit<Rebuilt, "messages"> => ({
    customers: [...customers.values()],
    tickets: [...tickets.values()],
    participants
  })

  return { apply, rows } as const
}

/** `customers`, `tickets`, `messages` and `ticket_participants` as the log says they are. */
export const projectLog = (events: ReadonlyArray<StoredEvent>): Rebuilt => {
  const replay = makeReplay()
  const messages = replay.apply(events)
  return { ...replay.rows(), messages }
}

/** The projection tables, each with the columns that identify a row, in the order their foreign keys need. */
export const projectionTables = [
  { name: "customers", key: ["id"] },
  { name: "tickets", key: ["id"] },
  { name: "messages", key: ["id"] },
  { name: "ticket_participants", key: ["ticket_id", "address"] }
] as const

export type ProjectionTable = (typeof projectionTables)[number]["name"]

export interface RowDifference {
  /** The row's key, e.g. `id=…`. */
  readonly key: string
  /** Columns whose values differ; `row` when the row is on one side only. */
  readonly columns: ReadonlyArray<{ readonly column: string; readonly live: unknown; readonly replayed: unknown }>
}

export interface TableDifference {
  readonly table: ProjectionTable
  readonly live: number
  readonly replayed: number
  /** Rows missing on either side or different. */
  readonly differing: number
  /** The first few, by key. */
  readonly samples: ReadonlyArray<RowDifference>
}

export interface ReplayReport {
  readonly events: number
  readonly lastSeq: bigint
  readonly tables: ReadonlyArray<TableDifference>
  readonly equal: boolean
  /** True when the rebuilt tables replaced the live ones. */
  readonly swapped: boolean
}

/** Another table's foreign key points at a projection: swapping would break it, so nothing is changed. */
export class ReplayRefused extends Data.TaggedError("ReplayRefused")<{ readonly reason: string }> {
  override get message() {
    return `replay refused: ${this.reason}`
  }
}

const PAGE = 500
const CHUNK = 200
const SAMPLES = 5
const suffix = "_replay"

const insertRows = (sql: SqlClient.SqlClient, table: string, rows: ReadonlyArray<object>) =>
  Effect.forEach(
    Array.from({ length: Math.ceil(rows.length / CHUNK) }, (_, i) => rows.slice(i * CHUNK, (i + 1) * CHUNK)),
    (chunk) => sql`INSERT INTO ${sql(table)} ${sql.insert(chunk as ReadonlyArray<Record<string, unknown>>)}`,
    { discard: true }
  )

/** Fills empty `*_replay` tables from the whole log, page by page, in the caller's transaction. */
const fill = (sql: SqlClient.SqlClient, log: EventLogShape, keyedId: (address: string) => string) =>
  Effect.gen(function*() {
    const erasures = (yield* log.readWhere(sql`type = 'CustomerErased'`)).flatMap((event) => erasureOf(event) ?? [])
    const replay = makeReplay(erasures, keyedId)
    let lastSeq = 0n
    let events = 0
    while (true) {
      const page = yield* log.read(lastSeq, PAGE)
      if (page.length === 0) break
      const messages = replay.apply(page).map((row) => ({ ...row, references: [...row.references] }))
      yield* insertRows(sql, `messages${suffix}`, messages)
      lastSeq = page.at(-1)!.seq
      events += page.length
    }
    const rows = replay.rows()
    yield* insertRows(sql, `customers${suffix}`, rows.customers)
    yield* insertRows(sql, `tickets${suffix}`, rows.tickets)
    yield* insertRows(sql, `ticket_participants${suffix}`, rows.participants)
    return { events, lastSeq }
  })

const compare = (sql: SqlClient.SqlClient, table: (typeof projectionTables)[number]) =>
  Effect.gen(function*() {
    const on = sql.literal(table.key.map((column) => `a.${column} = b.${column}`).join(" AND "))
    const order = sql.literal(table.key.map((column) => `coalesce(a.${column}, b.${column})`).join(", "))
    const [counts] = yield* sql<{ live: string; replayed: string }>`
      SELECT (SELECT count(*) FROM ${sql(table.name)}) AS live, (SELECT count(*) FROM ${sql(table.name + suffix)}) AS replayed`
    const rows = yield* sql<{ live: Record<string, unknown> | null; replayed: Record<string, unknown> | null; differing: string }>`
      SELECT to_jsonb(a) AS live, to_jsonb(b) AS replayed, count(*) OVER () AS differing
      FROM ${sql(table.name)} a FULL JOIN ${sql(table.name + suffix)} b ON ${on}
      WHERE to_jsonb(a) IS DISTINCT FROM to_jsonb(b)
      ORDER BY ${order} LIMIT ${SAMPLES}`
    const samples = rows.map((row): RowDifference => {
      const either = (row.live ?? row.replayed)!
      const columns = row.live === null || row.replayed === null
        ? [{ column: "row", live: row.live === null ? null : "present", replayed: row.replayed === null ? null : "present" }]
        : Object.keys(row.live).filter((column) => JSON.stringify(row.live![column]) !== JSON.stringify(row.replayed![column]))
          .map((column) => ({ column, live: row.live![column], replayed: row.replayed![column] }))
      return { key: table.key.map((column) => `${column}=${String(either[column])}`).join(", "), columns }
    })
    return {
      table: table.name,
      live: Number(counts!.live),
      replayed: Number(counts!.replayed),
      differing: Number(rows[0]?.differing ?? 0),
      samples
    } satisfies TableDifference
  })

const names = projectionTables.map((table) => table.name)

/** Index definitions without their own name or table, to pair an original index with its copy. */
const shape = (definition: string) => definition.replace(/^(CREATE (?:UNIQUE )?INDEX) \S+ ON \S+ /, "$1 ON ")

/**
 * Puts the filled `*_replay` tables in place of the originals: the same columns, defaults, checks,
 * indexes (under their old names) and foreign keys, now between the new tables.
 */
const swap = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    const foreignKeys = yield* sql<{ table: string; name: string; definition: string }>`
      SELECT conrelid::regclass::text AS table, conname AS name, pg_get_constraintdef(oid) AS definition
      FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(${names}::regclass[])`
    for (const fk of foreignKeys) {
      const definition = fk.definition.replace(/REFERENCES (\w+)\(/, (_, target: string) => `REFERENCES ${target}${suffix}(`)
      yield* sql`ALTER TABLE ${sql(fk.table + suffix)} ADD CONSTRAINT ${sql(fk.name)} ${sql.literal(definition)}`
    }
    const indexes = yield* sql<{ table: string; name: string; definition: string }>`
      SELECT tablename AS table, indexname AS name, indexdef AS definition FROM pg_indexes
      WHERE schemaname = current_schema() AND tablename = ANY(${[...names, ...names.map((name) => name + suffix)]})`
    const original = new Map(indexes.filter((i) => !i.table.endsWith(suffix)).map((i) => [`${i.table} ${shape(i.definition)}`, i.name]))
    yield* sql`DROP TABLE ${sql.literal(names.join(", "))}`
    for (const name of names) yield* sql`ALTER TABLE ${sql(name + suffix)} RENAME TO ${sql(name)}`
    for (const index of indexes.filter((i) => i.table.endsWith(suffix))) {
      const old = original.get(`${index.table.slice(0, -suffix.length)} ${shape(index.definition)}`)
      if (old !== undefined && old !== index.name) yield* sql`ALTER INDEX ${sql(index.name)} RENAME TO ${sql(old)}`
    }
  })

/** Refuses when a table other than the projections holds a foreign key into them. */
const refuseOutsideReferences = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    const outside = yield* sql<{ source: string; target: string }>`
      SELECT conrelid::regclass::text AS source, confrelid::regclass::text AS target FROM pg_constraint
      WHERE contype = 'f' AND confrelid = ANY(${names}::regclass[]) AND NOT conrelid = ANY(${names}::regclass[])`
    if (outside.length > 0) {
      const list = outside.map((fk) => `${fk.source} → ${fk.target}`).join(", ")
      return yield* new ReplayRefused({
        reason: `${list} would point at dropped tables; drop or re-point those foreign keys first, then run replay again`
      })
    }
  })

/**
 * Rebuilds the projections from the log into `*_replay` tables and compares them with the live ones.
 * `check`: temporary tables in one repeatable-read snapshot, nothing changed and no lock taken.
 * Otherwise the rebuild holds the log's append lock, so that no commit lands between the read and
 * the swap, and the rebuilt tables replace the live ones in the same transaction.
 */
export const replayProjections = Effect.fn("Replay.run")(function*(options: { readonly check: boolean }) {
  const sql = yield* SqlClient.SqlClient
  const log = yield* EventLog
  const vault = yield* Vault
  const build = (temporary: boolean) =>
    Effect.gen(function*() {
      for (const name of names) {
        if (!temporary) yield* sql`DROP TABLE IF EXISTS ${sql(name + suffix)}`
        yield* temporary
          ? sql`CREATE TEMPORARY TABLE ${sql(name + suffix)} (LIKE ${sql(name)} INCLUDING ALL) ON COMMIT DROP`
          : sql`CREATE TABLE ${sql(name + suffix)} (LIKE ${sql(name)} INCLUDING ALL)`
      }
      const { events, lastSeq } = yield* fill(sql, log, vault.customerId)
      const tables = yield* Effect.forEach(projectionTables, (table) => compare(sql, table))
      const equal = tables.every((table) => table.differing === 0)
      yield* Effect.annotateCurrentSpan({ "mailroom.replay.events": events, "mailroom.replay.equal": equal })
      return { events, lastSeq, tables, equal }
    })
  if (options.check) {
    return yield* sql.withTransaction(
      sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`.pipe(Effect.zipRight(build(true)))
    ).pipe(Effect.map((result): ReplayReport => ({ ...result, swapped: false })))
  }
  return yield* log.transaction(() =>
    Effect.gen(function*() {
      yield* refuseOutsideReferences(sql)
      const result = yield* build(false)
      yield* swap(sql)
      return { ...result, swapped: true } satisfies ReplayReport
    })
  )
})
