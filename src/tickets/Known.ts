import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import type { StoredEvent } from "../log/Event.js"
import { answerKey } from "../log/Event.js"
import { fromHeaderAddress } from "../log/Personal.js"
import type { KeyRow, KeysRead } from "../log/Vault.js"
import { liveKeysJson } from "../log/Vault.js"
import { ticketToken } from "../replies/Reply.js"
import type { Incoming, Known, KnownMail, TicketParties } from "./Decide.js"
import { lookupKeys, lookupTokens, newParticipants } from "./Decide.js"

/** The one row the known statement returns. */
export interface KnownRows {
  readonly tokens: ReadonlyArray<readonly [token: string, id: string]>
  readonly customers: ReadonlyArray<readonly [id: string, email: string]>
  readonly mails: ReadonlyArray<readonly [messageId: string | null, rawSha256: string | null, id: string, ticketId: string]>
  readonly parties: ReadonlyArray<readonly [id: string, customerId: string, address: string | null]>
  readonly keys: ReadonlyArray<KeyRow>
}

/** What a batch points at, and the keys of the customers its events will be sealed for. */
export interface KnownWithKeys {
  readonly known: Known
  readonly keys: KeysRead
}

/**
 * What a batch's mail points at, across every mailbox: a mail is recorded once however it came.
 * One statement, so one round trip while the append lock is held (TicketRepo sends it with the
 * cursor's move): the tickets its subject tokens name, its senders' customer ids, the mail its
 * Message-IDs and thread headers (or, lacking a Message-ID, its hash) name, and the parties of the
 * tickets found. And the keys its events will be sealed under (a sender's recorded id, or the
 * keyed id `customerId` gives a new one; a quarantined mail's From address), which would otherwise
 * take a round trip of their own.
 */
export const knownQuery = (
  sql: SqlClient.SqlClient,
  items: ReadonlyArray<Incoming>,
  customerId: (address: string) => string
) => {
  const ids = lookupKeys(items)
  const hashes = items.flatMap((item) =>
    item.parsed._tag === "Accepted" && item.parsed.email.messageId === null ? [item.rawSha256] : []
  )
  const addresses = [...new Set(items.flatMap((item) => item.parsed._tag === "Accepted" ? [item.parsed.email.from.address] : []))]
  const quarantined = items.flatMap((item) => {
    const address = item.parsed._tag === "Rejected" ? fromHeaderAddress(item.parsed.glimpse.from) : null
    return address === null ? [] : [address]
  })
  const keyed = [...new Set([...addresses, ...quarantined].map(customerId))]
  // The batch's senders are joined to the customers (unnest) rather than tested row by row (= ANY):
  // the commit's plans are generic, made before the values are seen, as if a batch held ten; with
  // `= ANY`, a table of a few thousand customers was read whole, and each row compared with every
  // one of a batch's 200 senders (docs/performance.md).
  const statement = sql`
    WITH tokens AS (
      SELECT left(replace(id::text, '-', ''), 12) AS token, id FROM tickets
      WHERE left(replace(id::text, '-', ''), 12) = ANY(${lookupTokens(items)})
    ), mails AS (
      SELECT message_id, raw_sha256, id, ticket_id FROM messages
      WHERE message_id = ANY(${ids}) OR (message_id IS NULL AND raw_sha256 = ANY(${hashes}))
    ), senders AS (
      SELECT c.id, c.email FROM unnest(${addresses}::text[]) AS wanted(email) JOIN customers c ON c.email = wanted.email
    )
    SELECT
      (SELECT coalesce(json_agg(json_build_array(token, id)), '[]') FROM tokens) AS tokens,
      (SELECT coalesce(json_agg(json_build_array(id, email)), '[]') FROM senders) AS customers,
      (SELECT coalesce(json_agg(json_build_array(message_id, raw_sha256, id, ticket_id)), '[]') FROM mails) AS mails,
      (SELECT coalesce(json_agg(json_build_array(t.id, t.customer_id, p.address)), '[]')
        FROM tickets t LEFT JOIN ticket_participants p ON p.ticket_id = t.id
        WHERE t.id IN (SELECT id FROM tokens UNION SELECT ticket_id FROM mails)) AS parties,
      ${liveKeysJson(sql, sql`SELECT unnest(${keyed}::uuid[]) UNION SELECT id FROM senders`)} AS keys
  `
  const read = (row: KnownRows): KnownWithKeys => {
    const known = fromRows(row)
    return { known, keys: { customers: new Set([...keyed, ...known.customers.values()]), rows: row.keys } }
  }
  return { statement, read } as const
}

/** `knownQuery`'s statement on its own. */
export const knownFromDatabase = (
  sql: SqlClient.SqlClient,
  items: ReadonlyArray<Incoming>,
  customerId: (address: string) => string
): Effect.Effect<KnownWithKeys, SqlError> => {
  const { read, statement } = knownQuery(sql, items, customerId)
  return Effect.map(sql<KnownRows>`${statement}`, (rows) => read(rows[0]!))
}

const fromRows = (rows: KnownRows): Known => {
  const byMessageId = new Map<string, KnownMail>()
  const byRawSha256 = new Map<string, KnownMail>()
  for (const [messageId, rawSha256, eventId, ticketId] of rows.mails) {
    if (messageId !== null) byMessageId.set(messageId, { eventId, ticketId })
    else if (rawSha256 !== null) byRawSha256.set(rawSha256, { eventId, ticketId })
  }
  // A token two tickets share (twelve hex digits of two ids alike) points at neither.
  const byToken = new Map<string, Array<string>>()
  for (const [token, id] of rows.tokens) byToken.set(token, [...(byToken.get(token) ?? []), id])
  const byTicketToken = new Map([...byToken].flatMap(([token, [id, ...others]]) => others.length === 0 ? [[token, id!] as const] : []))
  const parties = new Map<string, { customerId: string; participants: Set<string> }>()
  for (const [id, customerId, address] of rows.parties) {
    const entry = parties.get(id) ?? { customerId, participants: new Set<string>() }
    if (address !== null) entry.participants.add(address)
    parties.set(id, entry)
  }
  return { byMessageId, byRawSha256, byTicketToken, parties, customers: new Map(rows.customers.map(([id, email]) => [email, id])) }
}

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
    if (data._tag === "ReplyIntended") intents.set(answerKey(data), data.messageId)
    if (data._tag === "ReplySent") {
      const messageId = intents.get(answerKey(data))
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
