import { Schema } from "effect"

export const Address = Schema.Struct({
  /** lower-cased */
  address: Schema.String,
  name: Schema.String
})
export type Address = typeof Address.Type

/**
 * Headers that bulk mail services put on what they send for a company (receipts, welcome mail,
 * newsletters): Gmail's Feedback-ID for bulk senders, Mandrill's and Mailchimp's user, SendGrid's
 * event id, Amazon SES's, Mailgun's and Postmark's. Kept on the event for the reply guard: such mail
 * is authenticated (the service signs it for the company), has no Auto-Submitted, and is no one's question.
 */
export const bulkHeaderNames = ["feedback-id", "x-mandrill-user", "x-mc-user", "x-sg-eid", "x-ses-outgoing", "x-mailgun-sid", "x-pm-message-id"]

export const Attachment = Schema.Struct({
  filename: Schema.NullOr(Schema.String),
  contentType: Schema.String,
  size: Schema.Number,
  sha256: Schema.String
})
export type Attachment = typeof Attachment.Type

/** Headers the reply guard and the relay need; everything else stays in the raw message. */
export const GuardHeaders = Schema.Record({ key: Schema.String, value: Schema.String })

export const ParsedEmail = Schema.Struct({
  messageId: Schema.NullOr(Schema.String),
  from: Address,
  to: Schema.Array(Address),
  cc: Schema.Array(Address),
  replyTo: Schema.Array(Address),
  subject: Schema.String,
  date: Schema.NullOr(Schema.String),
  inReplyTo: Schema.NullOr(Schema.String),
  references: Schema.Array(Schema.String),
  text: Schema.String,
  html: Schema.NullOr(Schema.String),
  attachments: Schema.Array(Attachment),
  headers: GuardHeaders,
  contentType: Schema.String,
  /**
   * Every Authentication-Results header (RFC 8601), topmost (added last, by the nearest server) first.
   * Only those of a trusted authserv-id count: see SenderAuth. Events older than this field have none.
   */
  authResults: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  /**
   * Fields cut to keep the event deliverable ("text", "html", "to", "cc", "references", "attachments"):
   * the whole mail stays reproducible from the stored raw bytes.
   */
  truncated: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
})
export type ParsedEmail = typeof ParsedEmail.Type

export const QuarantineReason = Schema.Literal("too_large", "unparseable", "no_sender")
export type QuarantineReason = typeof QuarantineReason.Type

/** What could be read of a mail that is not accepted. */
export const HeaderGlimpse = Schema.Struct({
  messageId: Schema.NullOr(Schema.String),
  from: Schema.NullOr(Schema.String),
  subject: Schema.NullOr(Schema.String),
  date: Schema.NullOr(Schema.String)
})
export type HeaderGlimpse = typeof HeaderGlimpse.Type

/** The parser's verdict on one mail, before the log decides received or duplicate. */
export type Parsed =
  | { readonly _tag: "Accepted"; readonly email: ParsedEmail }
  | {
    readonly _tag: "Rejected"
    readonly reason: QuarantineReason
    readonly detail: string
    readonly glimpse: HeaderGlimpse
  }

/** One mail as fetched from the mailbox. `headersOnly` when it was over the size cap. */
export interface RawMail {
  readonly uid: number
  readonly size: number
  readonly source: Buffer
  readonly headersOnly: boolean
}
