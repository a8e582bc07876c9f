/**
 * A fast path for the commonest support mail: one text/plain part, or a text/plain and a text/html
 * part as alternatives, in UTF-8 or ASCII, alone or first in a multipart/mixed whose other parts are
 * all attachments (a screenshot, a log file). mailparser reads every mail as a tree of streams, a few
 * event-loop turns and a dozen stream objects per mail; for small mail that was most of the per-mail
 * cost (docs/performance.md). This reads such a mail with the very pieces mailparser reads it with
 * (mailsplit's header block and MIME node, libmime's header decoding, mailparser's own address
 * parser and libbase64; quoted-printable as libqp decodes it), in one synchronous call.
 *
 * Whatever is not plainly that shape, or is over 1 MB (other multiparts, deeper nesting, another
 * charset, format=flowed, a text part after the first, a forwarded mail, an oversized or odd header
 * block, base64 that a stream could split differently) returns undefined, and mailparser reads the
 * mail as before. The unit test `simpleMail.test.ts` holds both readers to the same result over
 * generated, real-world and hostile mail.
 */
import { createHash } from "node:crypto"
import mailsplit from "@zone-eu/mailsplit"
import libbase64 from "libbase64"
import libmime from "libmime"
import { parseAddressHeader } from "mailparser"
import type { AddressObject, HeaderLines } from "mailparser"
import { decodeQuotedPrintable } from "./QuotedPrintable.js"
import { boundedMemo } from "../lib/BoundedMemo.js"
import type { ReadAttachment, ReadMail } from "./ReadMail.js"

/** mailsplit refuses a header block over 1 MB; far below that, mailparser is left to judge. */
const maxHeaderBytes = 64 * 1024

/**
 * The fast path is for the per-mail cost of small mail. Larger mail goes to mailparser, which yields
 * to the event loop between chunks: read in one synchronous call, a huge text part would hold up
 * every other mailbox's IDLE and commits while it is decoded.
 */
const maxMailBytes = 1024 * 1024

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
      return decodeQuotedPrintable(body)
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

/** A header line's value, decoded as mailparser's processHeaders decodes it. */
const decodedValue = (line: string): string =>
  Buffer.from(String(libmime.decodeHeader(line)?.value ?? "").trim(), "binary").toString()

/**
 * Address headers read before, by their whole line. Nearly every mail's To is the support address,
 * and customers write again: mailparser's address parser was a quarter of this reader's time. Its
 * results are only read (ParseMail copies what it keeps), so one object serves every mail with the
 * same line. A cache, not a record of who wrote; a line longer than any usual list of addresses is
 * read each time.
 */
const addressesOf = boundedMemo({ entries: 2_000, longestKey: 4_096 }, (line) => parseAddressHeader(decodedValue(line)))

/** The root headers mailparser sets on itself, decoded as its processHeaders decodes them. */
const fieldValue = (key: string, line: string): Value | false | undefined => {
  switch (key) {
    case "subject":
      return decodeWords(decodedValue(line))
    case "references":
      return decodeWords(decodedValue(line)).split(/\s+/).map(messageIdFormat).filter((id): id is string => id !== false)
    case "message-id":
    case "in-reply-to":
      return messageIdFormat(decodeWords(decodedValue(line)))
    case "from":
    case "to":
    case "cc":
    case "reply-to":
      return addressesOf(line)
    default:
      return undefined
  }
}

/** Kept once, as mailparser keeps only the first of these when a mail repeats them. */
const singleKeys = new Set(["message-id", "from", "in-reply-to", "reply-to", "subject"])

/** The headers fieldValue reads: the others (Received, DKIM-Signature and the like) are not decoded at all. */
const fieldKeys = new Set(["subject", "references", "message-id", "in-reply-to", "from", "to", "cc", "reply-to"])

const readFields = (lines: HeaderLines): Map<string, Value> => {
  const lists = new Map<string, Array<Value>>()
  for (const { key, line } of lines) {
    if (!fieldKeys.has(key)) continue
    const value = fieldValue(key, line)
    if (!value) continue
    const list = lists.get(key) ?? []
    if (Array.isArray(value)) list.push(...value)
    else list.push(value)
    lists.set(key, list)
  }
  const fields = new Map<string, Value>()
  for (const [key, list] of lists) {
    fields.set(key, singleKeys.has(key) || list.length === 1 ? list[0]! : (list as Array<string>))
  }
  return fields
}

type MimeNode = InstanceType<typeof mailsplit.MimeNode>

/** A node's header block, parsed as mailsplit parses it; undefined when mailsplit could read it otherwise. */
const nodeOf = (parent: MimeNode | false, part: Buffer): { readonly node: MimeNode; readonly body: Buffer } | undefined => {
  const end = headerEnd(part)
  if (end === undefined) return undefined
  const node = new mailsplit.MimeNode(parent, {})
  node.addHeaderChunk(part.subarray(0, end))
  node.parseHeaders()
  return { node, body: part.subarray(end) }
}

/** An inline UTF-8 text part's content as mailparser reads it ("" reads as none), or undefined to decline. */
const textOf = (node: MimeNode, body: Buffer, type: "text/plain" | "text/html"): { readonly content: string | undefined } | undefined => {
  const inline = node.disposition === false || node.disposition === "inline"
  if (node.contentType !== type || !inline || node.flowed || !utf8(node.charset || "utf-8")) return undefined
  const decoded = decodeBody(node.encoding, body)
  if (decoded === undefined) return undefined
  const content = decoded.toString().replaceAll("\r\n", "\n")
  return { content: content === "" ? undefined : content }
}

/**
 * Support mail carries a few attachments. A mail of thousands of tiny parts, still under 1 MB, took
 * the fast path 130–250 ms in one synchronous call: it goes to mailparser, which yields between them.
 */
const maxParts = 32

/**
 * The parts of a multipart body when it is plainly split (and no more than maxParts): each delimiter line exactly `--boundary`
 * (or `--boundary--` to close), no other line starting with it (mailsplit also reads trailing blanks
 * and CR runs there, and delimiters in the epilogue), and the line break in front of a delimiter
 * belonging to the delimiter.
 */
const partsOf = (body: Buffer, boundary: string): Array<Buffer> | undefined => {
  const open = `--${boundary}`
  const close = `${open}--`
  const starts: Array<number> = []
  const ends: Array<number> = []
  let closed = false
  for (let line = 0; line < body.length;) {
    const next = body.indexOf(0x0a, line)
    const stop = next < 0 ? body.length : next
    if (body[line] === 0x2d && body[line + 1] === 0x2d && body.subarray(line, line + open.length).toString("latin1") === open) {
      const text = body.subarray(line, stop).toString("latin1").replace(/\r$/, "")
      if (closed || (text !== open && text !== close)) return undefined
      // The line break in front of the delimiter (CRLF or LF) is the delimiter's, not the part's.
      if (starts.length > 0) ends.push(line - (body[line - 2] === 0x0d ? 2 : 1))
      if (text === close) closed = true
      else if (starts.push(next < 0 ? body.length : next + 1) > maxParts) return undefined
    }
    line = stop + 1
  }
  if (!closed || starts.length === 0 || starts.length !== ends.length) return undefined
  return starts.map((start, i) => body.subarray(start, ends[i]!))
}

/** A multipart node's parts, each with its header block read; undefined when any is not plainly there. */
const childrenOf = (node: MimeNode, body: Buffer) => {
  if (node._boundary === false) return undefined
  const nodes = partsOf(body, node._boundary.toString("latin1"))?.map((part) => nodeOf(node, part))
  // mailsplit reports a part whose whole body is a line break as that line break: left to it.
  if (nodes === undefined || nodes.some((part) => part === undefined || part.body.length === 0)) return undefined
  return nodes as Array<NonNullable<typeof nodes[number]>>
}

interface Content {
  readonly text: string | undefined
  readonly html: string | undefined
  readonly attachments?: ReadonlyArray<ReadAttachment>
}

/** Text and HTML of a multipart/alternative of exactly a text/plain and a text/html part. */
const alternative = (root: MimeNode, body: Buffer): Content | undefined => {
  const nodes = childrenOf(root, body)
  if (nodes === undefined || nodes.length !== 2) return undefined
  const [first, second] = nodes as [typeof nodes[0], typeof nodes[0]]
  const [plain, html] = first.node.contentType === "text/plain" ? [first, second] : [second, first]
  const text = textOf(plain.node, plain.body, "text/plain")
  const markup = textOf(html.node, html.body, "text/html")
  return text && markup ? { text: text.content, html: markup.content } : undefined
}

const single = (root: MimeNode, body: Buffer): Content | undefined => {
  const text = textOf(root, body, "text/plain")
  return text && { text: text.content, html: undefined }
}

/** The types mailparser reads into the text when inline (its textTypes, delivery reports not kept). */
const textTypes = ["text/plain", "text/html", "message/delivery-status"]

/**
 * A leaf that mailparser would hand out as an attachment, with the size and SHA-256 of its decoded
 * bytes and the type and filename it gives it (its createNode and processChunk); undefined for one
 * it would read into the text, a forwarded mail, or a nested multipart.
 */
const attachmentOf = (node: MimeNode, body: Buffer): ReadAttachment | undefined => {
  const type = node.contentType
  if (type === false || type.startsWith("multipart/") || type.startsWith("message/")) return undefined
  const given = node.disposition
  const disposition = given && given !== "attachment" && given !== "inline" ? "attachment" : given || (textTypes.includes(type) ? "inline" : "attachment")
  if (textTypes.includes(type) && disposition === "inline") return undefined
  const bytes = decodeBody(node.encoding, body)
  if (bytes === undefined) return undefined
  const contentType = type === "application/octet-stream" && node.filename
    ? libmime.detectMimeType(node.filename) || type
    : type
  return {
    ...(node.filename ? { filename: node.filename } : {}),
    contentType,
    size: bytes.length,
    checksum: createHash("sha256").update(bytes).digest("hex")
  }
}

/** A multipart/mixed of a text part (or text and HTML alternatives) first, and attachments after it. */
const mixed = (root: MimeNode, body: Buffer): Content | undefined => {
  const nodes = childrenOf(root, body)
  if (nodes === undefined) return undefined
  const [first, ...rest] = nodes as [typeof nodes[0], ...typeof nodes]
  const content = first.node.contentType === "multipart/alternative" ? alternative(first.node, first.body) : single(first.node, first.body)
  const attachments = rest.map((part) => attachmentOf(part.node, part.body))
  if (content === undefined || attachments.some((attachment) => attachment === undefined)) return undefined
  return { ...content, attachments: attachments as Array<ReadAttachment> }
}

/** The mail read without mailparser's streams, or undefined when it is not plainly UTF-8 text (and HTML). */
export const readSimple = (source: Buffer): ReadMail | undefined => {
  if (source.length > maxMailBytes) return undefined
  const root = nodeOf(false, source)
  if (root === undefined || root.node.headers === false) return undefined
  const type = root.node.contentType
  const content = type === "multipart/alternative"
    ? alternative(root.node, root.body)
    : type === "multipart/mixed"
    ? mixed(root.node, root.body)
    : single(root.node, root.body)
  if (content === undefined) return undefined
  const lines = root.node.headers.getList()
  const fields = readFields(lines)
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
    text: content.text,
    html: content.html,
    attachments: content.attachments ?? []
  }
}
