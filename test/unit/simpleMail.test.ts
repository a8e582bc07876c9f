import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import type { RawMail } from "../../src/mail/Email.js"
import { parseRaw, parseRawWhole } from "../../src/mail/ParseMail.js"
import { readSimple } from "../../src/mail/SimpleMail.js"
import { generateSmallCorpus } from "../../bench/smallCorpus.js"
import { generateCorpus } from "../support/corpus.js"
import { encodeWord, hostileMails, mail } from "../support/mails.js"

const raw = (source: Buffer): RawMail => ({ uid: 1, size: source.length, source, headersOnly: false })

/** parseRaw (which takes the fast path where it can) against mailparser reading every byte. */
const agree = async (source: Buffer) => expect(await parseRaw(raw(source))).toEqual(await parseRawWhole(raw(source)))

const crlf = (lines: ReadonlyArray<string>) => Buffer.from(lines.join("\r\n"), "utf8")

/** Every .eml under samples/: real mail, as a support mailbox receives it. */
const samples = (dir: string): Array<{ name: string; source: Buffer }> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? samples(join(dir, entry.name))
    : entry.name.endsWith(".eml") ? [{ name: entry.name, source: readFileSync(join(dir, entry.name)) }]
    : []
  )

/** Single text parts written by hand, each with something a hand-written parser gets wrong. */
const edgeCases: ReadonlyArray<readonly [string, Buffer]> = [
  ["folded headers, encoded words, several To and References lines", crlf([
    "From: =?utf-8?B?SsO8cmdlbiBNw7xsbGVy?= <jurgen@example.com>",
    "To: support@example.com,",
    "\t\"Second, Person\" <second@example.com>",
    "To: third@example.com",
    "Cc: undisclosed-recipients:;",
    `Subject: ${encodeWord("Überweisung fehlgeschlagen – bitte helfen")}`,
    "Message-ID: no-brackets@example.com",
    "In-Reply-To: <a@example.com> <b@example.com>",
    "References: <a@example.com>",
    "  <b@example.com>",
    "References: c@example.com",
    "Date: Tue, 1 Dec 2026 10:00:00 +0100",
    "Content-Type: text/plain; charset=\"UTF-8\"",
    "",
    "Hallo,\r\nes geht nicht.\r\n"
  ])],
  ["LF line ends, no Content-Type, no trailing newline", Buffer.from("From: a@example.com\nSubject: hi\n\nline one\nline two")],
  ["8-bit UTF-8 in headers", crlf(["From: Zoë Ångström <zoe@example.com>", "Subject: café ☕", "Content-Type: text/plain; charset=utf-8", "", "naïve"])],
  ["quoted-printable with soft breaks and an encoded CRLF", crlf([
    "From: a@example.com",
    "Subject: qp",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "Gr=C3=BC=C3=9Fe, a long line that goes on=",
    " and on=0D=0Aand a broken =ZZ escape",
    ""
  ])],
  ["base64 in 76-character lines", crlf([
    "From: a@example.com",
    "Content-Type: text/plain; charset=us-ascii",
    "Content-Transfer-Encoding: base64",
    "",
    ...Buffer.from("The export to CSV fails with error 500 every time I try it. ".repeat(8)).toString("base64").match(/.{1,76}/g)!,
    ""
  ])],
  ["an empty body", crlf(["From: a@example.com", "Subject: (empty)", "", ""])],
  ["a From without an address", crlf(["From: Nobody", "Subject: who", "", "text"])],
  ["no From at all", crlf(["Subject: anonymous", "", "text"])],
  ["NUL bytes and a lone surrogate's bytes in the body", Buffer.concat([crlf(["From: a@example.com", "", "a"]), Buffer.from([0, 0xed, 0xa0, 0x80, 0x62])])],
  ["an encoded word hiding an address in the name", crlf([`From: ${encodeWord("ceo@bank.example")} <mallory@evil.example>`, "", "pay now"])],
  ["a punycode domain", crlf(["From: a@xn--mnchen-3ya.example", "", "servus"])],
  ["multipart/alternative as mail clients write it", mail({ text: "plain words", html: "<p>html <b>words</b></p>" })],
  ["multipart/alternative in quoted-printable", mail({ text: "Grüße ".repeat(40), html: "<p>Grüße</p>", transferEncoding: "quoted-printable" })],
  ["multipart/alternative in base64", mail({ text: "base64 text", html: "<p>base64 html</p>", transferEncoding: "base64" })],
  ["text and HTML with an attachment", mail({ text: "see attached", html: "<p>see attached</p>", attachments: [{ filename: "a.txt", contentType: "text/plain", content: Buffer.from("x") }] })],
  ["text with a screenshot and a PDF sent as application/octet-stream (typed by its name, as mailparser does)", mail({
    text: "Screenshot and invoice attached.",
    attachments: [
      { filename: "screen.png", contentType: "image/png", content: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3, 255]) },
      { filename: "invoice.pdf", contentType: "application/octet-stream", content: Buffer.from("%PDF-1.4 ".repeat(200)) }
    ]
  })],
  ["a multipart/mixed of one text part", crlf([
    "From: a@example.com", "Content-Type: multipart/mixed; boundary=m", "", "--m", "Content-Type: text/plain; charset=utf-8", "", "only text", "--m--", ""
  ])],
  ["attachments without a disposition, in quoted-printable, with an unknown disposition, with RFC 2231 and encoded-word names", crlf([
    "From: a@example.com",
    "Content-Type: multipart/mixed; boundary=\"mix\"",
    "",
    "preamble",
    "--mix",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "Gr=C3=BC=C3=9Fe, logs attached",
    "--mix",
    "Content-Type: image/jpeg; name=\"photo.jpg\"",
    "Content-Transfer-Encoding: base64",
    "Content-ID: <photo@x>",
    "",
    Buffer.from("not really a jpeg").toString("base64"),
    "--mix",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Disposition: attachment; filename*=utf-8''%C3%BCbersicht%20log.txt",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "line one=0D=0Aline two=",
    "",
    "--mix",
    "Content-Type: text/csv",
    "Content-Disposition: whatever",
    "",
    "a,b\r\n1,2",
    "--mix",
    "Content-Type: application/octet-stream",
    `Content-Disposition: attachment; filename="${encodeWord("Überweisung.pdf")}"`,
    "Content-Transfer-Encoding: base64",
    "",
    Buffer.from("%PDF-1.7").toString("base64"),
    "--mix--",
    "epilogue",
    ""
  ])],
  ["multipart/alternative, HTML first, LF line ends, a preamble and an epilogue", Buffer.from([
    "From: a@example.com",
    "Content-Type: multipart/alternative; boundary=\"b1\"",
    "",
    "This is a multi-part message in MIME format.",
    "--b1",
    "Content-Type: text/html; charset=utf-8",
    "",
    "<p>first</p>",
    "",
    "--b1",
    "Content-Type: text/plain",
    "",
    "second",
    "--b1--",
    "epilogue --b1 text",
    ""
  ].join("\n"))]
]

/** Shapes left to mailparser: the fast path must say no, and the result must still agree. */
const declined: ReadonlyArray<readonly [string, Buffer]> = [
  ["multipart/alternative with a text part of one empty line", crlf([
    "From: a@example.com",
    "Content-Type: multipart/alternative; boundary=b2",
    "",
    "--b2",
    "Content-Type: text/plain",
    "",
    "",
    "--b2",
    "Content-Type: text/html",
    "",
    "<p>only html</p>",
    "--b2--"
  ])],
  ["multipart/mixed of text and HTML (mailparser joins them otherwise)", crlf([
    "From: a@example.com", "Content-Type: multipart/mixed; boundary=m", "", "--m", "Content-Type: text/plain", "", "t", "--m", "Content-Type: text/html", "", "<p>h</p>", "--m--"
  ])],
  ["an alternative of three parts", crlf([
    "From: a@example.com", "Content-Type: multipart/alternative; boundary=m", "", "--m", "", "t", "--m", "Content-Type: text/plain", "", "t2", "--m", "Content-Type: text/html", "", "h", "--m--"
  ])],
  ["a delimiter with trailing blanks", crlf([
    "From: a@example.com", "Content-Type: multipart/alternative; boundary=m", "", "--m ", "Content-Type: text/plain", "", "t", "--m", "Content-Type: text/html", "", "h", "--m--"
  ])],
  ["an alternative never closed", crlf([
    "From: a@example.com", "Content-Type: multipart/alternative; boundary=m", "", "--m", "Content-Type: text/plain", "", "t", "--m", "Content-Type: text/html", "", "h"
  ])],
  ["a delimiter in the epilogue", crlf([
    "From: a@example.com", "Content-Type: multipart/alternative; boundary=m", "", "--m", "Content-Type: text/plain", "", "t", "--m", "Content-Type: text/html", "", "h", "--m--", "--m", "x"
  ])],
  ["a nested multipart", crlf([
    "From: a@example.com", "Content-Type: multipart/alternative; boundary=m", "", "--m", "Content-Type: text/plain", "", "t",
    "--m", "Content-Type: multipart/related; boundary=r", "", "--r", "Content-Type: text/html", "", "h", "--r--", "--m--"
  ])],
  ["multipart/mixed with a second inline text part (mailparser joins it into the text)", crlf([
    "From: a@example.com", "Content-Type: multipart/mixed; boundary=m", "", "--m", "Content-Type: text/plain", "", "t", "--m", "Content-Type: text/plain", "", "footer", "--m--"
  ])],
  ["multipart/mixed with a forwarded mail", crlf([
    "From: a@example.com", "Content-Type: multipart/mixed; boundary=m", "", "--m", "Content-Type: text/plain", "", "fwd", "--m",
    "Content-Type: message/rfc822", "", "From: b@example.com", "Subject: inner", "", "inner body", "--m--"
  ])],
  ["multipart/mixed with the attachment first", crlf([
    "From: a@example.com", "Content-Type: multipart/mixed; boundary=m", "", "--m", "Content-Type: image/png", "Content-Transfer-Encoding: base64", "", "iVBORw==",
    "--m", "Content-Type: text/plain", "", "t", "--m--"
  ])],
  ["multipart/mixed of HTML and an attachment", crlf([
    "From: a@example.com", "Content-Type: multipart/mixed; boundary=m", "", "--m", "Content-Type: text/html", "", "<p>h</p>",
    "--m", "Content-Type: application/pdf", "Content-Disposition: attachment; filename=a.pdf", "", "%PDF", "--m--"
  ])],
  ["multipart/mixed with a nested multipart/mixed", crlf([
    "From: a@example.com", "Content-Type: multipart/mixed; boundary=m", "", "--m", "Content-Type: text/plain", "", "t",
    "--m", "Content-Type: multipart/mixed; boundary=n", "", "--n", "Content-Type: application/pdf", "", "%PDF", "--n--", "--m--"
  ])],
  ["a multipart/mixed of more parts than support mail carries (read in one call, it would hold up every mailbox)", crlf([
    "From: a@example.com", "Content-Type: multipart/mixed; boundary=m", "", "--m", "Content-Type: text/plain", "", "t",
    ...Array.from({ length: 40 }, (_, i) => ["--m", "Content-Type: application/pdf", `Content-Disposition: attachment; filename=a${i}.pdf`, "", "%PDF"]).flat(),
    "--m--"
  ])],
  ["an attachment in base64 padded mid-body", crlf([
    "From: a@example.com", "Content-Type: multipart/mixed; boundary=m", "", "--m", "Content-Type: text/plain", "", "t",
    "--m", "Content-Type: application/pdf", "Content-Transfer-Encoding: base64", "", "QQ==", "QkM=", "--m--"
  ])],
  ["a latin-1 charset", mail({ text: "Grüße", charset: "iso-8859-1" })],
  ["format=flowed", crlf(["From: a@example.com", "Content-Type: text/plain; format=flowed", "", "soft \r\nwrapped"])],
  ["text/html alone", crlf(["From: a@example.com", "Content-Type: text/html", "", "<p>hi</p>"])],
  ["a text/plain attachment", crlf(["From: a@example.com", "Content-Disposition: attachment; filename=a.txt", "", "data"])],
  ["base64 padded mid-body", crlf(["From: a@example.com", "Content-Transfer-Encoding: base64", "", "QQ==", "QkM=", ""])],
  ["an mbox From line", Buffer.from("From a@example.com Tue Dec  1 10:00:00 2026\r\nFrom: a@example.com\r\n\r\nbody")],
  ["no header block", Buffer.from("\r\njust a body")],
  ["headers without a body", Buffer.from("From: a@example.com\r\nSubject: never ends")],
  ["a text part over 1 MB (mailparser yields to other mailboxes while it reads)", mail({ text: "a long log line\n".repeat(80_000) })]
]

describe("readSimple", () => {
  it.each(edgeCases)("takes %s, and agrees with mailparser", async (_, source) => {
    expect(readSimple(source)).toBeDefined()
    await agree(source)
  })

  it.each(declined)("leaves %s to mailparser", async (_, source) => {
    expect(readSimple(source)).toBeUndefined()
    await agree(source)
  })

  it("agrees with mailparser on every mail of the small real-world corpus, taking every one, attachments included", async () => {
    let withAttachment = 0
    for (const { raw: source, attachment } of generateSmallCorpus(1500)) {
      const read = readSimple(source)
      expect(read).toBeDefined()
      expect(read!.attachments.length > 0).toBe(attachment)
      if (attachment) withAttachment++
      await agree(source)
    }
    expect(withAttachment).toBeGreaterThan(10)
  })

  it("agrees with mailparser on the generated backlog corpus", async () => {
    for (const { raw: source } of generateCorpus(400)) await agree(source)
  })

  it("agrees with mailparser on hostile mail and on the real mail under samples/", async () => {
    for (const { raw: source } of hostileMails()) await agree(source)
    const real = samples(join(import.meta.dirname, "../../samples"))
    expect(real.length).toBeGreaterThan(0)
    for (const { source } of real) await agree(source)
  })
})
