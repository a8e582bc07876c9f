import type { EventType } from "./Event.js"
import { unknownSender } from "./Event.js"

/**
 * Which fields of an event are a customer's personal data. They are sealed under that customer's
 * key (Vault) and read back as `erased` once `mailroom erase` has destroyed the key; the other
 * fields stay readable so that the log still tells what happened (ids, sizes, hashes, outcomes).
 *
 * Every field of a sealed type is named here, either as plain or with the value it reads as once
 * erased: a field added to an event must be placed (test/unit/personal.test.ts checks it).
 */
export interface PersonalFields {
  readonly plain: ReadonlyArray<string>
  /** The sealed fields, each with what it reads as after erasure (in its encoded form). */
  readonly erased: Readonly<Record<string, unknown>>
}

const nobody = { address: "", name: "" }

export const personalFields: Partial<Record<EventType, PersonalFields>> = {
  EmailReceived: {
    plain: ["rawSha256", "size", "ticketId", "customerId", "newTicket", "linkedTicketId", "contentType", "truncated"],
    erased: {
      messageId: null,
      from: nobody,
      to: [],
      cc: [],
      replyTo: [],
      subject: "",
      date: null,
      inReplyTo: null,
      references: [],
      text: "",
      html: null,
      attachments: [],
      headers: {},
      authResults: [],
      senderAuth: { ...unknownSender, dkim: [], reason: "erased" }
    }
  },
  EmailQuarantined: {
    plain: ["reason", "size", "rawSha256", "headersOnly"],
    erased: { detail: "", headers: { messageId: null, from: null, subject: null, date: null } }
  },
  ReplyIntended: {
    plain: ["emailEventId", "ticketId", "customerId", "recipientId", "messageId", "from", "agent", "model", "mode", "retry"],
    erased: { to: nobody, subject: "", inReplyTo: null, references: [], text: "", draftReason: null }
  },
  ReplySent: {
    plain: ["emailEventId", "ticketId", "customerId", "messageId", "attempts", "foundInSent", "retry"],
    erased: { to: "", response: "" }
  },
  ReplyDrafted: {
    plain: ["emailEventId", "ticketId", "customerId", "messageId", "mailbox", "uid", "foundExisting", "retry"],
    erased: { reason: null }
  },
  ReplySkipped: {
    plain: ["emailEventId", "ticketId", "customerId", "reason", "retry"],
    erased: { detail: "" }
  },
  ReplyFailed: {
    plain: ["emailEventId", "ticketId", "customerId", "stage", "attempts", "messageId", "retry", "autoRetry"],
    erased: { reason: "" }
  }
}

/** An encoded event's data cut in two: what stays readable, and what is sealed. */
export const split = (
  fields: PersonalFields,
  encoded: Readonly<Record<string, unknown>>
): { readonly plain: Record<string, unknown>; readonly personal: Record<string, unknown> } => {
  const plain: Record<string, unknown> = {}
  const personal: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(encoded)) {
    if (name === "_tag" || fields.plain.includes(name)) plain[name] = value
    else personal[name] = value
  }
  return { plain, personal }
}

/** The first address in a raw From header (`Name <a@b>` or `a@b`), lower-cased; null when there is none. */
export const fromHeaderAddress = (from: string | null): string | null => {
  if (from === null) return null
  const match = /<([^<>\s]+@[^<>\s]+)>/.exec(from) ?? /([^\s<>",;]+@[^\s<>",;]+)/.exec(from)
  return match ? match[1]!.toLowerCase() : null
}
