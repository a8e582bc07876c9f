import { randomBytes } from "node:crypto"

export interface MailOptions {
  readonly from?: string | null
  readonly to?: string
  readonly subject?: string
  readonly text?: string
  readonly html?: string
  readonly messageId?: string | null
  readonly inReplyTo?: string
  readonly references?: ReadonlyArray<string>
  readonly date?: Date
  readonly headers?: Record<string, string>
  readonly attachments?: ReadonlyArray<{ readonly filename: string; readonly contentType: string; readonly content: Buffer }>
  /** Fixed MIME boundary, for byte-identical output. */
  readonly boundary?: string
}

let counter = 0

/** RFC 2047 encoded-word for a header value that is not plain ASCII. */
export const encodeWord = (value: string) =>
  /^[\x20-\x7e]*$/.test(value) ? value : `=?UTF-8?B?${Buffer.from(value, "utf8").toString("base64")}?=`

const base64Lines = (content: Buffer) => content.toString("base64").replace(/.{76}/g, "$&\r\n")

/** A well-formed mail, CRLF line endings; `null` leaves a header out. */
export const mail = (options: MailOptions = {}): Buffer => {
  counter += 1
  const boundary = options.boundary ?? `b${counter}x${Date.now().toString(36)}`
  const headers = [
    options.from === null ? undefined : `From: ${options.from ?? "Ada Customer <ada@customer.test>"}`,
    `To: ${options.to ?? "support@example.com"}`,
    `Subject: ${encodeWord(options.subject ?? `Question ${counter}`)}`,
    options.messageId === null ? undefined : `Message-ID: ${options.messageId ?? `<m${counter}.${process.pid}.${Date.now()}@customer.test>`}`,
    options.inReplyTo ? `In-Reply-To: ${options.inReplyTo}` : undefined,
    options.references?.length ? `References: ${options.references.join(" ")}` : undefined,
    `Date: ${(options.date ?? new Date("2026-11-24T10:00:00Z")).toUTCString().replace("GMT", "+0000")}`,
    "MIME-Version: 1.0",
    ...Object.entries(options.headers ?? {}).map(([key, value]) => `${key}: ${value}`)
  ].filter((line) => line !== undefined)
  const text = options.text ?? "Hello, I need help with my account."
  const textPart = `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64Lines(Buffer.from(text))}`
  const parts = [
    options.html
      ? `Content-Type: multipart/alternative; boundary="alt${boundary}"\r\n\r\n--alt${boundary}\r\n${textPart}\r\n--alt${boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64Lines(Buffer.from(options.html))}\r\n--alt${boundary}--`
      : textPart,
    ...(options.attachments ?? []).map((a) =>
      `Content-Type: ${a.contentType}; name="${a.filename}"\r\nContent-Disposition: attachment; filename="${a.filename}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64Lines(a.content)}`
    )
  ]
  const body = parts.length === 1
    ? `${parts[0]}`
    : `Content-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n${parts.map((p) => `--${boundary}\r\n${p}`).join("\r\n")}\r\n--${boundary}--`
  return Buffer.from(`${headers.join("\r\n")}\r\n${body}\r\n`)
}

/** A mail with one attachment of `size` pseudo-random bytes. */
export const largeAttachmentMail = (size: number, options: MailOptions = {}): Buffer =>
  mail({
    subject: `Logs attached (${size} bytes)`,
    ...options,
    attachments: [{ filename: "logs.bin", contentType: "application/octet-stream", content: randomBytes(size) }]
  })

const raw = (text: string) => Buffer.from(text.replace(/\r?\n/g, "\r\n"))

export type Expectation = "received" | "quarantined" | "duplicate"

export interface HostileMail {
  readonly name: string
  readonly raw: Buffer
  readonly expect: Expectation
  readonly reason?: "no_sender" | "unparseable" | "too_large"
}

const sharedId = `<dup.${process.pid}.${Date.now()}@customer.test>`

/** Mail that breaks the rules on purpose; each names the outcome a careful intake gives it. */
export const hostileMails = (): Array<HostileMail> => [
  {
    name: "multipart whose boundary never appears",
    expect: "received",
    raw: raw(`From: Bob <bob@customer.test>
Subject: broken boundary
Message-ID: <broken-boundary.${counter++}@customer.test>
Content-Type: multipart/mixed; boundary="nowhere"

This text has no part delimiter at all.
`)
  },
  {
    name: "multipart that never closes, with truncated base64",
    expect: "received",
    raw: raw(`From: bob@customer.test
Subject: truncated
Message-ID: <truncated.${counter++}@customer.test>
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

SGVsbG8gd29ybGQ=
--b
Content-Type: application/pdf; name="x.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJeLjz9MKMyAwIG9iago8PC9MZW5ndGggN`)
  },
  { name: "no headers at all", expect: "quarantined", reason: "no_sender", raw: raw("just a body, no headers\n") },
  {
    name: "no From header",
    expect: "quarantined",
    reason: "no_sender",
    raw: raw(`To: support@example.com
Subject: who am I
Message-ID: <nofrom.${counter++}@customer.test>

hello
`)
  },
  {
    name: "From is a group with nobody in it",
    expect: "quarantined",
    reason: "no_sender",
    raw: raw(`From: undisclosed-recipients:;
Subject: empty group
Message-ID: <group.${counter++}@customer.test>

hello
`)
  },
  {
    name: "unknown charset in body and subject",
    expect: "received",
    raw: raw(`From: kl@customer.test
Subject: =?x-klingon?Q?Qapla'?=
Message-ID: <klingon.${counter++}@customer.test>
Content-Type: text/plain; charset="x-klingon"

nuqneH \xe9\xe8
`)
  },
  ...(
    [
      ["latin1", "iso-8859-1", Buffer.from("Réclamation: facture incorrecte", "latin1")],
      ["windows-1252", "windows-1252", Buffer.from([0x93, 0x48, 0x69, 0x94, 0x20, 0x80])],
      ["koi8-r", "koi8-r", Buffer.from([0xf0, 0xd2, 0xc9, 0xd7, 0xc5, 0xd4])],
      ["shift_jis", "shift_jis", Buffer.from([0x83, 0x8d, 0x83, 0x4f, 0x83, 0x43, 0x83, 0x93])]
    ] as const
  ).map(([label, charset, body]) => ({
    name: `${label} body`,
    expect: "received" as const,
    raw: Buffer.concat([
      raw(`From: ${label}@customer.test
Subject: ${label}
Message-ID: <${label}.${counter++}@customer.test>
Content-Type: text/plain; charset=${charset}
Content-Transfer-Encoding: 8bit

`),
      body,
      Buffer.from("\r\n")
    ])
  })),
  {
    name: "NUL bytes and invalid UTF-8 in the body",
    expect: "received",
    raw: Buffer.concat([
      raw(`From: nul@customer.test
Subject: nul bytes
Message-ID: <nul.${counter++}@customer.test>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

before`),
      Buffer.from([0x00, 0xff, 0xfe, 0xc3, 0x28, 0x00]),
      Buffer.from("after\r\n")
    ])
  },
  {
    name: "encoded subject that decodes to a header injection",
    expect: "received",
    raw: raw(`From: =?UTF-8?B?${Buffer.from("Mallory\r\nBcc: victim@evil.test").toString("base64")}?= <mallory@evil.test>
Subject: =?UTF-8?B?${Buffer.from("Hello\r\nBcc: victim@evil.test").toString("base64")}?=
Message-ID: <inject.${counter++}@evil.test>
References: <a@evil.test>
 <b@evil.test>

body
`)
  },
  {
    name: "HTML with script and onerror",
    expect: "received",
    raw: mail({
      from: "html@customer.test",
      subject: "html",
      html: `<p>Hi</p><script>alert(1)</script><img src=x onerror="alert(2)">`
    })
  },
  {
    name: "deeply nested multipart",
    expect: "received",
    raw: raw(
      `From: nest@customer.test\nSubject: nested\nMessage-ID: <nested.${counter++}@customer.test>\n` +
        Array.from({ length: 200 }, (_, i) => `Content-Type: multipart/mixed; boundary="n${i}"\n\n--n${i}\n`).join("") +
        "Content-Type: text/plain\n\ndeep\n" +
        Array.from({ length: 200 }, (_, i) => `--n${199 - i}--\n`).join("")
    )
  },
  {
    name: "a header line of 100 KB and 2,000 headers",
    expect: "received",
    raw: raw(
      `From: long@customer.test\nSubject: ${"x".repeat(100_000)}\nMessage-ID: <long.${counter++}@customer.test>\n` +
        Array.from({ length: 2000 }, (_, i) => `X-Filler-${i}: ${i}`).join("\n") +
        "\n\nbody\n"
    )
  },
  {
    name: "attachment named ../../etc/passwd with a line break",
    expect: "received",
    raw: mail({
      from: "path@customer.test",
      attachments: [{ filename: "../../etc/passwd\r\nX-Evil: 1", contentType: "text/plain", content: Buffer.from("root:x:0:0") }]
    })
  },
  { name: "no Message-ID", expect: "received", raw: mail({ from: "noid@customer.test", messageId: null }) },
  { name: "first copy of a Message-ID", expect: "received", raw: mail({ from: "dup@customer.test", messageId: sharedId, subject: "dup 1" }) },
  { name: "second delivery of that Message-ID", expect: "duplicate", raw: mail({ from: "dup@customer.test", messageId: sharedId, subject: "dup 1" }) },
  {
    name: "garbage Date",
    expect: "received",
    raw: raw(`From: date@customer.test
Subject: when
Date: the day after tomorrow
Message-ID: <date.${counter++}@customer.test>

body
`)
  },
  {
    name: "only headers",
    expect: "received",
    raw: raw(`From: headers@customer.test
Subject: nothing else
Message-ID: <headers.${counter++}@customer.test>
`)
  }
]
