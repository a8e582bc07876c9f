import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { EventLog } from "../log/EventLog.js"
import { customerIds } from "./CustomerIds.js"
import type { MessageRow as ProjectedMessage } from "./Projection.js"

/** A message of the projection, as `mailroom export` writes it. */
export interface ExportedMessage {
  readonly id: string
  readonly ticketId: string
  readonly mailbox: string
  readonly direction: "inbound" | "outbound"
  readonly messageId: string | null
  readonly inReplyTo: string | null
  readonly references: ReadonlyArray<string>
  readonly from: string
  readonly to: string | null
  readonly subject: string
  readonly text: string
  readonly html: string | null
  readonly attachments: unknown
  readonly receivedAt: string
  readonly rawSha256: string | null
  /**
   * From or to someone other than the customer: a colleague in Cc writing on their ticket, or
   * mailroom's answer to that colleague. Their words too, which a reply to a request for access may
   * not hand over (GDPR Art. 15(4)): a person reads these first.
   */
  readonly others: boolean
}

/** What mailroom holds of one customer: the right of access beside `erase`'s right to erasure. */
export interface CustomerExport {
  readonly address: string
  readonly exportedAt: string
  /** The ids their mail was recorded under (see CustomerIds). */
  readonly customerIds: ReadonlyArray<string>
  readonly customer: { readonly id: string; readonly email: string; readonly name: string; readonly createdAt: string } | null
  /** Their tickets, each with every message in it. */
  readonly tickets: ReadonlyArray<{
    readonly id: string
    readonly mailbox: string
    readonly subject: string
    readonly status: string
    readonly createdAt: string
    readonly updatedAt: string
    readonly messages: ReadonlyArray<ExportedMessage>
  }>
  /** Their mail and the answers to it in other customers' tickets (a Cc, a colleague's thread). */
  readonly elsewhere: ReadonlyArray<ExportedMessage>
  /** Every event of theirs, personal fields opened (an erased customer's read as erased). */
  readonly events: ReadonlyArray<{
    readonly seq: string
    readonly id: string
    readonly type: string
    readonly mailbox: string
    readonly ticketId: string | null
    readonly occurredAt: string
    readonly erased: boolean
    readonly data: unknown
    /** Another customer's event, found by its ticket: see ExportedMessage.others. */
    readonly others: boolean
  }>
  /** With `raw`: each stored raw mail of theirs, base64; `others` where it is only another person's mail. */
  readonly rawMail: ReadonlyArray<{ readonly sha256: string; readonly headersOnly: boolean; readonly base64: string; readonly others: boolean }>
}

/** A `messages` row as read back: jsonb comes back parsed on PostgreSQL, as text on PGlite. */
type MessageRow = Omit<ProjectedMessage, "attachments"> & { readonly attachments: unknown }

const iso = (value: Date | string) => new Date(value).toISOString()

/** Whether a message is from or to someone other than `address` (ExportedMessage.others). */
const aboutOthers = (row: MessageRow, address: string) => (row.direction === "inbound" ? row.from_email : row.to_email) !== address

const message = (address: string) => (row: MessageRow): ExportedMessage => ({
  id: row.id,
  ticketId: row.ticket_id,
  mailbox: row.mailbox,
  direction: row.direction,
  messageId: row.message_id,
  inReplyTo: row.in_reply_to,
  references: row.references,
  from: row.from_email,
  to: row.to_email,
  subject: row.subject,
  text: row.text,
  html: row.html,
  attachments: typeof row.attachments === "string" ? JSON.parse(row.attachments) : row.attachments,
  receivedAt: iso(row.received_at),
  rawSha256: row.raw_sha256,
  others: aboutOthers(row, address)
})

/**
 * `mailroom export --customer ADDRESS`: what `erase` would delete or make unreadable, read instead,
 * from the projection, the event log (opened with the customer's keys) and, with `raw`, the raw mail.
 * Read-only; one transaction, so the parts agree.
 */
export const exportCustomer = Effect.fn("Export.customer")(function*(input: string, options: { readonly raw: boolean }) {
  const sql = yield* SqlClient.SqlClient
  const log = yield* EventLog
  const address = input.trim().toLowerCase()
  return yield* sql.withTransaction(Effect.gen(function*() {
    const ids = yield* customerIds(address)
    const [customer] = yield* sql<{ id: string; email: string; name: string; created_at: Date }>`
      SELECT id, email, name, created_at FROM customers WHERE id = ANY(${ids}) OR email = ${address} ORDER BY created_at LIMIT 1
    `
    const tickets = yield* sql<{ id: string; mailbox: string; subject: string; status: string; created_at: Date; updated_at: Date }>`
      SELECT id, mailbox, subject, status, created_at, updated_at FROM tickets WHERE customer_id = ANY(${ids}) ORDER BY created_at
    `
    const ticketIds = tickets.map((ticket) => ticket.id)
    const messages = yield* sql<MessageRow>`
      SELECT id, ticket_id, mailbox, direction, message_id, in_reply_to, "references", from_email, to_email, subject, text, html,
             attachments, raw_sha256, received_at
      FROM messages
      WHERE ticket_id = ANY(${ticketIds}) OR (direction = 'inbound' AND from_email = ${address}) OR (direction = 'outbound' AND to_email = ${address})
      ORDER BY received_at, id
    `
    const events = yield* log.readWhere(sql`
      data->>'customerId' = ANY(${ids}) OR ticket_id = ANY(${ticketIds})
      OR key_id IN (SELECT id FROM customer_keys WHERE customer_id = ANY(${ids}))
    `)
    // Raw mail as erase counts it: of the messages, and of quarantined mail (which has none) by its event.
    const shas = [...new Set([
      ...messages.flatMap((row) => row.raw_sha256 === null ? [] : [row.raw_sha256]),
      ...events.flatMap((event) => event.data._tag === "EmailQuarantined" ? [event.data.rawSha256] : [])
    ])]
    const raw = options.raw && shas.length > 0
      ? yield* sql<{ sha256: string; headers_only: boolean; bytes: Uint8Array }>`
          SELECT sha256, headers_only, bytes FROM raw_messages WHERE sha256 = ANY(${shas}) ORDER BY sha256
        `
      : []
    const inTickets = new Set(ticketIds)
    const theirs = new Set(ids)
    const toExport = message(address)
    // A raw mail is another person's only when every message it was recorded as is about others.
    const ownRaw = new Set(messages.flatMap((row) => row.raw_sha256 !== null && !aboutOthers(row, address) ? [row.raw_sha256] : []))
    const othersRaw = new Set(messages.flatMap((row) => row.raw_sha256 !== null && aboutOthers(row, address) ? [row.raw_sha256] : []))
    const exported: CustomerExport = {
      address,
      exportedAt: new Date().toISOString(),
      customerIds: ids,
      customer: customer === undefined ? null : { id: customer.id, email: customer.email, name: customer.name, createdAt: iso(customer.created_at) },
      tickets: tickets.map((ticket) => ({
        id: ticket.id,
        mailbox: ticket.mailbox,
        subject: ticket.subject,
        status: ticket.status,
        createdAt: iso(ticket.created_at),
        updatedAt: iso(ticket.updated_at),
        messages: messages.filter((row) => row.ticket_id === ticket.id).map(toExport)
      })),
      elsewhere: messages.filter((row) => !inTickets.has(row.ticket_id)).map(toExport),
      events: events.map((event) => ({
        seq: event.seq.toString(),
        id: event.id,
        type: event.type,
        mailbox: event.mailbox,
        ticketId: event.ticketId,
        occurredAt: event.occurredAt.toISOString(),
        erased: event.erased ?? false,
        data: event.data,
        others: "customerId" in event.data && typeof event.data.customerId === "string" && !theirs.has(event.data.customerId)
      })),
      rawMail: raw.map((row) => ({
        sha256: row.sha256,
        headersOnly: row.headers_only,
        base64: Buffer.from(row.bytes).toString("base64"),
        others: othersRaw.has(row.sha256) && !ownRaw.has(row.sha256)
      }))
    }
    yield* Effect.annotateCurrentSpan({ "mailroom.export.tickets": tickets.length, "mailroom.export.events": events.length })
    return exported
  }))
})
