import type { Options } from "nodemailer/lib/mailer"
import type { OutboundMail } from "./Mailer.js"
import { safeHeader } from "./Reply.js"

/**
 * The nodemailer message of one answer, the same whether SMTP sends it or it waits as a draft, so
 * that both thread alike: In-Reply-To and References put it in the customer's conversation.
 */
export const messageOptions = (mail: OutboundMail, headers: Record<string, string>, date: Date = new Date()): Options => ({
  from: mail.from,
  to: { name: safeHeader(mail.to.name), address: mail.to.address },
  subject: safeHeader(mail.subject),
  text: mail.text,
  messageId: mail.messageId,
  ...(mail.inReplyTo ? { inReplyTo: mail.inReplyTo } : {}),
  ...(mail.references.length > 0 ? { references: [...mail.references] } : {}),
  headers,
  date,
  // An answer is text we wrote: nothing in it may make nodemailer read a file or fetch a URL.
  disableFileAccess: true,
  disableUrlAccess: true
})

/** The message as the RFC 5322 bytes an IMAP APPEND stores (nodemailer loaded with the first draft, not at start). */
export const compose = (options: Options): Promise<Buffer> =>
  import("nodemailer/lib/mail-composer").then(({ default: MailComposer }) => new MailComposer(options).compile().build())
