import type { SqlClient, Statement } from "@effect/sql"
import { Effect } from "effect"
import type { IntakeDecision } from "./Decide.js"

export interface CustomerRow {
  readonly id: string
  readonly email: string
  readonly name: string
  readonly created_at: Date
}

export interface TicketRow {
  readonly id: string
  readonly customer_id: string
  readonly mailbox: string
  readonly subject: string
  readonly status: string
  readonly created_at: Date
  readonly updated_at: Date
  /** The ticket a stranger's mail pointed at: shown to the team, never to the sender. */
  readonly linked_ticket_id: string | null
}

export interface ParticipantRow {
  readonly ticket_id: string
  readonly address: string
}

export interface MessageRow {
  readonly id: string
  readonly ticket_id: string
  readonly mailbox: string
  readonly direction: "inbound" | "outbound"
  readonly message_id: string | null
  readonly in_reply_to: string | null
  readonly references: ReadonlyArray<string>
  readonly from_email: string
  /** Whom an answer went to; null on inbound mail. */
  readonly to_email: string | null
  readonly subject: string
  readonly text: string
  readonly html: string | null
  readonly attachments: string
  readonly raw_sha256: string | null
  readonly received_at: Date
}

export interface Projection {
  readonly customers: ReadonlyArray<CustomerRow>
  readonly tickets: ReadonlyArray<TicketRow>
  /** Existing tickets that a follow-up touched. */
  readonly followedUp: ReadonlyArray<string>
  readonly messages: ReadonlyArray<MessageRow>
  readonly participants: ReadonlyArray<ParticipantRow>
}

/** The rows that a batch of intake decisions adds to `customers`, `tickets` and `messages`. */
export const project = (mailbox: string, decisions: ReadonlyArray<IntakeDecision>, at: Date): Projection => {
  const customers = new Map<string, CustomerRow>()
  const tickets: Array<TicketRow> = []
  const followedUp = new Set<string>()
  const messages: Array<MessageRow> = []
  const participants: Array<ParticipantRow> = []
  for (const { data, eventId, participants: added } of decisions) {
    if (data._tag !== "EmailReceived") continue
    const known = customers.get(data.from.address)
    if (!known || (known.name === "" && data.from.name !== "")) {
      customers.set(data.from.address, { id: data.customerId, email: data.from.address, name: data.from.name, created_at: at })
    }
    if (data.newTicket) {
      tickets.push({
        id: data.ticketId,
        customer_id: data.customerId,
        mailbox,
        subject: data.subject,
        status: "open",
        created_at: at,
        updated_at: at,
        linked_ticket_id: data.linkedTicketId
      })
    } else {
      followedUp.add(data.ticketId)
    }
    messages.push({
      id: eventId,
      ticket_id: data.ticketId,
      mailbox,
      direction: "inbound",
      message_id: data.messageId,
      in_reply_to: data.inReplyTo,
      references: data.references,
      from_email: data.from.address,
      to_email: null,
      subject: data.subject,
      text: data.text,
      html: data.html,
      attachments: JSON.stringify(data.attachments),
      raw_sha256: data.rawSha256,
      received_at: at
    })
    for (const address of added) participants.push({ ticket_id: data.ticketId, address })
  }
  const created = new Set(tickets.map((ticket) => ticket.id))
  return {
    customers: [...customers.values()],
    tickets,
    followedUp: [...followedUp].filter((id) => !created.has(id)),
    messages,
    participants
  }
}

/** Parameters per INSERT, under PostgreSQL's 65,535 a statement (the protocol counts them in 16 bits). */
const PARAMETERS_PER_INSERT = 30_000

/**
 * INSERTs of `rows`, as many as keep each under PARAMETERS_PER_INSERT: a batch of mail with long
 * recipient lists (up to 500 participants each) would otherwise fail at every retry.
 */
const insertStatements = (sql: SqlClient.SqlClient, table: string, rows: ReadonlyArray<object>, suffix = "") => {
  const perStatement = Math.max(1, Math.floor(PARAMETERS_PER_INSERT / Math.max(1, Object.keys(rows[0] ?? {}).length)))
  const statements: Array<Statement.Statement<unknown>> = []
  for (let i = 0; i < rows.length; i += perStatement) {
    const chunk = rows.slice(i, i + perStatement) as ReadonlyArray<Record<string, unknown>>
    statements.push(sql`INSERT INTO ${sql(table)} ${sql.insert(chunk)} ${sql.literal(suffix)}`)
  }
  return statements
}

/**
 * A projection's writes, as statements: none touches a row another one writes, so they can go in one
 * statement (the tickets a mail follows up are never the ones it creates; foreign keys are checked at
 * its end).
 */
export const projectionStatements = (sql: SqlClient.SqlClient, rows: Projection, at: Date): ReadonlyArray<Statement.Statement<unknown>> => [
  ...insertStatements(
    sql,
    "customers",
    rows.customers,
    "ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name WHERE customers.name = '' AND EXCLUDED.name <> ''"
  ),
  ...insertStatements(sql, "tickets", rows.tickets),
  ...(rows.followedUp.length === 0 ? [] : [sql`UPDATE tickets SET updated_at = ${at} WHERE id = ANY(${rows.followedUp})`]),
  ...insertStatements(sql, "messages", rows.messages.map((row) => ({ ...row, references: [...row.references] }))),
  ...insertStatements(sql, "ticket_participants", rows.participants, "ON CONFLICT DO NOTHING")
]

/** Writes a projection's rows; run inside the transaction that appends the events they come from. */
export const writeProjection = (sql: SqlClient.SqlClient, rows: Projection, at: Date) =>
  Effect.forEach(projectionStatements(sql, rows, at), (statement) => statement, { discard: true })

/** The outbound `messages` row an answer becomes once it is sent, and the ticket it touches. */
export const outboundStatements = (sql: SqlClient.SqlClient, row: MessageRow): ReadonlyArray<Statement.Statement<unknown>> => [
  ...insertStatements(sql, "messages", [{ ...row, references: [...row.references] }], "ON CONFLICT DO NOTHING"),
  sql`UPDATE tickets SET updated_at = ${row.received_at} WHERE id = ${row.ticket_id}`
]
