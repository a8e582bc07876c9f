/**
 * A fast path for the commonest support mail: one text/plain part in UTF-8 or ASCII. mailparser
 * reads every mail as a tree of streams, a few event-loop turns and a dozen stream objects per mail;
 * for small mail that was most of the per-mail cost (docs/performance.md). This reads such a mail
 * with the very pieces mailparser reads it with (mailsplit's header block and MIME node, libmime's
 * header decoding, mailparser's own address parser, libqp and libbase64), in one synchronous call.
 *
 * Whatever is not plainly that shape (multipart, another charset, format=flowed, an attachment, an
 * oversized or odd header block, base64 that a stream could split differently) returns undefined,
 * and mailparser reads the mail as before. The unit test `simpleMail.test.ts` holds both readers
 * to the same result over generated, real-world and hostile mail.
 */
import mailsplit from "@zone-eu/mailsplit"
import libbase64 from "libbase64"
import libmime from "libmime"
import libqp from "libqp"
import { parseAddressHeader } from "mailparser"
import type { AddressObject, HeaderLines } from "mailparser"

/** What ParseMail reads of a mail (its ReadMail), for the fields a single text part has. */
export interface SimpleMail {
  readonly headerLines: HeaderLines
  readonly from: AddressObject | undefined
  readonly to: AddressObject | Array<AddressObject> | undefined
  readonly cc: AddressObject | Array<AddressObject> | undefined
  readonly replyTo: AddressObject | undefined
  readonly subject: string | undefined
  readonly messageId: string | undefined
  readonly inReplyTo: string | undefined
  readonly references: string | Array<string> | undefined
  readonly text: string | undefined
  readonly html: undefined
  readonly attachments: ReadonlyArray<never>
}

/** mailsplit refuses a header block over 1 MB; far below that, mailparser is left to judge. */
const maxHeaderBytes = 64 * 1024

/** Charsets mailparser reads as UTF-8 without a decoder (its own test, verbatim). */
const utf8 = (charset: string) => ["ascii", "usascii", "utf8"].includes(charset.toLowerCase().replace(/[^a-z0-9]+/g, ""))

/** Where the header block ends (after its empty line), as mailsplit splits lines at LF. */
const headerEnd = (source: Buffer): number | undefined => {
  // A first line that is empty, or an mbox "From " line, is mailsplit's to read.
  if (source[0] === 0x0a || source[0] === 0x0d || source.subarray(0, 5).toString("latin1") === "From ") return undefined
  for (let i = source.indexOf(0x0a); i >= 0 && i < maxHeaderBytes; i = source.indexOf(0x0a, i + 1)) {
    if (source[i + 1] === 0x0a) return i + 2
    if (source[i + 1] === 0x0d && source[i + 2] === 0x0a) return i + 3
  }
  return undefined
}

/** Base64 of the alphabet and line breaks only, padded at the end: decoded alike in one piece or line by line. */
const plainBase64 = (body: string) => /^[A-Za-z0-9+/\r\n]*(?:={1,2}[\r\n]*)?$/.test(body)

const decodeBody = (encoding: string | false, body: Buffer): Buffer | undefined => {
  switch (encoding) {
    case "base64": {
      const text = body.toString("latin1")
      return plainBase64(text) ? libbase64.decode(text.replace(/[\r\n]/g, "")) : undefined
    }
    case "quoted-printable":
      return libqp.decode(body.toString("binary"))
    default:
      return body
  }
}

/** mailparser's Message-ID form: angle brackets added where missing; empty is none. */
const messageIdFormat = (value: string): string | false =>
  value.length === 0 ? false : `${value.startsWith("<") ? "" : "<"}${value}${value.endsWith(">") ? "" : ">"}`

const decodeWords = (value: string) => {
  try {
    return libmime.decodeWords(value)
  } catch {
    return value
  }
}

type Value = string | AddressObject | Array<string>

/** The root headers mailparser sets on itself, decoded as its processHeaders decodes them. */
const fieldValue = (key: string, line: string): Value | false | undefined => {
  const raw = Buffer.from(String(libmime.decodeHeader(line)?.value ?? "").trim(), "binary").toString()
  switch (key) {
    case "subject":
      return decodeWords(raw)
    case "references":
      return decodeWords(raw).split(/\s+/).map(messageIdFormat).filter((id): id is string => id !== false)
    case "message-id":
    case "in-reply-to":
      return messageIdFormat(decodeWords(raw))
    case "from":
    case "to":
    case "cc":
    case "reply-to":
      return parseAddressHeader(raw)
    default:
      return undefined
  }
}

/** Kept once, as mailparser keeps only the first of these when a mail repeats them. */
const single = new Set(["message-id", "from", "in-reply-to", "reply-to", "subject"])

const readFields = (lines: HeaderLines): Map<string, Value> => {
  const lists = new Map<string, Array<Value>>()
  for (const { key, line } of lines) {
    const value = fieldValue(key, line)
    if (!value) continue
    const list = lists.get(key) ?? []
    if (Array.isArray(value)) list.push(...value)
    else list.push(value)
    lists.set(key, list)
  }
  const fields = new Map<string, Value>()
  for (const [key, list] of lists) {
    fields.set(key, single.has(key) || list.length === 1 ? list[0]! : (list as Array<string>))
  }
  return fields
}

/** The mail read without mailparser's streams, or undefined when it is not one UTF-8 text part. */
export const readSimple = (source: Buffer): SimpleMail | undefined => {
  const end = headerEnd(source)
  if (end === undefined) return undefined
  const node = new mailsplit.MimeNode(false, {})
  node.addHeaderChunk(source.subarray(0, end))
  node.parseHeaders()
  const inline = node.disposition === false || node.disposition === "inline"
  if (node.contentType !== "text/plain" || !inline || node.flowed || !utf8(node.charset || "utf-8")) return undefined
  const headers = node.headers
  if (headers === false) return undefined
  const lines = headers.getList()
  const decoded = decodeBody(node.encoding, source.subarray(end))
  if (decoded === undefined) return undefined
  const fields = readFields(lines)
  const text = decoded.toString().replace(/\r?\n/g, "\n")
  const field = <A extends Value>(key: string) => fields.get(key) as A | undefined
  return {
    headerLines: lines,
    from: field<AddressObject>("from"),
    to: field<AddressObject>("to"),
    cc: field<AddressObject>("cc"),
    replyTo: field<AddressObject>("reply-to"),
    subject: field<string>("subject"),
    messageId: field<string>("message-id"),
    inReplyTo: field<string>("in-reply-to"),
    references: field<string | Array<string>>("references"),
    text: text === "" ? undefined : text,
    html: undefined,
    attachments: []
  }
}
