import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import type { StoredEvent } from "../log/Event.js"
import { ticketToken } from "../replies/Reply.js"
import type { Incoming, Known, KnownMail, TicketParties } from "./Decide.js"
import { lookupKeys, lookupTokens, newParticipants } from "./Decide.js"

/** What a batch's mail points at, across every mailbox: a mail is recorded once however it came. */
export const knownFromDatabase = (sql: SqlClient.SqlClient, items: ReadonlyArray<Incoming>): Effect.Effect<Known, SqlError> =>
  Effect.gen(function*() {
    const ids = lookupKeys(items)
    const hashes = items.flatMap((item) =>
      item.parsed._tag === "Accepted" && item.parsed.email.messageId === null ? [item.rawSha256] : []
    )
    const byTicketToken = yield* ticketsByToken(sql, lookupTokens(items))
    const customers = yield* customersOf(sql, items)
    if (ids.length === 0 && hashes.length === 0) {
      return { byMessageId: new Map(), byRawSha256: new Map(), byTicketToken, parties: yield* partiesOf(sql, [...byTicketToken.values()]), customers }
    }
    const rows = yield* sql<{ message_id: string | null; raw_sha256: string | null; id: string; ticket_id: string }>`
      SELECT message_id, raw_sha256, id, ticket_id FROM messages
      WHERE message_id = ANY(${ids}) OR (message_id IS NULL AND raw_sha256 = ANY(${hashes}))
    `
    const byMessageId = new Map<string, KnownMail>()
    const byRawSha256 = new Map<string, KnownMail>()
    for (const row of rows) {
      const mail = { eventId: row.id, ticketId: row.ticket_id }
      if (row.message_id !== null) byMessageId.set(row.message_id, mail)
      else if (row.raw_sha256 !== null) byRawSha256.set(row.raw_sha256, mail)
    }
    const tickets = new Set([...byTicketToken.values(), ...rows.map((row) => row.ticket_id)])
    return { byMessageId, byRawSha256, byTicketToken, parties: yield* partiesOf(sql, [...tickets]), customers } satisfies Known
  })

const customersOf = (sql: SqlClient.SqlClient, items: ReadonlyArray<Incoming>) => {
  const addresses = [...new Set(items.flatMap((item) => item.parsed._tag === "Accepted" ? [item.parsed.email.from.address] : []))]
  return addresses.length === 0
    ? Effect.succeed(new Map<string, string>())
    : sql<{ id: string; email: string }>`SELECT id, email FROM customers WHERE email = ANY(${addresses})`.pipe(
      Effect.map((rows) => new Map(rows.map((row) => [row.email, row.id])))
    )
}

const partiesOf = (sql: SqlClient.SqlClient, ticketIds: ReadonlyArray<string>) =>
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

const ticketsByToken = (sql: SqlClient.SqlClient, tokens: ReadonlyArray<string>) =>
  tokens.length === 0
    ? Effect.succeed(new Map<string, string>())
    : sql<{ token: string; id: string }>`
      SELECT left(replace(id::text, '-', ''), 12) AS token, id FROM tickets
      WHERE left(replace(id::text, '-', ''), 12) = ANY(${tokens})
    `.pipe(Effect.map((rows) => {
      const ids = new Map<string, Array<string>>()
      for (const row of rows) ids.set(row.token, [...(ids.get(row.token) ?? []), row.id])
      return new Map([...ids].flatMap(([token, [id, ...others]]) => others.length === 0 ? [[token, id!] as const] : []))
    }))

/**
 * What the log says is known, rebuilt from its events as a replay would: threads by Message-ID
 * (answers included), mail without one by its hash, ticket tokens, and each ticket's parties.
 */
export const knownFromLog = (events: ReadonlyArray<StoredEvent>): Known => {
  const byMessageId = new Map<string, KnownMail>()
  const byRawSha256 = new Map<string, KnownMail>()
  const byTicketToken = new Map<string, string>()
  const parties = new Map<string, TicketParties>()
  const intents = new Map<string, string>()
  const customers = new Map<string, string>()
  for (const event of events) {
    if (event.erased) continue
    const data = event.data
    if (data._tag === "ReplyIntended") intents.set(data.emailEventId, data.messageId)
    if (data._tag === "ReplySent") {
      const messageId = intents.get(data.emailEventId)
      if (messageId !== undefined) byMessageId.set(messageId, { eventId: event.id, ticketId: data.ticketId })
    }
    if (data._tag !== "EmailReceived") continue
    const mail = { eventId: event.id, ticketId: data.ticketId }
    if (data.messageId) byMessageId.set(data.messageId, mail)
    else byRawSha256.set(data.rawSha256, mail)
    if (data.newTicket) byTicketToken.set(ticketToken(data.ticketId), data.ticketId)
    const before = parties.get(data.ticketId) ?? { customerId: data.customerId, participants: new Set<string>() }
    const added = newParticipants(data, before.customerId === data.customerId, before.participants)
    parties.set(data.ticketId, { customerId: before.customerId, participants: new Set([...before.participants, ...added]) })
    customers.set(data.from.address, data.customerId)
  }
  return { byMessageId, byRawSha256, byTicketToken, parties, customers }
}
