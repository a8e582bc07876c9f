import { createHash } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import type { RawMail } from "../../src/mail/Email.js"
import { parseSimple, parseWithHash } from "../../src/mail/ParseMail.js"
import { largeAttachmentMail, mail, pseudoRandomBytes } from "../support/mails.js"

const raw = (source: Buffer, uid = 1): RawMail => ({ uid, size: source.length, source, headersOnly: false })
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex")

describe("parseWithHash", () => {
  it("gives each attachment its decoded size and sha256, and the raw bytes their sha256", async () => {
    const pdf = pseudoRandomBytes(123_457, 7)
    const notes = Buffer.from("plain notes, ünïcode")
    const source = mail({
      text: "see attached",
      html: `<p>see <img src="cid:logo@x"></p>`,
      attachments: [
        { filename: "report.pdf", contentType: "application/pdf", content: pdf },
        { filename: "notes.txt", contentType: "text/plain", content: notes }
      ]
    })
    const { parsed, rawSha256 } = await parseWithHash(raw(source))
    expect(rawSha256).toBe(sha256(source))
    expect(parsed._tag).toBe("Accepted")
    if (parsed._tag !== "Accepted") return
    expect(parsed.email.text).toBe("see attached")
    // cid: links stay links; the attachment is not inlined into the HTML as a data: URL.
    expect(parsed.email.html).toContain("cid:logo@x")
    expect(parsed.email.attachments).toEqual([
      { filename: "report.pdf", contentType: "application/pdf", size: pdf.length, sha256: sha256(pdf) },
      { filename: "notes.txt", contentType: "text/plain", size: notes.length, sha256: sha256(notes) }
    ])
  })

  it("hashes a 12 MB attachment as it streams past", async () => {
    const size = 12 * 1024 * 1024
    const { parsed } = await parseWithHash(raw(largeAttachmentMail(size)))
    expect(parsed._tag === "Accepted" && parsed.email.attachments).toEqual([
      { filename: "logs.bin", contentType: "application/octet-stream", size, sha256: sha256(pseudoRandomBytes(size, size)) }
    ])
  })
})

describe("HTML without text", () => {
  const alternative = (html: string) =>
    Buffer.from([
      "From: Ada <ada@customer.test>",
      "Subject: cannot log in",
      "Message-ID: <html-only@customer.test>",
      "MIME-Version: 1.0",
      "Content-Type: multipart/alternative; boundary=\"b\"",
      "",
      "--b",
      "Content-Type: text/plain; charset=utf-8",
      "",
      " ",
      "--b",
      "Content-Type: text/html; charset=utf-8",
      "",
      html,
      "--b--",
      ""
    ].join("\r\n"))

  it("an alternative whose text part is blank is left to mailparser by the fast path, and its HTML becomes the text", async () => {
    const source = alternative("<p>My password reset link <b>expired</b> twice.</p>")
    expect(parseSimple(raw(source))).toBeUndefined()
    const { parsed } = await parseWithHash(raw(source))
    expect(parsed._tag === "Accepted" && parsed.email.text.trim()).toBe("My password reset link expired twice.")
  })

  it("HTML nested past mailparser's limit keeps an empty text rather than stalling", async () => {
    const { parsed } = await parseWithHash(raw(alternative(`${"<div>".repeat(5_000)}deep${"</div>".repeat(5_000)}`)))
    expect(parsed._tag === "Accepted" && parsed.email.text.trim()).toBe("")
    expect(parsed._tag === "Accepted" && parsed.email.html).toContain("deep")
  })
})

describe("a body without the blank line that ends the header block", () => {
  it("starts at the first line that is no header field, and folded headers stay headers", async () => {
    const source = Buffer.from([
      "From: Ada <ada@customer.test>",
      "Subject: my order",
      "\tis late",
      "Message-ID: <no-blank@customer.test>",
      "Order 4711 has not arrived: where is it?",
      "Thanks, Ada",
      ""
    ].join("\r\n"))
    const { parsed } = await parseWithHash(raw(source))
    expect(parsed._tag).toBe("Accepted")
    if (parsed._tag !== "Accepted") return
    expect(parsed.email.subject).toBe("my order is late")
    expect(parsed.email.text.trim()).toBe("Order 4711 has not arrived: where is it?\nThanks, Ada")
  })
})
