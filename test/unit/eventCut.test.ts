import { describe, expect, it } from "@effect/vitest"
import type { RawMail } from "../../src/mail/Email.js"
import { cutToBytes, eventLimits, parseRaw } from "../../src/mail/ParseMail.js"
import { mail } from "../support/mails.js"

const raw = (source: Buffer): RawMail => ({ uid: 1, size: source.length, source, headersOnly: false })

const accepted = async (source: Buffer) => {
  const parsed = await parseRaw(raw(source))
  if (parsed._tag !== "Accepted") throw new Error(`expected the mail accepted, got ${parsed.reason}: ${parsed.detail}`)
  return parsed.email
}

const addresses = (n: number, domain: string) => Array.from({ length: n }, (_, i) => `u${i}@${domain}`).join(", ")

describe("cutToBytes", () => {
  it("keeps the longest prefix within the limit that ends on a whole character", () => {
    expect(cutToBytes("abcdef", 4)).toBe("abcd")
    // "é" is 2 bytes, "€" 3, "😀" 4 (a surrogate pair in UTF-16).
    expect(cutToBytes("aé€😀", 3)).toBe("aé")
    expect(cutToBytes("aé€😀", 5)).toBe("aé")
    expect(cutToBytes("aé€😀", 6)).toBe("aé€")
    expect(cutToBytes("aé€😀", 9)).toBe("aé€")
    expect(cutToBytes("aé€😀", 10)).toBe("aé€😀")
    const long = "ж".repeat(100_001)
    const cut = cutToBytes(long, 200_001)
    expect(Buffer.byteLength(cut)).toBe(200_000)
    expect(cut).toBe("ж".repeat(100_000))
  })
})

describe("an event keeps a deliverable share of a mail", () => {
  it("cuts text and HTML over their byte limits, on a character boundary, and names them in truncated", async () => {
    const text = "€".repeat(1_000_000)
    const email = await accepted(mail({ text, html: `<p>${"x".repeat(2_000_000)}</p>` }))
    expect(email.truncated).toEqual(["text", "html"])
    expect(Buffer.byteLength(email.text)).toBeLessThanOrEqual(eventLimits.textBytes)
    expect(Buffer.byteLength(email.text)).toBeGreaterThan(eventLimits.textBytes - 3)
    expect(email.text).toBe("€".repeat(Math.floor(eventLimits.textBytes / 3)))
    expect(Buffer.byteLength(email.html!)).toBe(eventLimits.htmlBytes)
    expect(email.html!.startsWith("<p>xxx")).toBe(true)
  })

  it("keeps the first To and Cc addresses, the first and newest References, the first attachments", async () => {
    const references = Array.from({ length: 150 }, (_, i) => `<r${i}@c.test>`)
    const email = await accepted(mail({
      to: addresses(700, "to.test"),
      headers: { Cc: addresses(40_000, "cc.test") },
      references,
      attachments: Array.from({ length: 250 }, (_, i) => ({
        filename: `a${i}.txt`,
        contentType: "text/plain",
        content: Buffer.from(`part ${i}`)
      }))
    }))
    expect(email.truncated).toEqual(["to", "cc", "references", "attachments"])
    expect(email.to).toHaveLength(eventLimits.addresses)
    expect(email.to[0]!.address).toBe("u0@to.test")
    expect(email.cc).toHaveLength(eventLimits.addresses)
    expect(email.references).toEqual([references[0], ...references.slice(150 - eventLimits.references + 1)])
    expect(email.attachments.map((a) => a.filename)).toEqual(
      Array.from({ length: eventLimits.attachments }, (_, i) => `a${i}.txt`)
    )
  })

  it("leaves a mail within every limit whole, with nothing named", async () => {
    const text = "y".repeat(eventLimits.textBytes - 10)
    const email = await accepted(mail({ text, to: addresses(eventLimits.addresses, "to.test"), references: ["<r@c.test>"] }))
    expect(email.truncated).toEqual([])
    expect(email.text.trimEnd() === text).toBe(true)
    expect(email.to).toHaveLength(eventLimits.addresses)
  })
})
