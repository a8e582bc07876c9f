import { randomUUID } from "node:crypto"
import type { Address, Parsed, ParsedEmail } from "../mail/Email.js"
import type { SenderAuth } from "../log/Event.js"
import { EmailDuplicate, EmailQuarantined, EmailReceived, unknownSender } from "../log/Event.js"
import { subjectTokens, ticketToken } from "../replies/Reply.js"

/** A fetched and parsed mail on its way into the log. */
export interface Incoming {
  readonly uid: number
  readonly size: number
  readonly rawSha256: string
  readonly headersOnly: boolean
  readonly parsed: Parsed
  /** W3C traceparent of this mail's own trace. */
  readonly trace?: string | null
  /** Whether a trusted server vouched for the From address; absent: not checked. */
  readonly senderAuth?: SenderAuth
}

/** A mail already in the log, found by its Message-ID or, lacking one, by its raw hash. */
export interface KnownMail {
  readonly eventId: string
  readonly ticketId: string
}

/** Who a ticket belongs to, and who may write into it: its customer and whom their mail put in To/Cc. */
export interface TicketParties {
  readonly customerId: string
  readonly participants: ReadonlySet<string>
}

export interface Known {
  readonly byMessageId: ReadonlyMap<string, KnownMail>
  readonly byRawSha256: ReadonlyMap<string, KnownMail>
  /** Ticket id by the `[#token]` replies carry in their subject; ambiguous tokens are left out. */
  readonly byTicketToken: ReadonlyMap<string, string>
  /** The parties of every ticket the batch's thread headers and tokens point at. */
  readonly parties: ReadonlyMap<string, TicketParties>
  /**
   * Customer ids by address, as recorded: a customer keeps the id it was given, whatever keyed id
   * its address would get today (ids were a plain hash before 0010, and MAILROOM_SECRET_KEY may be set later).
   */
  readonly customers: ReadonlyMap<string, string>
}

export interface IntakeDecision {
  readonly eventId: string
  readonly uid: number
  readonly ticketId: string | null
  readonly data: EmailReceived | EmailDuplicate | EmailQuarantined
  /** Addresses this mail makes participants of its ticket. */
  readonly participants: ReadonlyArray<string>
}

/** Message-IDs that would place a mail in an existing thread, nearest first. */
export const threadKeys = (email: { readonly inReplyTo: string | null; readonly references: ReadonlyArray<string> }) => [
  ...(email.inReplyTo ? [email.inReplyTo] : []),
  ...[...email.references].reverse()
]

/** Every Message-ID a batch needs looked up before it can be decided. */
export const lookupKeys = (items: ReadonlyArray<Incoming>): Array<string> => [
  ...new Set(items.flatMap((item) =>
    item.parsed._tag === "Accepted"
      ? [...(item.parsed.email.messageId ? [item.parsed.email.messageId] : []), ...threadKeys(item.parsed.email)]
      : []
  ))
]

/** Every subject token a batch needs looked up: the fallback when thread headers are unknown. */
export const lookupTokens = (items: ReadonlyArray<Incoming>): Array<string> => [
  ...new Set(items.flatMap((item) => item.parsed._tag === "Accepted" ? subjectTokens(item.parsed.email.subject) : []))
]

/** The ticket a mail's thread headers or subject token point at, if any: nearest header first. */
export const threadTicket = (
  email: { readonly inReplyTo: string | null; readonly references: ReadonlyArray<string>; readonly subject: string },
  known: Pick<Known, "byMessageId" | "byTicketToken">
): string | undefined =>
  threadKeys(email).map((key) => known.byMessageId.get(key)).find((mail) => mail !== undefined)?.ticketId ??
    subjectTokens(email.subject).map((token) => known.byTicketToken.get(token)).find((id) => id !== undefined)

/**
 * Whom a mail makes participants: on a new ticket its sender and everyone in To/Cc; on an existing
 * ticket only the customer's own mail adds people, so a participant cannot bring in strangers.
 */
export const newParticipants = (
  email: { readonly from: Address; readonly to: ReadonlyArray<Address>; readonly cc: ReadonlyArray<Address> },
  fromCustomer: boolean,
  existing: ReadonlySet<string>
): Array<string> =>
  fromCustomer
    ? [...new Set([email.from.address, ...email.to.map((a) => a.address), ...email.cc.map((a) => a.address)])]
      .filter((address) => !existing.has(address))
    : []

export interface DecideOptions {
  readonly newId?: () => string
  /** A new customer's id: the keyed hash of its address (Vault.customerId). */
  readonly customerId: (address: string) => string
}

/** Every field of a type, the optional ones too: a literal of it that leaves one out does not compile. */
type EveryField<T> = { readonly [K in keyof T]-?: T[K] }

type ReceivedFields = EveryField<ConstructorParameters<typeof EmailReceived>[0]>

/**
 * The EmailReceived a mail becomes. Its fields are copied one by one, not spread in: V8 then builds
 * the object with every field in place, where `{ ...email, more }` left Schema's constructor to copy
 * a slower object, twice the cost of a decision per mail (docs/performance.md). Checked against the
 * schema once, when the event is encoded for the log, not here as well: the check walks the whole
 * mail (text, HTML, attachments) a second time for nothing.
 */
const received = (email: ParsedEmail, filed: Omit<ReceivedFields, keyof ParsedEmail>): EmailReceived => {
  const fields: ReceivedFields = {
    messageId: email.messageId,
    from: email.from,
    to: email.to,
    cc: email.cc,
    replyTo: email.replyTo,
    subject: email.subject,
    date: email.date,
    inReplyTo: email.inReplyTo,
    references: email.references,
    text: email.text,
    html: email.html,
    attachments: email.attachments,
    headers: email.headers,
    contentType: email.contentType,
    authResults: email.authResults,
    truncated: email.truncated,
    rawSha256: filed.rawSha256,
    size: filed.size,
    ticketId: filed.ticketId,
    customerId: filed.customerId,
    newTicket: filed.newTicket,
    senderAuth: filed.senderAuth,
    linkedTicketId: filed.linkedTicketId
  }
  return new EmailReceived(fields, { disableValidation: true })
}

/**
 * Decides, in UID order, what each mail of a batch becomes. Mails earlier in the batch count as
 * known to the ones after them, so a thread delivered in one batch still lands on one ticket.
 */
export const decide = (
  items: ReadonlyArray<Incoming>,
  known: Known,
  options: DecideOptions
): Array<IntakeDecision> => {
  const newId = options.newId ?? randomUUID
  const customers = new Map(known.customers)
  const byMessageId = new Map(known.byMessageId)
  const byRawSha256 = new Map(known.byRawSha256)
  const byTicketToken = new Map(known.byTicketToken)
  const parties = new Map(known.parties)
  return items.map((item) => {
    const eventId = newId()
    const parsed = item.parsed
    if (parsed._tag === "Rejected") {
      return {
        eventId,
        uid: item.uid,
        ticketId: null,
        data: new EmailQuarantined({
          reason: parsed.reason,
          detail: parsed.detail,
          size: item.size,
          rawSha256: item.rawSha256,
          headersOnly: item.headersOnly,
          headers: parsed.glimpse
        }),
        participants: []
      }
    }
    const email = parsed.email
    const original = email.messageId ? byMessageId.get(email.messageId) : byRawSha256.get(item.rawSha256)
    if (original) {
      return {
        eventId,
        uid: item.uid,
        ticketId: original.ticketId,
        data: new EmailDuplicate({
          messageId: email.messageId ?? `sha256:${item.rawSha256}`,
          duplicateOf: original.eventId,
          ticketId: original.ticketId,
          rawSha256: item.rawSha256,
          size: item.size
        }),
        participants: []
      }
    }
    const pointed = threadTicket(email, { byMessageId, byTicketToken })
    const customer = customers.get(email.from.address) ?? options.customerId(email.from.address)
    customers.set(email.from.address, customer)
    const pointedParties = pointed === undefined ? undefined : parties.get(pointed)
    // Knowing a Message-ID or a [#token] is not enough to join: anyone can copy them into a mail.
    const joins = pointedParties !== undefined && pointedParties.participants.has(email.from.address)
    const ticketId = joins ? pointed! : newId()
    const before = joins ? pointedParties : { customerId: customer, participants: new Set<string>() }
    const added = newParticipants(email, before.customerId === customer, before.participants)
    parties.set(ticketId, { customerId: before.customerId, participants: new Set([...before.participants, ...added]) })
    if (!joins) byTicketToken.set(ticketToken(ticketId), ticketId)
    const self = { eventId, ticketId }
    if (email.messageId) byMessageId.set(email.messageId, self)
    else byRawSha256.set(item.rawSha256, self)
    return {
      eventId,
      uid: item.uid,
      ticketId,
      data: received(email, {
        rawSha256: item.rawSha256,
        size: item.size,
        ticketId,
        customerId: customer,
        newTicket: !joins,
        senderAuth: item.senderAuth ?? unknownSender,
        linkedTicketId: joins ? null : pointed ?? null
      }),
      participants: added
    }
  })
}
