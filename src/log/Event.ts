import { Schema } from "effect"
import { Address, HeaderGlimpse, ParsedEmail, QuarantineReason } from "../mail/Email.js"

export class MailboxReset extends Schema.TaggedClass<MailboxReset>()("MailboxReset", {
  previousUidValidity: Schema.Number,
  uidValidity: Schema.Number
}) {}

/** One DKIM signature's or SPF's result, as a trusted server (or mailroom itself) found it. */
export const AuthCheck = Schema.Struct({
  /** pass, fail, softfail, neutral, none, temperror, permerror, policy */
  result: Schema.String,
  /** The signing domain (DKIM header.d) or the envelope sender's domain (SPF smtp.mailfrom). */
  domain: Schema.NullOr(Schema.String),
  /** Same organisational domain as the From address (DMARC relaxed alignment). */
  aligned: Schema.Boolean
})
export type AuthCheck = typeof AuthCheck.Type

/**
 * Whether the From address is really the sender's: dmarc=pass, or a DKIM or SPF pass aligned with
 * the From domain, in the topmost Authentication-Results of a trusted authserv-id (or verified here).
 */
export const SenderAuth = Schema.Struct({
  authenticated: Schema.Boolean,
  /** header: a trusted Authentication-Results; verified: mailroom checked DKIM/DMARC itself; none. */
  source: Schema.Literal("header", "verified", "none"),
  authservId: Schema.NullOr(Schema.String),
  dmarc: Schema.NullOr(Schema.String),
  dkim: Schema.Array(AuthCheck),
  spf: Schema.NullOr(AuthCheck),
  /** One line for people: why the sender counts as authenticated or not. */
  reason: Schema.String
})
export type SenderAuth = typeof SenderAuth.Type

/** What events recorded before sender authentication existed read as. */
export const unknownSender: SenderAuth = {
  authenticated: false,
  source: "none",
  authservId: null,
  dmarc: null,
  dkim: [],
  spf: null,
  reason: "recorded before mailroom checked senders"
}

export class EmailReceived extends Schema.TaggedClass<EmailReceived>()("EmailReceived", {
  ...ParsedEmail.fields,
  rawSha256: Schema.String,
  size: Schema.Number,
  ticketId: Schema.String,
  customerId: Schema.String,
  newTicket: Schema.Boolean,
  senderAuth: Schema.optionalWith(SenderAuth, { default: () => unknownSender }),
  /**
   * The ticket this mail's headers or [#token] pointed at when its sender is not a participant there:
   * the mail opened a ticket of its own, linked to that one, and sees nothing of it.
   */
  linkedTicketId: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null })
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

/**
 * A quarantined mail parsed again (`mailroom reprocess`): it links the EmailQuarantined, which stays
 * as it was, to the EmailReceived or EmailDuplicate it became, committed with it.
 */
export class EmailReprocessed extends Schema.TaggedClass<EmailReprocessed>()("EmailReprocessed", {
  quarantineEventId: Schema.String,
  /** Why it had been quarantined. */
  reason: QuarantineReason,
  outcomeEventId: Schema.String,
  outcome: Schema.Literal("EmailReceived", "EmailDuplicate"),
  ticketId: Schema.NullOr(Schema.String),
  /** The bytes parsed now: other than the quarantine's when only its headers had been kept. */
  rawSha256: Schema.String,
  /** stored: raw_messages; imap: fetched again from the mailbox; source: read again from the imported file. */
  bytesFrom: Schema.Literal("stored", "imap", "source")
}) {}

/** Why the loop and abuse guard kept mailroom from answering a mail (RFC 3834 and common practice). */
export const SkipReason = Schema.Literal(
  "auto_submitted",
  "precedence",
  "mailing_list",
  /** An automatic reply's header (X-Autoreply and the like) or its subject ("Automatic reply: …"). */
  "auto_reply_header",
  "bounce",
  "no_reply_sender",
  "own_address",
  "rate_limited",
  /** X-Loop names this mailbox: our own answer came back. */
  "loop",
  /** The receiving server's spam verdict (X-Spam-Flag, X-Spam-Status, X-Spam). */
  "spam",
  /** Sent through a bulk mail service (Feedback-ID, an ESP's own header, its bounce address as Return-Path): a receipt or a newsletter, no one's question. */
  "bulk_sender",
  /** REPLY_REQUIRE_AUTH: no trusted server vouched for the From address. */
  "unauthenticated",
  /** The address an answer would go to is not a valid mailbox address. */
  "invalid_recipient",
  /** REPLY_TICKET_LIMIT answers on this ticket in the last 24 hours. */
  "ticket_limit",
  /** REPLY_GLOBAL_LIMIT answers in the last hour across the mailbox: the circuit breaker is open. */
  "global_limit",
  /** The answer needed a person (a link the help passages do not hold) and no draft could be left. */
  "needs_human",
  /** A person answered from the mailbox first (SENT_MAILBOX): the mail itself while its answer waited, or the mail it follows up (Person). */
  "answered_by_person",
  /**
   * mailroom's own answer to the mail is in SENT_MAILBOX already, though the log holds none: the
   * mail was recorded again (a database restored from an older backup, or the log of another
   * mailroom on the same mailbox), or a person sent a draft mailroom left (Person).
   */
  "already_answered",
  /**
   * `mailroom erase` erased the customer while the answer was written (ReplyStore's
   * CustomerErasedMeanwhile). Never recorded, only counted and logged: the CustomerErased event
   * says it, and a record would be sealed under a key made anew for the erased customer.
   */
  "erased"
)
export type SkipReason = typeof SkipReason.Type

/**
 * Which answer to the mail an event belongs to: 0 its first, n the n-th asked for again with
 * `mailroom replies retry` after one failed (ReplyRetried). Each has one intent and one outcome.
 */
const retryField = { retry: Schema.optionalWith(Schema.Number, { default: () => 0 }) }

/** The answer to an EmailReceived is ready; committed before SMTP so that a crash cannot send it twice. */
export class ReplyIntended extends Schema.TaggedClass<ReplyIntended>()("ReplyIntended", {
  ...retryField,
  /** The EmailReceived event this answers. */
  emailEventId: Schema.String,
  ticketId: Schema.String,
  customerId: Schema.String,
  /** Generated by mailroom; looked up in SENT_MAILBOX after a crash. */
  messageId: Schema.String,
  from: Schema.String,
  to: Address,
  subject: Schema.String,
  inReplyTo: Schema.NullOr(Schema.String),
  references: Schema.Array(Schema.String),
  text: Schema.String,
  agent: Schema.String,
  model: Schema.NullOr(Schema.String),
  /** send: over SMTP; draft: left in DRAFTS_MAILBOX for a person (REPLY_MODE=draft, or the checks asked for one). */
  mode: Schema.optionalWith(Schema.Literal("send", "draft"), { default: () => "send" as const }),
  /** Why this answer is a draft although REPLY_MODE=send, e.g. a link no help passage holds. */
  draftReason: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null }),
  /** The keyed id of `to.address`, readable after `to` is sealed: REPLY_RATE_LIMIT counts per recipient with it. */
  recipientId: Schema.optionalWith(Schema.NullOr(Schema.String), { default: () => null })
}) {}

export class ReplySent extends Schema.TaggedClass<ReplySent>()("ReplySent", {
  ...retryField,
  emailEventId: Schema.String,
  ticketId: Schema.String,
  customerId: Schema.String,
  messageId: Schema.String,
  to: Schema.String,
  /** The SMTP server's last response, or how the reply was found after a crash. */
  response: Schema.String,
  attempts: Schema.Number,
  /** True when a restart found the reply in SENT_MAILBOX instead of sending it again. */
  foundInSent: Schema.Boolean
}) {}

/** The answer waits in the drafts folder for a person to check, edit and send. */
export class ReplyDrafted extends Schema.TaggedClass<ReplyDrafted>()("ReplyDrafted", {
  ...retryField,
  emailEventId: Schema.String,
  ticketId: Schema.String,
  customerId: Schema.String,
  messageId: Schema.String,
  /** The folder the draft is in (DRAFTS_MAILBOX). */
  mailbox: Schema.String,
  /** Its UID there, when the server said (UIDPLUS). */
  uid: Schema.NullOr(Schema.Number),
  /** True when a restart found the draft already there instead of appending it again. */
  foundExisting: Schema.Boolean,
  reason: Schema.NullOr(Schema.String)
}) {}

export class ReplySkipped extends Schema.TaggedClass<ReplySkipped>()("ReplySkipped", {
  ...retryField,
  emailEventId: Schema.String,
  ticketId: Schema.String,
  customerId: Schema.String,
  reason: SkipReason,
  detail: Schema.String
}) {}

/**
 * An answer the responder asks for again by itself (a ReplyRetried of its own): one whose recipient
 * the SMTP server took no mail for, for now. Times are ISO 8601, as the log's JSON holds them.
 */
export const AutoRetry = Schema.Struct({
  /** When it is asked for again. */
  at: Schema.String,
  /** Where SMTP_OUTAGE_WAIT counts from: the mail's recording, or the retry a person asked for. */
  waitFrom: Schema.String,
  /** Which automatic retry in a row it will be (1 the first): each waits twice as long as the one before. */
  count: Schema.Number
})
export type AutoRetry = typeof AutoRetry.Type

export class ReplyFailed extends Schema.TaggedClass<ReplyFailed>()("ReplyFailed", {
  ...retryField,
  emailEventId: Schema.String,
  ticketId: Schema.String,
  customerId: Schema.String,
  stage: Schema.Literal("agent", "smtp", "drafts"),
  reason: Schema.String,
  attempts: Schema.Number,
  messageId: Schema.NullOr(Schema.String),
  /** Set when the responder asks for the answer again by itself; null when only a person can. */
  autoRetry: Schema.optionalWith(Schema.NullOr(AutoRetry), { default: () => null })
}) {}

/**
 * A person asked for an answer again (`mailroom replies retry`) after it failed, or after it needed a
 * person when no drafts folder could take it; or the responder did, for an answer whose recipient
 * the SMTP server took no mail for, for now (ReplyFailed.autoRetry). The responder answers the mail
 * anew as retry `retry`, from who gets an answer to delivery, and records that retry's own intent
 * and outcome. The outcome asked about stays in the log as it was.
 */
export class ReplyRetried extends Schema.TaggedClass<ReplyRetried>()("ReplyRetried", {
  emailEventId: Schema.String,
  ticketId: Schema.String,
  customerId: Schema.String,
  retry: Schema.Number,
  /** The outcome asked about: a ReplyFailed, or a ReplySkipped as needs_human. */
  failedEventId: Schema.String,
  /** Asked by the responder itself (ReplyFailed.autoRetry), not by a person: from where it waits, and which in a row. */
  automatic: Schema.optionalWith(Schema.NullOr(Schema.Struct({ waitFrom: Schema.String, count: Schema.Number })), {
    default: () => null
  })
}) {}

/**
 * `mailroom erase --customer`: the customer's keys are destroyed, so every personal field sealed under
 * them reads as erased; projection rows and raw mail are deleted, and Kafka gets tombstones for the tickets.
 */
export class CustomerErased extends Schema.TaggedClass<CustomerErased>()("CustomerErased", {
  customerId: Schema.String,
  /** The keyed id of the erased address (the customer's own id may be older): replay matches rows by it. */
  addressId: Schema.String,
  /** Its tickets: the Kafka keys that get tombstones. */
  ticketIds: Schema.Array(Schema.String),
  /** Its quarantined mail (sealed under its key), each the key of its own Kafka record: tombstoned as well. */
  quarantineEventIds: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  keysDestroyed: Schema.Number,
  rawMessagesDeleted: Schema.Number,
  messagesDeleted: Schema.Number,
  /** Events recorded before mailroom sealed personal data: still readable, see docs/architecture.md. */
  unsealedEvents: Schema.Number
}) {}

export type ReplyEvent = ReplyIntended | ReplySent | ReplyDrafted | ReplySkipped | ReplyFailed
export type ReplyOutcome = ReplySent | ReplyDrafted | ReplySkipped | ReplyFailed

/** One answer to one mail (its retry): what an intent and its outcome share. */
export const answerKey = (data: { readonly emailEventId: string; readonly retry: number }): string => `${data.emailEventId}#${data.retry}`

export const EventData = Schema.Union(
  MailboxReset,
  EmailReceived,
  EmailDuplicate,
  EmailQuarantined,
  EmailReprocessed,
  ReplyIntended,
  ReplySent,
  ReplyDrafted,
  ReplySkipped,
  ReplyFailed,
  ReplyRetried,
  CustomerErased
)
export type EventData = typeof EventData.Type
export type EventType = EventData["_tag"]

/**
 * An event's data as the log stores it: its own fields, copied. No field is transformed on the way
 * to JSON (a Date, say, would be), so the copy is the encoded form: the return type stops the build
 * when a field makes the two differ, and test/unit/personal.test.ts holds every event type to
 * Schema's encoding, which would walk the whole mail again (about 30 µs an event, a tenth of the
 * commit's main-thread work on small mail, docs/performance.md). The data was typed where it was
 * made, and is checked against the schema whenever it is read.
 */
export const encodeEventData = (data: EventData): typeof EventData.Encoded => ({ ...data })

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
  /** Its personal fields were sealed under a key `mailroom erase` has destroyed: they read as empty. */
  readonly erased?: boolean
}

