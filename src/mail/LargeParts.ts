import { createHash, randomBytes } from "node:crypto"

/**
 * mailparser decodes base64 in JavaScript (a regex pass, then 4-character groups) and walks every
 * byte of the message; for mail with attachments that was most of the parse. Large base64 leaf
 * parts only need their decoded size and sha256, which Node computes natively, so they are cut out
 * before mailparser sees the message and each is replaced by a short, unguessable marker. After the
 * parse, every marker must come back as exactly one attachment, or the message is parsed again
 * whole: the fast path never decides what mailparser would not.
 */

export interface PartDigest {
  readonly size: number
  readonly checksum: string
}

export interface Elided {
  /** The message with each large part's body replaced by its marker. */
  readonly source: Buffer
  /** sha256 of a marker's decoded bytes → the digest of the part it stands for. */
  readonly parts: ReadonlyMap<string, PartDigest>
}

/** Below this a message is parsed as it is: cutting would save less than it costs. */
const MIN_MESSAGE_BYTES = 64 * 1024
/** Encoded body size from which a part is worth cutting out. */
const MIN_PART_BYTES = 16 * 1024
/**
 * Decoded in slices of about this many encoded bytes: a large attachment never sits in memory
 * twice, and each slice's string stays small enough for V8's young generation (a large string is
 * allocated outside the heap, page by page, which made slicing cost more than decoding).
 */
const SLICE_BYTES = 64 * 1024
const MAX_HEADER_BYTES = 16 * 1024
const MAX_DEPTH = 8

const LF = 10
const CR = 13
const DASH = 0x2d

interface Headers {
  readonly contentType: string
  readonly boundary: string | undefined
  readonly encoding: string
  readonly disposition: string
}

/** End of the header block starting at `start`: the offset of the body, or -1. */
const bodyStartAfter = (source: Buffer, start: number, end: number): number => {
  const limit = Math.min(end, start + MAX_HEADER_BYTES)
  for (let i = source.indexOf(LF, start); i >= 0 && i < limit; i = source.indexOf(LF, i + 1)) {
    if (i === start || (i === start + 1 && source[start] === CR)) return i + 1
    if (source[i + 1] === LF) return i + 2
    if (source[i + 1] === CR && source[i + 2] === LF) return i + 3
  }
  return -1
}

const readHeaders = (block: string): Headers => {
  const fields = new Map<string, string>()
  for (const line of block.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/)) {
    const colon = line.indexOf(":")
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    if (!fields.has(name)) fields.set(name, line.slice(colon + 1).trim())
  }
  const contentType = fields.get("content-type") ?? "text/plain"
  const boundary = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^\s;"]+))/i.exec(contentType)
  return {
    contentType: contentType.split(";")[0]!.trim().toLowerCase(),
    boundary: boundary ? (boundary[1] ?? boundary[2]) : undefined,
    encoding: (fields.get("content-transfer-encoding") ?? "").toLowerCase(),
    disposition: (fields.get("content-disposition") ?? "").split(";")[0]!.trim().toLowerCase()
  }
}

/** `--boundary` at `at`, followed by the end of the line, transport padding or the closing `--`. */
const isDelimiter = (source: Buffer, at: number, delimiter: Buffer): boolean => {
  if (!source.subarray(at, at + delimiter.length).equals(delimiter)) return false
  const next = source[at + delimiter.length]
  return next === undefined || next === CR || next === LF || next === 0x2d || next === 0x20 || next === 0x09
}

/** Decoded slices land here rather than in a fresh buffer each: hundreds of MB of garbage fewer per backlog. */
let scratch = Buffer.allocUnsafe(SLICE_BYTES)

/** What readBase64 found: where the line that ended the body starts, and the body's size and sha256. */
interface Base64Read {
  readonly stop: number
  readonly digest: PartDigest
}

/**
 * A base64 body decoded natively in slices that each hold a multiple of four base64 characters, from
 * `start` to `end` or to the first line that starts with "-" (base64 has none: a multipart body's
 * next delimiter), whichever comes first. The same walk over the lines finds where the part ends and
 * digests it, so a large attachment is read once rather than searched for its end first. Undefined
 * when the body is anything but clean base64 (a character Node would skip, padding in the middle),
 * so that mailparser's own decoding decides those.
 */
export const readBase64 = (source: Buffer, start: number, end: number): Base64Read | undefined => {
  const hash = createHash("sha256")
  let size = 0
  let sliceStart = start
  let characters = 0
  let padding = 0
  const flush = (sliceEnd: number): boolean => {
    const expected = (characters / 4) * 3 - padding
    if (scratch.length < expected) scratch = Buffer.allocUnsafe(expected)
    const written = scratch.write(source.toString("latin1", sliceStart, sliceEnd), "base64")
    if (written !== expected) return false
    hash.update(scratch.subarray(0, written))
    size += written
    sliceStart = sliceEnd
    characters = 0
    return true
  }
  let line = start
  while (line < end && source[line] !== DASH) {
    let eol = source.indexOf(LF, line)
    if (eol < 0 || eol > end) eol = end
    const contentEnd = eol > line && source[eol - 1] === CR ? eol - 1 : eol
    if (padding > 0 && contentEnd > line) return undefined
    padding = contentEnd > line && source[contentEnd - 1] === 0x3d ? (source[contentEnd - 2] === 0x3d ? 2 : 1) : 0
    characters += contentEnd - line
    line = eol + 1
    const last = line >= end || source[line] === DASH
    if (characters % 4 === 0 && (line - sliceStart >= SLICE_BYTES || last)) {
      if (!flush(Math.min(line, end))) return undefined
    }
  }
  if (characters !== 0) return undefined
  return { stop: Math.min(line, end), digest: { size, checksum: hash.digest("hex") } }
}

interface Cut {
  readonly start: number
  readonly end: number
  readonly digest: PartDigest
}

/** A base64 leaf whose body is worth cutting out: its headers name it so (not text, or text sent as an attachment). */
const worthCutting = (headers: Headers) =>
  headers.encoding === "base64" && (!headers.contentType.startsWith("text/") || headers.disposition === "attachment")

/** Where a body that ends at the line feed `bodyEnd` ends without its CR. */
const contentEndAt = (source: Buffer, bodyEnd: number) => (source[bodyEnd - 1] === CR ? bodyEnd - 1 : bodyEnd)

/** The base64 leaves under a multipart body that are worth cutting; false when the structure is not plain. */
const findCuts = (source: Buffer, start: number, end: number, boundary: string, depth: number, cuts: Array<Cut>): boolean => {
  if (depth > MAX_DEPTH) return false
  const delimiter = Buffer.from(`--${boundary}`, "latin1")
  const searchFor = Buffer.from(`\n--${boundary}`, "latin1")
  let at = isDelimiter(source, start, delimiter) ? start : source.indexOf(searchFor, start) + 1
  while (at > 0 && at < end) {
    if (!isDelimiter(source, at, delimiter)) return false
    if (source[at + delimiter.length] === 0x2d && source[at + delimiter.length + 1] === 0x2d) return true
    const lineEnd = source.indexOf(LF, at)
    if (lineEnd < 0 || lineEnd >= end) return false
    const partStart = lineEnd + 1
    // The part's headers, unless its next delimiter comes before their end (a part with no body).
    let bodyStart = bodyStartAfter(source, partStart, end)
    if (bodyStart >= 0 && source.subarray(partStart - 1, bodyStart).indexOf(searchFor) >= 0) bodyStart = -1
    const headers = bodyStart < 0 ? undefined : readHeaders(source.toString("latin1", partStart, bodyStart))
    const leaf = headers !== undefined && worthCutting(headers)
    // Read to its end by the walk that digests it: a large attachment is not also searched for its end.
    const read = leaf ? readBase64(source, bodyStart, end) : undefined
    if (read !== undefined) {
      // Base64 has no '-': the line that ended the part must be the next delimiter.
      if (read.stop >= end || !isDelimiter(source, read.stop, delimiter)) return false
      const bodyEnd = read.stop - 1
      if (bodyEnd - bodyStart >= MIN_PART_BYTES) cuts.push({ start: bodyStart, end: contentEndAt(source, bodyEnd), digest: read.digest })
      at = read.stop
      continue
    }
    const next = source.indexOf(searchFor, partStart)
    if (next < 0 || next >= end) return false
    if (headers?.contentType.startsWith("multipart/")) {
      if (!headers.boundary || !findCuts(source, bodyStart, next + 1, headers.boundary, depth + 1, cuts)) return false
    } else if (leaf && next - bodyStart >= MIN_PART_BYTES && source.indexOf("\n--", bodyStart) !== next) {
      // Not clean base64, and a line in it starts with "--": not the plain structure it claims.
      return false
    }
    at = next + 1
  }
  return false
}

/** The message with its large base64 parts cut out, or undefined when there is nothing (safe) to cut. */
export const elideLargeParts = (source: Buffer): Elided | undefined => {
  if (source.length < MIN_MESSAGE_BYTES) return undefined
  const bodyStart = bodyStartAfter(source, 0, source.length)
  if (bodyStart < 0) return undefined
  const headers = readHeaders(source.toString("latin1", 0, bodyStart))
  if (!headers.contentType.startsWith("multipart/") || !headers.boundary) return undefined
  const cuts: Array<Cut> = []
  if (!findCuts(source, bodyStart, source.length, headers.boundary, 0, cuts) || cuts.length === 0) return undefined
  const nonce = randomBytes(12).toString("hex")
  const pieces: Array<Buffer> = []
  const parts = new Map<string, PartDigest>()
  let from = 0
  cuts.forEach((cut, index) => {
    const marker = Buffer.from(`mailroom elided part ${nonce} ${index}`)
    parts.set(createHash("sha256").update(marker).digest("hex"), cut.digest)
    pieces.push(source.subarray(from, cut.start), Buffer.from(marker.toString("base64"), "latin1"))
    from = cut.end
  })
  pieces.push(source.subarray(from))
  return { source: Buffer.concat(pieces), parts }
}

/**
 * Puts the real digests back in mailparser's attachments; undefined unless every marker came back
 * exactly once, which is how the fast path proves it read the structure as mailparser did.
 */
export const restoreDigests = <A extends PartDigest>(
  attachments: ReadonlyArray<A>,
  parts: ReadonlyMap<string, PartDigest>
): Array<A> | undefined => {
  const matched = new Set<string>()
  let restored = 0
  const result = attachments.map((attachment) => {
    const digest = parts.get(attachment.checksum)
    if (!digest) return attachment
    restored += 1
    matched.add(attachment.checksum)
    return { ...attachment, ...digest }
  })
  return restored === parts.size && matched.size === parts.size ? result : undefined
}
