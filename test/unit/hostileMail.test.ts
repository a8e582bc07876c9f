import { EventLog } from "../../src/log/EventLog.js"
import { createHash } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { MemoryMailbox } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { generateCorpus } from "../support/corpus.js"
import { hostileMails } from "../support/mails.js"
import { pipelineLayer } from "./layers.js"

describe("hostile mail", () => {
  it.effect("each gets its outcome, none blocks the mail behind it, and no header value carries a line break", () => {
    const mailbox = new MemoryMailbox()
    const hostile = hostileMails()
    const uids = hostile.map((m) => mailbox.append(m.raw))
    const last = mailbox.append("From: after@customer.test\r\nSubject: after\r\n\r\nstill here\r\n")
    return Effect.gen(function*() {
      yield* Effect.flatMap(Poller, (p) => p.once)
      const events = yield* Effect.flatMap(EventLog, (log) => log.read(0n, 1000))
      const outcome = (uid: number) => {
        const event = events.find((e) => e.uid === uid)!
        return event.data._tag === "EmailQuarantined" ? `quarantined:${event.data.reason}` : event.data._tag
      }
      const expected = hostile.map((m) =>
        m.expect === "quarantined" ? `quarantined:${m.reason}` : m.expect === "duplicate" ? "EmailDuplicate" : "EmailReceived"
      )
      expect(uids.map(outcome)).toEqual(expected)
      expect(outcome(last)).toBe("EmailReceived")
      for (const event of events) {
        if (event.data._tag !== "EmailReceived") continue
        const single = [event.data.subject, event.data.from.name, event.data.messageId ?? "", ...event.data.references,
          ...event.data.attachments.map((a) => a.filename ?? "")]
        expect(single.filter((value) => /[\r\n]/.test(value))).toEqual([])
        expect(event.data.text).not.toContain("\u0000")
      }
      const undated = events.find((e) => e.uid === uids[hostile.findIndex((m) => m.name === "garbage Date")])!
      expect(undated.data._tag === "EmailReceived" && undated.data.date).toBeNull()
      const dated = events.find((e) => e.data._tag === "EmailReceived" && e.data.date !== null)
      expect(dated).toBeDefined()
      const broken = events.find((e) => e.uid === uids[0])!
      expect(broken.data._tag === "EmailReceived" && broken.data.text).toContain("no part delimiter")
    }).pipe(Effect.provide(pipelineLayer(mailbox)))
  })
})

describe("corpus", () => {
  const digest = (n: number) => {
    const hash = createHash("sha256")
    for (const m of generateCorpus(n, { maxAttachmentBytes: 50_000 })) hash.update(m.raw)
    return hash.digest("hex")
  }

  it("is the same bytes for the same n and seed, and replies only to earlier mail", () => {
    expect(digest(150)).toBe(digest(150))
    const mails = [...generateCorpus(400, { maxAttachmentBytes: 10_000 })]
    const kinds = new Set(mails.map((m) => m.kind))
    expect([...kinds].sort()).toEqual(["attachment", "auto-reply", "html", "list", "plain", "reply"])
    const seen = new Set<string>()
    for (const m of mails) {
      if (m.threadOf) expect(seen.has(m.threadOf)).toBe(true)
      seen.add(m.messageId)
    }
  })
})
