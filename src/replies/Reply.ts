import { randomUUID } from "node:crypto"
import type { Address } from "../mail/Email.js"
import type { EmailReceived, ReplyIntended, SkipReason } from "../log/Event.js"
import type { MessageRow } from "../tickets/Projection.js"
import { cleanHeader } from "../mail/Text.js"

export interface Skip {
  readonly reason: SkipReason
  readonly detail: string
}

/** What the guard reads of a received mail. */
export type GuardInput = Pick<EmailReceived, "from" | "replyTo" | "headers" | "contentType">

const localPart = (address: string) => address.slice(0, address.lastIndexOf("@")).toLowerCase()

const bounceSenders = /^(mailer-daemon|postmaster)$/
const noReplySenders = /^(no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?)([-+._].*)?$/
const listPrecedence = /^(bulk|junk|list)$/

/** Where the answer goes: Reply-To when the customer set one, else From. */
export const recipient = (email: Pick<EmailReceived, "from" | "replyTo">): Address => email.replyTo[0] ?? email.from

/**
 * RFC 3834 and common practice: never answer an automatic message, a list, a bounce, a no-reply
 * sender or ourselves. Pure, so that every case is tested without a server.
 */
export const loopGuard = (email: GuardInput, ownAddress: string): Skip | undefined => {
  const header = (name: string) => email.headers[name]?.trim()
  const own = ownAddress.toLowerCase()
  const to = recipient(email).address
  if (email.from.address === own || to === own) {
    return { reason: "own_address", detail: `the mail comes from or answers to mailroom's own address ${own}` }
  }
  if (email.contentType === "multipart/report") {
    return { reason: "bounce", detail: "a delivery or read report (multipart/report)" }
  }
  if (bounceSenders.test(localPart(email.from.address))) {
    return { reason: "bounce", detail: `sent by ${email.from.address}` }
  }
  if (header("return-path") === "<>") {
    return { reason: "bounce", detail: "empty Return-Path (a bounce or another automatic message)" }
  }
  const autoSubmitted = header("auto-submitted")
  if (autoSubmitted !== undefined && autoSubmitted.split(";")[0]!.trim().toLowerCase() !== "no") {
    return { reason: "auto_submitted", detail: `Auto-Submitted: ${autoSubmitted}` }
  }
  const precedence = header("precedence")
  if (precedence !== undefined && listPrecedence.test(precedence.toLowerCase())) {
    return { reason: "precedence", detail: `Precedence: ${precedence}` }
  }
  for (const name of ["list-id", "list-unsubscribe"]) {
    if (header(name) !== undefined) return { reason: "mailing_list", detail: `has a ${name} header` }
  }
  for (const name of ["x-autoreply", "x-autorespond", "x-auto-response-suppress"]) {
    const value = header(name)
    if (value !== undefined) return { reason: "auto_reply_header", detail: `${name}: ${value}` }
  }
  for (const address of new Set([email.from.address, to])) {
    if (noReplySenders.test(localPart(address))) {
      return { reason: "no_reply_sender", detail: `${address} does not take replies` }
    }
  }
  return undefined
}

/** REPLY_RATE_LIMIT: a sender that already got this many replies in the last hour gets no more. */
export const rateGuard = (sentLastHour: number, limit: number): Skip | undefined =>
  sentLastHour >= limit
    ? { reason: "rate_limited", detail: `${sentLastHour} replies sent to this sender or address in the last hour (REPLY_RATE_LIMIT=${limit})` }
    : undefined

/** Header values built from customer input carry no line break and no other control character. */
export const safeHeader = (value: string): string => cleanHeader(value).replace(/[\u0000-\u001f\u007f]/g, "")

const TOKEN_LENGTH = 12

/** The ticket number customers see, `[#<token>]`: the first 48 bits of the ticket id. */
export const ticketToken = (ticketId: string): string => ticketId.replace(/-/g, "").slice(0, TOKEN_LENGTH).toLowerCase()

const tokenPattern = /\[#([0-9a-f]{12})\]/gi

/** The ticket tokens a subject carries, e.g. "Re: Login [#0b6f3a2c5d1e]". */
export const subjectTokens = (subject: string): Array<string> =>
  [...new Set([...subject.matchAll(tokenPattern)].map((match) => match[1]!.toLowerCase()))]

const replyPrefix = /^\s*((re|aw|sv|vs|antw|ref|rif)(\[\d+\])?\s*:\s*)+/i

/** `Re: <subject> [#token]`, without stacking `Re: Re:` or the token. */
export const replySubject = (subject: string, ticketId: string): string => {
  const token = ticketToken(ticketId)
  const base = safeHeader(subject).replace(replyPrefix, "").slice(0, 200).trim()
  const tagged = subjectTokens(base).includes(token) ? base : `${base} [#${token}]`.trim()
  return `Re: ${tagged}`
}

const messageIdPattern = /^<[^<>\s]{1,250}>$/

export const isMessageId = (value: string): boolean => messageIdPattern.test(value)

const MAX_REFERENCES = 20

/** In-Reply-To and References of an answer (RFC 5322 3.6.4), from well-formed ids only. */
export const threading = (email: Pick<EmailReceived, "messageId" | "references">) => {
  const own = email.messageId !== null && isMessageId(email.messageId) ? email.messageId : null
  const chain = [...new Set([...email.references.filter(isMessageId), ...(own ? [own] : [])])]
  // Keep the root and the most recent ids, as mail clients do when a thread grows long.
  const references = chain.length > MAX_REFERENCES ? [chain[0]!, ...chain.slice(-(MAX_REFERENCES - 1))] : chain
  return { inReplyTo: own, references }
}

/** A Message-ID of mailroom's own, on the domain of the mailbox address. */
export const newMessageId = (fromAddress: string): string => {
  const domain = fromAddress.slice(fromAddress.lastIndexOf("@") + 1).toLowerCase().replace(/[^a-z0-9.-]/g, "")
  return `<${randomUUID()}.mailroom@${domain || "mailroom.invalid"}>`
}

/** The headers every answer carries besides the threading ones. */
export const autoReplyHeaders = {
  "Auto-Submitted": "auto-replied",
  // Asks Exchange and Outlook not to answer our answer with an out-of-office.
  "X-Auto-Response-Suppress": "All"
} as const

/** The `messages` row of an answer, written with its ReplySent. */
export const outboundRow = (id: string, mailbox: string, intent: ReplyIntended, at: Date): MessageRow => ({
  id,
  ticket_id: intent.ticketId,
  mailbox,
  direction: "outbound",
  message_id: intent.messageId,
  in_reply_to: intent.inReplyTo,
  references: intent.references,
  from_email: intent.from,
  subject: intent.subject,
  text: intent.text,
  html: null,
  attachments: "[]",
  raw_sha256: null,
  received_at: at
})
