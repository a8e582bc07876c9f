import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { RawMail } from "../../src/mail/Email.js"
import { parseRaw, parseRawWhole } from "../../src/mail/ParseMail.js"
import { REAL_WORLD_SOURCES, realWorldMail, realWorldOutcomes } from "../support/realWorld.js"

const raw = (source: Buffer): RawMail => ({ uid: 1, size: source.length, source, headersOnly: false })

describe("real-world mail (Python's email tests, enmime's malformed mail, SpamAssassin's samples)", () => {
  const mails = realWorldMail()

  it("is there, from every source", () => {
    for (const source of REAL_WORLD_SOURCES) expect(mails.filter((m) => m.name.startsWith(`${source}/`)).length).toBeGreaterThan(1)
  })

  it.effect("each gets exactly one recorded outcome, none blocks the mail behind it, and what is received reads cleanly", () =>
    Effect.gen(function*() {
      const { after, events, uids } = yield* realWorldOutcomes(mails)
      const byUid = (uid: number) => events.filter((e) => e.uid === uid)
      for (const [i, uid] of uids.entries()) expect(byUid(uid).length, mails[i]!.name).toBe(1)
      expect(byUid(after).map((e) => e.data._tag)).toEqual(["EmailReceived"])

      const received = new Map(events.flatMap((e) => e.data._tag === "EmailReceived" ? [[e.id, e.data] as const] : []))
      expect(received.size).toBeGreaterThan(mails.length / 3)
      for (const event of events) {
        const data = event.data
        if (data._tag === "EmailQuarantined") expect(data.detail, data.reason).not.toBe("")
        if (data._tag === "EmailDuplicate") {
          // The same Message-ID as a mail received before it: enmime's files copy each other's.
          const original = received.get(data.duplicateOf)
          expect(original, data.messageId).toBeDefined()
          if (original?.messageId) expect(original.messageId).toBe(data.messageId)
          else expect(original?.rawSha256).toBe(data.rawSha256)
        }
        if (data._tag !== "EmailReceived") continue
        const single = [data.subject, data.from.name, data.from.address, data.messageId ?? "", ...data.references,
          ...data.attachments.map((a) => a.filename ?? "")]
        expect(single.filter((value) => /[\r\n\u0000]/.test(value)), data.subject).toEqual([])
        expect(data.text).not.toContain("\u0000")
        // HTML without a text part still gives the ticket and the agent words to read.
        if (data.html !== null && /[a-z]{3}/i.test(data.html.replace(/<[^>]*>/g, ""))) expect(data.text.trim(), data.subject).not.toBe("")
      }
    }))

  it("the fast path agrees with mailparser on every one", async () => {
    for (const { name, raw: source } of mails) expect(await parseRaw(raw(source)), name).toEqual(await parseRawWhole(raw(source)))
  })

  it("Python's mail with no blank line after its headers keeps its words as its text", async () => {
    const broken = mails.find((m) => m.name === "python/msg_35.txt")!
    const parsed = await parseRaw(raw(broken.raw))
    expect(parsed._tag === "Accepted" && parsed.email.text.trim()).toBe("counter to RFC 2822, there's no separating newline here")
  })

  it("a mail that is nothing but a forwarded mail (GroupWise's forward) reads as the forwarded words", async () => {
    const forward = mails.find((m) => m.name === "python/msg_46.txt")!
    const parsed = await parseRaw(raw(forward.raw))
    expect(parsed._tag).toBe("Accepted")
    if (parsed._tag !== "Accepted") return
    expect(parsed.email.text).toContain("---------- Forwarded message ---------\nFrom: \"Dr. Sender\" <sender@example.net>")
    expect(parsed.email.text).toContain("Subject: GroupwiseForwardingTest")
    expect(parsed.email.text).toContain("Testing email forwarding with Groupwise 1.2.2010")
    expect(parsed.email.attachments.map((a) => a.contentType)).toEqual(["message/rfc822"])
  })

  it("HTML alone inside a multipart becomes the mail's text, as mailparser converts a mail that is only HTML", async () => {
    const html = mails.find((m) => m.name === "enmime/mail-html-only-inline.raw")!
    const parsed = await parseRaw(raw(html.raw))
    expect(parsed._tag).toBe("Accepted")
    if (parsed._tag !== "Accepted") return
    expect(parsed.email.html).toContain("Test of HTML section")
    expect(parsed.email.text).toContain("Test of HTML section")
    expect(parsed.email.text).not.toContain("<")
  })
})
