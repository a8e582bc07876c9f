// Mail written by hand, byte by byte, so that the tests can also write it wrong on purpose.

export interface MailAttachment {
  readonly filename: string
  readonly contentType: string
  readonly content: Buffer
}

export interface MailOptions {
  /** `null` leaves the header out. */
  readonly from?: string | null
  readonly to?: string
  /** Printable ASCII is written as given (an encoded-word of the caller's own included); anything else is RFC 2047 encoded. */
  readonly subject?: string
  /** `null` leaves the text part out: with `html`, the mail is that one HTML part. */
  readonly text?: string | null
  readonly html?: string
  /** `null` leaves the header out. */
  readonly messageId?: string | null
  readonly inReplyTo?: string
  readonly references?: ReadonlyArray<string>
  readonly date?: Date
  /** Extra header lines, written verbatim: a way to make a header malformed on purpose. */
  readonly headers?: Readonly<Record<string, string>>
  readonly attachments?: ReadonlyArray<MailAttachment>
  /**
   * Charset of the text and HTML parts, utf-8 by default. Single- and double-byte charsets that
   * TextDecoder knows, and iso-2022-jp, are really encoded (unmappable characters become "?"); a
   * label it does not know (x-klingon) gets UTF-8 bytes: mislabelled on purpose.
   */
  readonly charset?: string
  /** Of the text and HTML parts; attachments are always base64. */
  readonly transferEncoding?: "quoted-printable" | "base64"
  /** Fixed MIME boundary, for byte-identical output. */
  readonly boundary?: string
  /**
   * Adds the Authentication-Results header Gmail's MX writes for a sender that passed DMARC
   * (authserv-id mx.google.com, trusted by default), topmost as a receiving server adds it.
   */
  readonly authenticated?: boolean
  /** Header lines written above every other, as receiving servers add trace headers. */
  readonly trace?: ReadonlyArray<string>
}

const addressOf = (value: string) => (/<([^<>]+)>/.exec(value)?.[1] ?? value).trim().toLowerCase()

/** What Gmail's MX writes for mail that passed DKIM, SPF and DMARC. */
export const gmailPass = (from: string): string => {
  const address = addressOf(from)
  const domain = address.slice(address.lastIndexOf("@") + 1)
  return `Authentication-Results: mx.google.com;\r\n       dkim=pass header.i=@${domain} header.s=s2026 header.b=Kx3fQ9Zt;\r\n` +
    `       spf=pass (google.com: domain of ${address} designates 209.85.220.41 as permitted sender) smtp.mailfrom=${address};\r\n` +
    `       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=${domain}`
}

export type Expectation = "received" | "quarantined" | "duplicate"

export type QuarantineReason = "no_sender" | "unparseable" | "too_large"

export interface HostileMail {
  readonly name: string
  readonly raw: Buffer
  readonly expect: Expectation
  readonly reason?: QuarantineReason
  /** What mailparser 3.14 does with it, checked by test/unit/mails.test.ts. */
  readonly note: string
}

// ---------------------------------------------------------------------------------------------
// Pseudo-random bytes

const uint32s = (seed: number) => {
  let state = seed >>> 0
  return (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
}

/** mulberry32: floats in [0, 1), the same sequence for the same seed everywhere. */
export const mulberry32 = (seed: number): (() => number) => {
  const next = uint32s(seed)
  return () => next() / 4294967296
}

const fillRandom = (target: Buffer, next: () => number): Buffer => {
  const whole = target.length - (target.length % 4)
  for (let i = 0; i < whole; i += 4) target.writeUInt32LE(next(), i)
  if (whole < target.length) {
    const last = next()
    for (let i = whole; i < target.length; i++) target[i] = (last >>> (8 * (i - whole))) & 0xff
  }
  return target
}

/** `size` bytes from mulberry32(seed), little-endian words. */
export const pseudoRandomBytes = (size: number, seed: number): Buffer => fillRandom(Buffer.alloc(size), uint32s(seed))

// ---------------------------------------------------------------------------------------------
// Encodings

const hex = (byte: number) => `=${byte.toString(16).toUpperCase().padStart(2, "0")}`

export const base64Lines = (content: Buffer): string => content.toString("base64").replace(/.{76}(?=.)/g, "$&\r\n")

const qpUnit = (byte: number): string =>
  (byte >= 33 && byte <= 126 && byte !== 61) || byte === 32 || byte === 9 ? String.fromCharCode(byte) : hex(byte)

const qpLine = (bytes: Buffer): string => {
  const units = Array.from(bytes, qpUnit)
  const last = units.length - 1
  if (last >= 0 && (units[last] === " " || units[last] === "\t")) units[last] = hex(bytes[last]!)
  const lines: Array<string> = []
  let line = ""
  for (const unit of units) {
    if (line.length + unit.length > 75) {
      lines.push(`${line}=`)
      line = ""
    }
    line += unit
  }
  return [...lines, line].join("\r\n")
}

/** Quoted-printable; LF or CRLF in the bytes become hard CRLF line breaks. */
export const quotedPrintable = (bytes: Buffer): string => {
  const lines: Array<string> = []
  let start = 0
  for (let at = bytes.indexOf(0x0a); at >= 0; at = bytes.indexOf(0x0a, start)) {
    lines.push(qpLine(bytes.subarray(start, at > start && bytes[at - 1] === 0x0d ? at - 1 : at)))
    start = at + 1
  }
  return [...lines, qpLine(bytes.subarray(start))].join("\r\n")
}

const wordChunks = (value: string): Array<string> => {
  const chunks = [""]
  for (const char of value) {
    const last = chunks.length - 1
    if (Buffer.byteLength(chunks[last] + char) > 39) chunks.push(char)
    else chunks[last] += char
  }
  return chunks
}

const printable = (value: string) => /^[\x20-\x7e]*$/.test(value)

/** RFC 2047 B-encoded words of at most 39 UTF-8 bytes (64 characters) each, folded onto their own lines. */
export const encodeWord = (value: string): string =>
  printable(value)
    ? value
    : wordChunks(value).map((chunk) => `=?UTF-8?B?${Buffer.from(chunk).toString("base64")}?=`).join("\r\n ")

const encodeAddress = (value: string): string => {
  if (printable(value)) return value
  const parts = /^(.*?)\s*(<[^<>]*>)$/.exec(value)
  return parts ? `${encodeWord(parts[1]!)} ${parts[2]}` : encodeWord(value)
}

// RFC 2231 continuations of at most 50 characters, never splitting a %XX.
const pieces = (encoded: string): Array<string> => {
  const out = [""]
  for (const unit of encoded.match(/%[0-9A-F]{2}|[^%]/g) ?? []) {
    if (out[out.length - 1]!.length + unit.length > 50) out.push(unit)
    else out[out.length - 1] += unit
  }
  return out
}

/** A MIME parameter: a token, a quoted string, or RFC 2231 UTF-8 percent-encoding when neither will do. */
const param = (name: string, value: string): string => {
  if (/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value)) return `${name}=${value}`
  if (printable(value) && !/["\\]/.test(value)) return `${name}="${value}"`
  const encoded = pieces(encodeURIComponent(value).replace(/['()*!]/g, (c) => hex(c.charCodeAt(0)).replace("=", "%")))
  return encoded.length === 1
    ? `${name}*=UTF-8''${encoded[0]}`
    : encoded.map((piece, i) => `${name}*${i}*=${i === 0 ? "UTF-8''" : ""}${piece}`).join(";\r\n ")
}

// ---------------------------------------------------------------------------------------------
// Charsets

type Encoder = (text: string) => Buffer

// Node 20's TextDecoder turns 0x80-0x9F of windows-1252 (and so of every latin1 label) into
// nothing, so that stretch is spelled out here.
const cp1252High = "€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008dŽ\u008f\u0090‘’“”•–—˜™š›œ\u009džŸ"

const decoderOf = (encoding: string): ((bytes: Uint8Array) => string) => {
  const decoder = new TextDecoder(encoding)
  if (encoding !== "windows-1252") return (bytes) => decoder.decode(bytes)
  return (bytes) => bytes.length === 1 && bytes[0]! >= 0x80 && bytes[0]! < 0xa0
    ? cp1252High[bytes[0]! - 0x80]!
    : decoder.decode(bytes)
}

const byteTable = (encoding: string): Map<string, ReadonlyArray<number>> => {
  const decode = decoderOf(encoding)
  const table = new Map<string, ReadonlyArray<number>>()
  const add = (bytes: Array<number>) => {
    const char = decode(Uint8Array.from(bytes))
    if (char !== "\ufffd" && [...char].length === 1 && !table.has(char)) table.set(char, bytes)
  }
  for (let a = 0; a < 0x100; a++) add([a])
  // Lead and trail ranges of the double-byte charsets (Shift_JIS, EUC-JP, GBK, Big5, EUC-KR).
  for (let a = 0x81; a < 0xff; a++) for (let b = 0x40; b < 0xff; b++) add([a, b])
  return table
}

const tables = new Map<string, Map<string, ReadonlyArray<number>>>()

const tableOf = (encoding: string) => {
  const known = tables.get(encoding) ?? byteTable(encoding)
  tables.set(encoding, known)
  return known
}

const tableEncoder = (encoding: string): Encoder => (text) => {
  const table = tableOf(encoding)
  const out: Array<number> = []
  for (const char of text) out.push(...(table.get(char) ?? [0x3f]))
  return Buffer.from(out)
}

// RFC 1468: JIS X 0208 is EUC-JP less 0x80, between ESC $ B and ESC ( B; every line ends in ASCII.
const iso2022jp: Encoder = (text) => {
  const euc = tableOf("euc-jp")
  const out: Array<number> = []
  let jis = false
  const shift = (to: boolean) => {
    if (to !== jis) out.push(...(to ? [0x1b, 0x24, 0x42] : [0x1b, 0x28, 0x42]))
    jis = to
  }
  for (const char of text) {
    const pair = euc.get(char)
    const double = pair?.length === 2 && pair[0]! >= 0xa1
    shift(double)
    if (double) out.push(pair![0]! - 0x80, pair![1]! - 0x80)
    else out.push(char.charCodeAt(0) < 0x80 ? char.charCodeAt(0) : 0x3f)
  }
  shift(false)
  return Buffer.from(out)
}

const knownEncoding = (label: string): string | undefined => {
  try {
    return new TextDecoder(label).encoding
  } catch {
    return undefined
  }
}

/** `text` in `charset`; see MailOptions.charset. */
export const encodeText = (text: string, charset: string): Buffer => {
  const encoding = knownEncoding(charset)
  if (encoding === undefined || encoding.startsWith("utf-")) return Buffer.from(text, "utf8")
  return (encoding === "iso-2022-jp" ? iso2022jp : tableEncoder(encoding))(text)
}

// ---------------------------------------------------------------------------------------------
// Messages

interface Entity {
  readonly headers: ReadonlyArray<string>
  readonly body: string
}

const render = (entity: Entity) => `${entity.headers.join("\r\n")}\r\n\r\n${entity.body}`

const multipart = (subtype: string, boundary: string, parts: ReadonlyArray<Entity>): Entity => ({
  headers: [`Content-Type: multipart/${subtype}; boundary="${boundary}"`],
  body: `${parts.map((part) => `--${boundary}\r\n${render(part)}`).join("\r\n")}\r\n--${boundary}--`
})

const textPart = (subtype: "plain" | "html", text: string, options: MailOptions): Entity => {
  const charset = options.charset ?? "utf-8"
  const bytes = encodeText(text.replace(/\r?\n/g, "\r\n"), charset)
  const base64 = options.transferEncoding === "base64"
  return {
    headers: [
      `Content-Type: text/${subtype}; ${param("charset", charset)}`,
      `Content-Transfer-Encoding: ${base64 ? "base64" : "quoted-printable"}`
    ],
    body: base64 ? base64Lines(bytes) : quotedPrintable(bytes)
  }
}

const attachmentPart = (attachment: MailAttachment, body: string): Entity => ({
  headers: [
    `Content-Type: ${attachment.contentType};\r\n ${param("name", attachment.filename)}`,
    `Content-Disposition: attachment;\r\n ${param("filename", attachment.filename)}`,
    "Content-Transfer-Encoding: base64"
  ],
  body
})

const bodyEntity = (options: MailOptions, boundary: string, attachments: ReadonlyArray<Entity>): Entity => {
  const text = textPart("plain", options.text ?? "Hello, I need help with my account.", options)
  const readable = options.html === undefined
    ? text
    : options.text === null
    ? textPart("html", options.html, options)
    : multipart("alternative", `alt_${boundary}`, [text, textPart("html", options.html, options)])
  return attachments.length === 0 ? readable : multipart("mixed", `mix_${boundary}`, [readable, ...attachments])
}

let counter = 0
const stamp = `${process.pid}.${Date.now().toString(36)}`

const rfc5322Date = (date: Date) => date.toUTCString().replace(/GMT$/, "+0000")

const headerLines = (options: MailOptions, id: number): Array<string> => [
  ...(options.trace ?? []),
  ...(options.authenticated ? [gmailPass(options.from ?? "ada@customer.test")] : []),
  ...(options.from === null ? [] : [`From: ${encodeAddress(options.from ?? "Ada Customer <ada@customer.test>")}`]),
  `To: ${encodeAddress(options.to ?? "support@example.com")}`,
  `Subject: ${encodeWord(options.subject ?? `Question ${id}`)}`,
  `Date: ${rfc5322Date(options.date ?? new Date("2026-11-24T10:00:00Z"))}`,
  ...(options.messageId === null ? [] : [`Message-ID: ${options.messageId ?? `<m${id}.${stamp}@customer.test>`}`]),
  ...(options.inReplyTo ? [`In-Reply-To: ${options.inReplyTo}`] : []),
  ...(options.references?.length ? [`References: ${options.references.join("\r\n ")}`] : []),
  "MIME-Version: 1.0",
  ...Object.entries(options.headers ?? {}).map(([key, value]) => `${key}: ${value}`)
]

const message = (options: MailOptions, attachments: (boundary: string) => ReadonlyArray<Entity>): string => {
  const id = ++counter
  // "=_" occurs in neither quoted-printable nor base64, so no encoded body can contain the boundary.
  const boundary = options.boundary ?? `=_mailroom_${id}`
  const body = bodyEntity(options, boundary, attachments(boundary))
  return `${render({ headers: [...headerLines(options, id), ...body.headers], body: body.body })}\r\n`
}

/** A well-formed mail, CRLF line endings; text and HTML in UTF-8 quoted-printable unless told otherwise. */
export const mail = (options: MailOptions = {}): Buffer =>
  Buffer.from(message(options, () => (options.attachments ?? []).map((a) => attachmentPart(a, base64Lines(a.content)))))

// ---------------------------------------------------------------------------------------------
// Large attachments, written straight into the one output buffer

// Whole 76-character base64 lines and whole 32-bit words, so chunks join without seams.
const CHUNK = 57 * 4 * 4096

const base64Length = (size: number) => {
  const chars = 4 * Math.ceil(size / 3)
  return chars + 2 * Math.max(0, Math.ceil(chars / 76) - 1)
}

const writeRandomBase64 = (out: Buffer, offset: number, size: number, seed: number): number => {
  const next = uint32s(seed)
  const chunk = Buffer.alloc(Math.min(CHUNK, size))
  for (let done = 0; done < size; done += CHUNK) {
    const bytes = fillRandom(chunk.subarray(0, Math.min(CHUNK, size - done)), next)
    const lines = bytes.toString("base64").replace(done + CHUNK >= size ? /.{76}(?=.)/g : /.{76}/g, "$&\r\n")
    offset += out.write(lines, offset, "latin1")
  }
  return offset
}

const PLACEHOLDER = "\u0000attachment\u0000"

/**
 * A mail with one attachment, logs.bin, of `sizeBytes` bytes of pseudoRandomBytes(sizeBytes, sizeBytes).
 * Holds the finished mail and one ~1 MB chunk, never the attachment and its base64 side by side.
 */
export const largeAttachmentMail = (sizeBytes: number, options: Omit<MailOptions, "attachments"> = {}): Buffer => {
  const attachment = { filename: "logs.bin", contentType: "application/octet-stream", content: Buffer.alloc(0) }
  const text = message(
    { subject: `Logs attached (${sizeBytes} bytes)`, ...options },
    () => [attachmentPart(attachment, PLACEHOLDER)]
  )
  const [head, tail] = text.split(PLACEHOLDER) as [string, string]
  const out = Buffer.alloc(Buffer.byteLength(head) + base64Length(sizeBytes) + Buffer.byteLength(tail))
  const offset = writeRandomBase64(out, out.write(head), sizeBytes, sizeBytes)
  out.write(tail, offset)
  return out
}

// ---------------------------------------------------------------------------------------------
// Hostile mail

const crlf = (text: string) => Buffer.from(text.replace(/\r?\n/g, "\r\n"), "utf8")

const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64")

let hostileCalls = 0

const nested = (depth: number, id: string) =>
  crlf(
    `From: nest@customer.test\nSubject: nested ${depth} deep\nMessage-ID: <${id}>\n` +
      Array.from({ length: depth }, (_, i) => `Content-Type: multipart/mixed; boundary="n${i}"\n\n--n${i}\n`).join("") +
      "Content-Type: text/plain\n\ndeep down\n" +
      Array.from({ length: depth }, (_, i) => `--n${depth - 1 - i}--\n`).join("")
  )

const eightBit = (headers: string, body: Buffer) =>
  Buffer.concat([crlf(`${headers}\nContent-Transfer-Encoding: 8bit\n\n`), body, Buffer.from("\r\n")])

const structural = (id: (name: string) => string): Array<HostileMail> => [
  {
    name: "multipart whose boundary never appears",
    expect: "received",
    note: "no throw; mailparser finds no part, so text is undefined (html false, no attachments): an intake must fall back to the raw body to keep it readable",
    raw: crlf(`From: Bob <bob@customer.test>
Subject: broken boundary
Message-ID: <${id("boundary")}>
Content-Type: multipart/mixed; boundary="nowhere"

This text has no part delimiter at all.
`)
  },
  {
    name: "multipart that never closes",
    expect: "received",
    note: "no throw; the unclosed last part is taken up to the end of the data: text \"Hello world\", the PDF attachment kept with what bytes there are",
    raw: crlf(`From: bob@customer.test
Subject: never closes
Message-ID: <${id("unclosed")}>
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

${b64("Hello world")}
--b
Content-Type: application/pdf; name="x.pdf"
Content-Transfer-Encoding: base64

${b64("%PDF-1.4 a document that goes on and on")}`)
  },
  {
    name: "truncated base64 body",
    expect: "received",
    note: "no throw; the base64 cut mid-quad decodes as far as it goes: text \"Hello, my invoice is wrong, pleas\"",
    raw: crlf(`From: trunc@customer.test
Subject: truncated base64
Message-ID: <${id("truncated")}>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

${b64("Hello, my invoice is wrong, please help").slice(0, -7)}`)
  },
  {
    name: "no headers at all",
    expect: "quarantined",
    reason: "no_sender",
    note: "no throw; the first line is read as a (broken) header, so there is no From, no subject and no text",
    raw: crlf("just a body, no headers\nand a second line\n")
  },
  {
    name: "nested multipart 999 deep",
    expect: "received",
    note: "1,000 MIME nodes in all, the most mailsplit allows: parses, text \"deep down\", no stack trouble",
    raw: nested(999, id("nested999"))
  },
  {
    name: "nested multipart 1000 deep",
    expect: "quarantined",
    reason: "unparseable",
    note: "simpleParser rejects with Error \"Max allowed child nodes exceeded\" (mailsplit's 1,000-node cap), a plain error and no stack overflow",
    raw: nested(1000, id("nested1000"))
  },
  {
    name: "header line of 100 KB",
    expect: "received",
    note: "no throw; the subject is the whole 100,000 characters (mailsplit's cap is 1 MB of header per MIME node)",
    raw: crlf(`From: long@customer.test\nSubject: ${"x".repeat(100_000)}\nMessage-ID: <${id("long")}>\n\nbody\n`)
  },
  {
    name: "2,000 headers",
    expect: "received",
    note: "no throw; all 2,003 header lines are in headerLines",
    raw: crlf(
      `From: many@customer.test\nSubject: many headers\nMessage-ID: <${id("many")}>\n` +
        Array.from({ length: 2000 }, (_, i) => `X-Filler-${i}: ${i}`).join("\n") + "\n\nbody\n"
    )
  },
  {
    name: "header block over 1 MB",
    expect: "quarantined",
    reason: "unparseable",
    note: "simpleParser rejects with Error \"Max header size for a MIME node exceeded\" (mailsplit's 1 MB cap)",
    raw: crlf(
      `From: huge@customer.test\nSubject: huge header\nMessage-ID: <${id("huge")}>\n` +
        Array.from({ length: 16_000 }, (_, i) => `X-Filler-${i}: ${"y".repeat(70)}`).join("\n") + "\n\nbody\n"
    )
  },
  {
    name: "empty message",
    expect: "quarantined",
    reason: "unparseable",
    note: "0 bytes: simpleParser does not throw but yields nothing at all (no headers, no text); unparseable rather than no_sender, since there is no message to lack a sender",
    raw: Buffer.alloc(0)
  },
  {
    name: "only headers",
    expect: "received",
    note: "no blank line and no body: parses, text undefined, from and subject intact",
    raw: crlf(`From: headers@customer.test\nSubject: nothing else\nMessage-ID: <${id("headers")}>\n`)
  }
]

const senders = (id: (name: string) => string): Array<HostileMail> => [
  {
    name: "no From header",
    expect: "quarantined",
    reason: "no_sender",
    note: "parses; from is undefined",
    raw: crlf(`To: support@example.com\nSubject: who am I\nMessage-ID: <${id("nofrom")}>\n\nhello\n`)
  },
  {
    name: "From is an empty group",
    expect: "quarantined",
    reason: "no_sender",
    note: "From: undisclosed-recipients:; parses as a group with no members: no address at all",
    raw: crlf(`From: undisclosed-recipients:;\nSubject: empty group\nMessage-ID: <${id("group")}>\n\nhello\n`)
  },
  {
    name: "From is a name without an address",
    expect: "quarantined",
    reason: "no_sender",
    note: "From: Customer Service parses as name \"Customer Service\", address \"\"",
    raw: crlf(`From: Customer Service\nSubject: no address\nMessage-ID: <${id("noaddress")}>\n\nhello\n`)
  },
  {
    name: "no Message-ID",
    expect: "received",
    note: "parses; messageId undefined (an intake can fall back to the raw hash to spot redeliveries)",
    raw: mail({ from: "noid@customer.test", messageId: null, subject: "no id", text: `no Message-ID (${id("noid")})` })
  },
  {
    name: "garbage Date",
    expect: "received",
    note: "parses; mailparser replaces an unreadable Date with the time of parsing, so mail.date cannot tell it from a real one (the Date header line itself is kept)",
    raw: crlf(`From: date@customer.test\nSubject: when\nDate: the day after tomorrow\nMessage-ID: <${id("date")}>\n\nbody\n`)
  }
]

const charsets = (id: (name: string) => string): Array<HostileMail> => [
  {
    name: "unknown charset in the body",
    expect: "received",
    note: "charset=\"x-klingon\": no throw; the bytes are read as UTF-8, so valid UTF-8 survives (\"✓\") and a lone 0xE9 becomes U+FFFD",
    raw: eightBit(
      `From: kl@customer.test\nSubject: klingon body\nMessage-ID: <${id("klingon-body")}>\nContent-Type: text/plain; charset="x-klingon"`,
      Buffer.concat([Buffer.from("nuqneH ✓ "), Buffer.from([0xe9]), Buffer.from(" Qapla'")])
    )
  },
  {
    name: "unknown charset in an encoded-word subject",
    expect: "received",
    note: "=?x-klingon?Q?...?=: decoded as UTF-8 too: subject \"Qapla' ✓ \ufffd\"",
    raw: crlf(`From: kl@customer.test\nSubject: =?x-klingon?Q?Qapla'_=E2=9C=93_=E9?=\nMessage-ID: <${id("klingon-subject")}>\n\nnuqneH\n`)
  },
  {
    name: "latin1 body, 8bit",
    expect: "received",
    note: "decoded right: \"Réclamation: facture incorrecte, déjà payée\"",
    raw: eightBit(
      `From: latin1@customer.test\nSubject: latin1\nMessage-ID: <${id("latin1")}>\nContent-Type: text/plain; charset=iso-8859-1`,
      Buffer.from("Réclamation: facture incorrecte, déjà payée", "latin1")
    )
  },
  {
    name: "windows-1252 body, quoted-printable",
    expect: "received",
    note: "decoded right, curly quotes and euro sign included: \"“Hi” – it costs €5\"",
    raw: mail({ from: "cp1252@customer.test", messageId: `<${id("cp1252")}>`, subject: "cp1252", charset: "windows-1252", text: "“Hi” – it costs €5" })
  },
  {
    name: "windows-1252 bytes labelled iso-8859-1",
    expect: "received",
    note: "the usual Outlook mislabel: mailparser reads iso-8859-1 as windows-1252, as browsers do, so 0x93/0x94/0x80 still come out as \"“Hi” €5\"",
    raw: eightBit(
      `From: mislabel@customer.test\nSubject: mislabelled\nMessage-ID: <${id("mislabel")}>\nContent-Type: text/plain; charset=iso-8859-1`,
      encodeText("“Hi” €5", "windows-1252")
    )
  },
  {
    name: "koi8-r body, base64",
    expect: "received",
    note: "decoded right: \"Проблема со входом\"",
    raw: mail({
      from: "koi8@customer.test",
      messageId: `<${id("koi8")}>`,
      subject: "Проблема со входом",
      charset: "koi8-r",
      transferEncoding: "base64",
      text: "Проблема со входом"
    })
  },
  {
    name: "iso-2022-jp body, 7bit",
    expect: "received",
    note: "decoded right: \"ログインできません\"",
    raw: Buffer.concat([
      crlf(`From: jis@customer.test\nSubject: iso-2022-jp\nMessage-ID: <${id("jis")}>\nContent-Type: text/plain; charset=iso-2022-jp\nContent-Transfer-Encoding: 7bit\n\n`),
      encodeText("ログインできません", "iso-2022-jp"),
      Buffer.from("\r\n")
    ])
  },
  {
    name: "shift_jis body, 8bit",
    expect: "received",
    note: "decoded right: \"ログインできません\"",
    raw: eightBit(
      `From: sjis@customer.test\nSubject: shift_jis\nMessage-ID: <${id("sjis")}>\nContent-Type: text/plain; charset=shift_jis`,
      encodeText("ログインできません", "shift_jis")
    )
  },
  {
    name: "NUL bytes and invalid UTF-8 in the body",
    expect: "received",
    note: "no throw; text keeps both NULs (U+0000) and turns 0xFF, 0xFE and the broken 0xC3 into U+FFFD: an intake must strip NUL before PostgreSQL",
    raw: eightBit(
      `From: nul@customer.test\nSubject: nul bytes\nMessage-ID: <${id("nul")}>\nContent-Type: text/plain; charset=utf-8`,
      Buffer.concat([Buffer.from("before"), Buffer.from([0x00, 0xff, 0xfe, 0xc3, 0x28, 0x00]), Buffer.from("after")])
    )
  }
]

const injections = (id: (name: string) => string): Array<HostileMail> => [
  {
    name: "encoded-word subject that decodes to a Bcc header",
    expect: "received",
    note: "subject decodes to \"Hello\\r\\nBcc: victim@evil.test\", CRLF and all: never write it into a header unchanged",
    raw: crlf(`From: mallory@evil.test\nSubject: =?UTF-8?B?${b64("Hello\r\nBcc: victim@evil.test")}?=\nMessage-ID: <${id("subject-inject")}>\n\nbody\n`)
  },
  {
    name: "display name with encoded CR/LF",
    expect: "received",
    note: "from.name decodes to \"Mallory\\r\\nBcc: victim@evil.test\"; the address is still mallory@evil.test",
    raw: crlf(`From: =?UTF-8?B?${b64("Mallory\r\nBcc: victim@evil.test")}?= <mallory@evil.test>\nSubject: display name\nMessage-ID: <${id("name-inject")}>\n\nbody\n`)
  },
  {
    name: "References and In-Reply-To with CRLF tricks",
    expect: "received",
    note: "a bare CR splits References into [\"<a@evil.test>\", \"<Bcc:>\", \"<victim@evil.test>\", \"<b@evil.test>\"]; In-Reply-To is an encoded-word mailparser decodes to \"<x@evil.test>\\r\\nBcc: victim@evil.test>\"",
    raw: Buffer.from(
      `From: mallory@evil.test\r\nSubject: references\r\nMessage-ID: <${id("refs-inject")}>\r\n` +
        "References: <a@evil.test>\rBcc: victim@evil.test\r\n <b@evil.test>\r\n" +
        `In-Reply-To: =?UTF-8?B?${b64("<x@evil.test>\r\nBcc: victim@evil.test")}?=\r\n\r\nbody\r\n`
    )
  },
  {
    name: "HTML with script and onerror",
    expect: "received",
    note: "html comes back as written, <script> and onerror= included: data to store, never markup to render",
    raw: mail({
      from: "html@customer.test",
      messageId: `<${id("html")}>`,
      subject: "html",
      html: `<p>Hi</p><script>alert(1)</script><img src=x onerror="alert(2)">`
    })
  },
  {
    name: "attachment named ../../etc/passwd with CRLF",
    expect: "received",
    note: "the RFC 2231 filename* decodes to \"../../etc/passwd\\r\\nX-Evil: 1\": path and line break intact, so never use it as a path or header",
    raw: mail({
      from: "path@customer.test",
      messageId: `<${id("path")}>`,
      subject: "see attached",
      attachments: [{ filename: "../../etc/passwd\r\nX-Evil: 1", contentType: "text/plain", content: Buffer.from("root:x:0:0") }]
    })
  }
]

const duplicates = (id: (name: string) => string): Array<HostileMail> => {
  const raw = mail({ from: "dup@customer.test", messageId: `<${id("dup")}>`, subject: "sent twice" })
  return [
    { name: "first copy of a Message-ID", expect: "received", note: "parses like any mail", raw },
    { name: "second copy of that Message-ID", expect: "duplicate", note: "the same bytes again; only the Message-ID tells", raw }
  ]
}

/**
 * Mail that breaks the rules on purpose, each with the outcome a careful intake gives it. Message-IDs
 * are fresh on every call, so two calls into one store do not make each other duplicates.
 */
export const hostileMails = (): Array<HostileMail> => {
  const run = `${++hostileCalls}.${stamp}`
  const id = (name: string) => `${name}.${run}@customer.test`
  return [...structural(id), ...senders(id), ...charsets(id), ...injections(id), ...duplicates(id)]
}
