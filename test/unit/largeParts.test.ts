import { createHash } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import type { RawMail } from "../../src/mail/Email.js"
import { elideLargeParts, readBase64 } from "../../src/mail/LargeParts.js"
import { parseRaw, parseRawWhole } from "../../src/mail/ParseMail.js"
import { generateCorpus } from "../support/corpus.js"
import { hostileMails, largeAttachmentMail, mail, pseudoRandomBytes } from "../support/mails.js"

const raw = (source: Buffer): RawMail => ({ uid: 1, size: source.length, source, headersOnly: false })
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex")
const lines = (text: string, width: number, eol = "\r\n") => text.replace(new RegExp(`.{${width}}(?=.)`, "g"), `$&${eol}`)

const withAttachments = (...contents: Array<Buffer>) =>
  mail({
    text: "logs attached",
    html: "<p>logs attached</p>",
    attachments: contents.map((content, i) => ({ filename: `part${i}.bin`, contentType: "application/octet-stream", content }))
  })

/** The same mail with its first attachment's base64 body replaced. */
const rewriteBody = (source: Buffer, rewrite: (body: string) => string) => {
  const text = source.toString("latin1")
  const named = text.search(/filename="?part0\.bin/)
  if (named < 0) throw new Error("no part0.bin in the mail")
  const start = text.indexOf("\r\n\r\n", named) + 4
  const end = text.indexOf("\r\n--", start)
  return Buffer.from(text.slice(0, start) + rewrite(text.slice(start, end)) + text.slice(end), "latin1")
}

describe("readBase64", () => {
  it.each([76, 64, 75, 1, 4000])("gives the decoded size and sha256 of base64 in %i-character lines", (width) => {
    const bytes = pseudoRandomBytes(2_500_001, width)
    const body = Buffer.from(lines(bytes.toString("base64"), width))
    expect(readBase64(body, 0, body.length)).toEqual({ stop: body.length, digest: { size: bytes.length, checksum: sha256(bytes) } })
  })

  it.each([
    ["a space inside a line", (b: string) => b.replace(/^(.{10})/, "$1 ")],
    ["padding in the middle", (b: string) => `QQ==\r\n${b}`],
    ["a character outside base64", (b: string) => b.replace(/^(.{10})./, "$1*")],
    ["a truncated last group", (b: string) => b.replace(/=*$/, "").slice(0, -1)]
  ])("leaves %s to mailparser", (_, rewrite) => {
    const body = Buffer.from(rewrite(lines(pseudoRandomBytes(100_000, 3).toString("base64"), 76)))
    expect(readBase64(body, 0, body.length)).toBeUndefined()
  })
})

describe("elideLargeParts", () => {
  it("cuts out large base64 attachments and keeps small ones and the text", () => {
    const big = pseudoRandomBytes(300_000, 1)
    const small = pseudoRandomBytes(1_000, 2)
    const source = withAttachments(big, small)
    const elided = elideLargeParts(source)!
    expect(elided.source.length).toBeLessThan(source.length - 390_000)
    expect([...elided.parts.values()]).toEqual([{ size: big.length, checksum: sha256(big) }])
    expect(elided.source.toString()).toContain("logs attached")
    expect(elided.source.toString()).toContain(small.toString("base64").slice(0, 76))
  })

  it("leaves small mail, single-part mail and text bodies alone", () => {
    expect(elideLargeParts(withAttachments(pseudoRandomBytes(1_000, 1)))).toBeUndefined()
    expect(elideLargeParts(mail({ text: "x".repeat(200_000) }))).toBeUndefined()
    expect(elideLargeParts(mail({ text: "y".repeat(200_000), html: "<p>big</p>", transferEncoding: "base64" }))).toBeUndefined()
  })
})

describe("parseRaw with large parts cut out", () => {
  const agrees = async (source: Buffer) => expect(await parseRaw(raw(source))).toEqual(await parseRawWhole(raw(source)))

  it("agrees with mailparser over every byte on a corpus of support mail", async () => {
    let cut = 0
    for (const m of generateCorpus(300, { seed: 5 })) {
      const elided = elideLargeParts(m.raw)
      if (elided) {
        cut += 1
        // The fast path was taken, not fallen back from: mailparser finds every marker as an attachment.
        const parsed = await parseRawWhole(raw(elided.source))
        const markers = parsed._tag === "Accepted" ? parsed.email.attachments.filter((a) => elided.parts.has(a.sha256)) : []
        expect(markers.length).toBe(elided.parts.size)
      }
      await agrees(m.raw)
    }
    expect(cut).toBeGreaterThan(10)
  })

  it("agrees on hostile mail", async () => {
    for (const m of hostileMails()) await agrees(m.raw)
  })

  it.each([
    ["a space inside a base64 line", (b: string) => b.replace(/^(.{10})/, "$1 ")],
    ["a line that starts with --", (b: string) => `${b.slice(0, 4000)}\r\n--not-a-boundary\r\n${b.slice(4000)}`],
    ["LF line endings", (b: string) => b.replace(/\r\n/g, "\n")],
    ["a line that starts with one -", (b: string) => `${b.slice(0, 4000)}\r\n-x\r\n${b.slice(4000)}`],
    ["no body at all", () => ""],
    ["padding in the middle", (b: string) => `${b.slice(0, 4000)}==\r\n${b.slice(4000)}`]
  ])("agrees when an attachment has %s", async (_, rewrite) => {
    await agrees(rewriteBody(withAttachments(pseudoRandomBytes(200_000, 9), pseudoRandomBytes(90_000, 8)), rewrite))
  })

  it("agrees when the closing boundary is missing or a boundary is a prefix of another", async () => {
    const source = withAttachments(pseudoRandomBytes(200_000, 4)).toString("latin1")
    const unclosed = source.slice(0, source.lastIndexOf("--=_mailroom"))
    await agrees(Buffer.from(unclosed, "latin1"))
    const nested = mail({ boundary: "b", text: "t", html: "<p>h</p>", attachments: [{ filename: "a.bin", contentType: "application/pdf", content: pseudoRandomBytes(100_000, 5) }] })
    await agrees(nested)
  })

  it("agrees when a part's headers run into the next delimiter (a part with no blank line, so no body)", async () => {
    const source = withAttachments(pseudoRandomBytes(200_000, 6), pseudoRandomBytes(120_000, 7)).toString("latin1")
    // The first attachment's blank line goes: its headers now end only inside the part after it.
    const at = source.indexOf("\r\n\r\n", source.search(/filename="?part0\.bin/))
    expect(at).toBeGreaterThan(0)
    const headless = source.slice(0, at) + source.slice(at + 2)
    await agrees(Buffer.from(headless, "latin1"))
    expect(elideLargeParts(Buffer.from(headless, "latin1"))?.parts.size ?? 0).toBeLessThanOrEqual(1)
  })

  it("gives a 30 MB attachment its size and sha256", async () => {
    const size = 30 * 1024 * 1024
    const parsed = await parseRaw(raw(largeAttachmentMail(size)))
    expect(parsed._tag === "Accepted" && parsed.email.attachments).toEqual([
      { filename: "logs.bin", contentType: "application/octet-stream", size, sha256: sha256(pseudoRandomBytes(size, size)) }
    ])
  })
})
