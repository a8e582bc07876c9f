import { createHash } from "node:crypto"
import { simpleParser } from "mailparser"
import { describe, expect, it } from "vitest"
import { generateSmallCorpus, SMALL_MAX_BYTES, SMALL_MIN_BYTES } from "../../bench/smallCorpus.js"

const corpus = [...generateSmallCorpus(600)]

describe("the bench's small real-world mail", () => {
  it("is 2–10 KB a mail, the same bytes for the same seed", () => {
    for (const m of corpus) {
      expect(m.raw.length).toBeGreaterThanOrEqual(SMALL_MIN_BYTES)
      expect(m.raw.length).toBeLessThanOrEqual(SMALL_MAX_BYTES)
    }
    const digest = (mails: Iterable<{ raw: Buffer }>) => {
      const hash = createHash("sha256")
      for (const m of mails) hash.update(m.raw)
      return hash.digest("hex")
    }
    expect(digest(generateSmallCorpus(600))).toBe(digest(corpus))
    expect(digest(generateSmallCorpus(600, { seed: 1 }))).not.toBe(digest(corpus))
  })

  it("carries the headers a real mailbox holds, threads, HTML, attachments and non-ASCII", () => {
    const text = corpus.map((m) => m.raw.toString("latin1"))
    for (const header of ["Received: from ", "DKIM-Signature: v=1", "Authentication-Results: mx.google.com", "Message-ID: <", "Date: "]) {
      expect(text.every((t) => t.includes(header))).toBe(true)
    }
    const share = (predicate: (m: (typeof corpus)[number]) => boolean) => corpus.filter(predicate).length / corpus.length
    expect(share((m) => m.threadOf !== undefined)).toBeGreaterThan(0.2)
    expect(share((m) => m.html)).toBeGreaterThan(0.3)
    expect(share((m) => m.attachment)).toBeGreaterThan(0.005)
    expect(share((m) => m.attachment)).toBeLessThan(0.1)
    expect(share((m) => m.authenticated)).toBeGreaterThan(0.7)
    expect(text.some((t) => t.includes("=?UTF-8?B?"))).toBe(true)
  })

  it("threads on earlier mail of the corpus, quoting it, and parses", async () => {
    const ids = new Set<string>()
    for (const m of corpus) {
      if (m.threadOf) expect(ids.has(m.threadOf)).toBe(true)
      ids.add(m.messageId)
    }
    const reply = corpus.find((m) => m.threadOf && !m.html && !m.attachment)!
    const parsed = await simpleParser(reply.raw)
    expect(parsed.inReplyTo).toBe(reply.threadOf)
    expect(parsed.messageId).toBe(reply.messageId)
    expect(parsed.text).toMatch(/wrote:\n> /)
    expect(parsed.text).toMatch(/\n-- \n/)
    const withFile = corpus.find((m) => m.attachment)!
    expect((await simpleParser(withFile.raw)).attachments).toHaveLength(1)
  })

  it("makes answerable mail: a sender of its own, each with mx.google.com's pass, no thread", () => {
    const answerable = [...generateSmallCorpus(200, { answerable: true, to: "replies@example.com" })]
    expect(new Set(answerable.map((m) => m.from)).size).toBe(200)
    for (const m of answerable) {
      const head = m.raw.toString("utf8").split("\r\n\r\n")[0]!.replace(/\r\n\s+/g, " ")
      const domain = m.from.slice(m.from.indexOf("@") + 1)
      const results = /^Authentication-Results: (.*)$/m.exec(head)![1]!
      expect(results).toMatch(new RegExp(`^mx\\.google\\.com; dkim=pass header\\.i=@${domain.replace(/\./g, "\\.")}`))
      expect(results).toContain(`smtp.mailfrom=${m.from}`)
      expect(results).toContain(`dmarc=pass`)
      expect(results).toContain(`header.from=${domain}`)
      expect(head).toMatch(/^To: replies@example\.com$/m)
      expect(m.threadOf).toBeUndefined()
      expect(head).not.toMatch(/^(Auto-Submitted|Precedence|List-Id):/im)
    }
  })
})
