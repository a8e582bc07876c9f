import { Schema } from "effect"
import { HeaderGlimpse, ParsedEmail, QuarantineReason } from "./Email.js"

export class MailboxReset extends Schema.TaggedClass<MailboxReset>()("MailboxReset", {
  previousUidValidity: Schema.Number,
  uidValidity: Schema.Number
}) {}

export class EmailReceived extends Schema.TaggedClass<EmailReceived>()("EmailReceived", {
  ...ParsedEmail.fields,
  rawSha256: Schema.String,
  size: Schema.Number,
  ticketId: Schema.String,
  customerId: Schema.String,
  newTicket: Schema.Boolean
}) {}

export class EmailDuplicate extends Schema.TaggedClass<EmailDuplicate>()("EmailDuplicate", {
  messageId: Schema.String,
  duplicateOf: Schema.String,
  ticketId: Schema.NullOr(Schema.String),
  rawSha256: Schema.String,
  size: Schema.Number
}) {}

export class EmailQuarantined extends Schema.TaggedClass<EmailQuarantined>()("EmailQuarantined", {
  reason: QuarantineReason,
  detail: Schema.String,
  size: Schema.Number,
  rawSha256: Schema.String,
  headersOnly: Schema.Boolean,
  headers: HeaderGlimpse
}) {}

export const EventData = Schema.Union(MailboxReset, EmailReceived, EmailDuplicate, EmailQuarantined)
export type EventData = typeof EventData.Type
export type EventType = EventData["_tag"]

export const intakeEventTypes: ReadonlyArray<EventType> = ["EmailReceived", "EmailDuplicate", "EmailQuarantined"]

/** A committed event as the log holds it. */
export interface StoredEvent {
  readonly seq: bigint
  readonly id: string
  readonly type: EventType
  readonly mailbox: string
  readonly uidvalidity: number | null
  readonly uid: number | null
  readonly ticketId: string | null
  readonly occurredAt: Date
  readonly data: EventData
  readonly trace: string | null
}

