import { createHash } from "node:crypto"
import { MailParser } from "mailparser"
import type { AddressObject, AttachmentStream, HeaderLines, MailParserOptions } from "mailparser"
import type { Address, HeaderGlimpse, Parsed, ParsedEmail, RawMail } from "./Email.js"
import { cleanHeader, cleanText } from "./Text.js"
import { elideLargeParts, restoreDigests } from "./LargeParts.js"

/** Headers kept whole on the event: the reply guard and consumers read them. */
const keptHeaders = [
  "auto-submitted",
  "precedence",
  "list-id",
  "list-unsubscribe",
  "x-autoreply",
  "x-autorespond",
  "x-auto-response-suppress",
  "return-path",
  "sender"
]

interface ReadAttachment {
  readonly filename?: string
  readonly contentType: string
  readonly size: number
  readonly checksum: string
}

/** What one pass of mailparser leaves: the message's headers and text, and each attachment's size and hash. */
interface ReadMail {
  readonly headerLines: HeaderLines
  readonly from: AddressObject | undefined
  readonly to: AddressObject | Array<AddressObject> | undefined
  readonly cc: AddressObject | Array<AddressObject> | undefined
  readonly replyTo: AddressObject | undefined
  readonly subject: string | undefined
  readonly messageId: string | undefined
  readonly inReplyTo: string | undefined
  readonly references: string | Array<string> | undefined
  readonly text: string | false
  readonly html: string | false
  readonly attachments: ReadonlyArray<ReadAttachment>
}

const options: MailParserOptions = {
  checksumAlgo: "sha256",
  skipImageLinks: true,
  skipTextToHtml: true,
  skipTextLinks: true,
  maxHtmlLengthToParse: 2_000_000
}

/**
 * mailparser's streaming parser, with each attachment drained as it is decoded: mailparser hashes
 * and counts it on the way (checksumAlgo), so the decoded bytes are never held in memory at once.
 */
const readWhole = (source: Buffer): Promise<ReadMail> =>
  new Promise((resolve, reject) => {
    const parser = new MailParser(options)
    const attachments: Array<ReadAttachment> = []
    const drain = (attachment: AttachmentStream) => {
      attachment.content.on("end", () => {
        attachments.push({
          ...(attachment.filename === undefined ? {} : { filename: attachment.filename }),
          contentType: attachment.contentType,
          size: attachment.size ?? 0,
          checksum: attachment.checksum ?? ""
        })
        attachment.release?.()
      })
      attachment.content.resume()
    }
    parser.on("data", (data: AttachmentStream | { readonly type: "text" }) => {
      if (data.type === "attachment") drain(data)
    })
    parser.once("error", reject)
    parser.once("end", () =>
      resolve({
        headerLines: parser.headerLines || [],
        from: parser.from,
        to: parser.to,
        cc: parser.cc,
        replyTo: parser.replyTo,
        subject: parser.subject,
        messageId: parser.messageId,
        inReplyTo: parser.inReplyTo,
        references: parser.references,
        text: parser.text,
        html: parser.html,
        attachments
      })
    )
    parser.end(source)
  })

/** A fast path must never be the reason a mail is quarantined: any surprise, and mailparser reads it all. */
const elideOrNot = (source: Buffer) => {
  try {
    return elideLargeParts(source)
  } catch {
    return undefined
  }
}

/** Large base64 parts are hashed natively and cut out first; if mailparser reads the cut message differently, it reads the whole. */
const readMail = async (source: Buffer): Promise<ReadMail> => {
  const elided = elideOrNot(source)
  if (!elided) return readWhole(source)
  const mail = await readWhole(elided.source).catch(() => undefined)
  const attachments = mail && restoreDigests(mail.attachments, elided.parts)
  return mail && attachments ? { ...mail, attachments } : readWhole(source)
}

export const sha256 = (bytes: Uint8Array | string): string => createHash("sha256").update(bytes).digest("hex")

const headerValues = (mail: ReadMail): Map<string, string> => {
  const values = new Map<string, string>()
  for (const { key, line } of mail.headerLines) {
    if (!values.has(key)) values.set(key, cleanHeader(line.slice(line.indexOf(":") + 1)))
  }
  return values
}

const addresses = (field: AddressObject | Array<AddressObject> | undefined): Array<Address> =>
  (field === undefined ? [] : Array.isArray(field) ? field : [field])
    .flatMap((group) => group.value)
    .flatMap((entry) => entry.group ?? [entry])
    .flatMap((entry) =>
      entry.address && entry.address.includes("@")
        ? [{ address: cleanHeader(entry.address).toLowerCase(), name: cleanHeader(entry.name ?? "") }]
        : []
    )

const messageIds = (value: string | Array<string> | undefined): Array<string> =>
  (value === undefined ? [] : Array.isArray(value) ? value : value.split(/\s+/))
    .map(cleanHeader)
    .filter((id) => id.length > 0)

/**
 * The Date header read as mailparser reads it, but without its fallback: it dates mail whose header
 * is missing or unreadable "now", and that is no date at all.
 */
const sentAt = (header: string | undefined): string | null => {
  const date = header === undefined ? undefined : new Date(header)
  return date !== undefined && !Number.isNaN(date.getTime()) ? date.toISOString() : null
}

const glimpse = (headers: Map<string, string>): HeaderGlimpse => ({
  messageId: headers.get("message-id") ?? null,
  from: headers.get("from") ?? null,
  subject: headers.get("subject") ?? null,
  date: headers.get("date") ?? null
})

/** The bytes after the header block, for mail whose MIME structure yields no readable part at all. */
const bodyOf = (source: Buffer): string => {
  const crlf = source.indexOf("\r\n\r\n")
  const lf = source.indexOf("\n\n")
  const start = crlf >= 0 ? crlf + 4 : lf >= 0 ? lf + 2 : source.length
  return source.subarray(start).toString("utf8")
}

const readableText = (mail: ReadMail, source: Buffer): string =>
  mail.text || (typeof mail.html !== "string" && mail.attachments.length === 0 ? bodyOf(source) : "")

const toEmail = (mail: ReadMail, headers: Map<string, string>, source: Buffer): ParsedEmail => ({
  messageId: messageIds(mail.messageId)[0] ?? null,
  from: addresses(mail.from)[0]!,
  to: addresses(mail.to),
  cc: addresses(mail.cc),
  replyTo: addresses(mail.replyTo),
  subject: cleanHeader(mail.subject ?? ""),
  date: sentAt(headers.get("date")),
  inReplyTo: messageIds(mail.inReplyTo)[0] ?? null,
  references: messageIds(mail.references),
  text: cleanText(readableText(mail, source)),
  html: typeof mail.html === "string" ? cleanText(mail.html) : null,
  attachments: mail.attachments.map((part) => ({
    filename: part.filename === undefined ? null : cleanHeader(part.filename),
    contentType: cleanHeader(part.contentType),
    size: part.size,
    sha256: part.checksum
  })),
  headers: Object.fromEntries(keptHeaders.flatMap((key) => headers.has(key) ? [[key, headers.get(key)!]] : [])),
  contentType: headers.get("content-type")?.split(";")[0]?.trim().toLowerCase() ?? "text/plain"
})

const verdict = (mail: ReadMail, raw: RawMail): Parsed => {
  const headers = headerValues(mail)
  if (raw.headersOnly) {
    return {
      _tag: "Rejected",
      reason: "too_large",
      detail: `${raw.size} bytes is over the size cap; headers, size and hash kept`,
      glimpse: glimpse(headers)
    }
  }
  if (addresses(mail.from).length === 0) {
    return { _tag: "Rejected", reason: "no_sender", detail: "no usable From address", glimpse: glimpse(headers) }
  }
  return { _tag: "Accepted", email: toEmail(mail, headers, raw.source) }
}

export const unparseable = (raw: RawMail, cause: unknown): Parsed => ({
  _tag: "Rejected",
  reason: "unparseable",
  detail: cleanHeader(cause instanceof Error ? cause.message : String(cause)).slice(0, 500) ||
    (raw.source.length === 0 ? "empty message" : "parser failed"),
  glimpse: { messageId: null, from: null, subject: null, date: null }
})

const parseWith = (read: (source: Buffer) => Promise<ReadMail>) => (raw: RawMail): Promise<Parsed> =>
  raw.source.length === 0
    ? Promise.resolve(unparseable(raw, "empty message"))
    : read(raw.source).then((mail) => verdict(mail, raw), (cause: unknown) => unparseable(raw, cause))

/** mailparser → a checked email or a reason to quarantine; never rejects. Plain code, so a worker thread can run it. */
export const parseRaw = parseWith(readMail)

/** mailparser over every byte, without cutting large parts out first: what parseRaw must always agree with. */
export const parseRawWhole = parseWith(readWhole)

export interface ParseResult {
  readonly parsed: Parsed
  readonly rawSha256: string
}

export const parseWithHash = async (raw: RawMail): Promise<ParseResult> => ({
  parsed: await parseRaw(raw),
  rawSha256: sha256(raw.source)
})
