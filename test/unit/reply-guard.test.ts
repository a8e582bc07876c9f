import { describe, expect, it } from "vitest"
import type { GuardInput } from "../../src/replies/Reply.js"
import {
  isMessageId,
  loopGuard,
  newMessageId,
  rateGuard,
  recipient,
  replySubject,
  safeHeader,
  subjectTokens,
  threading,
  ticketToken
} from "../../src/replies/Reply.js"

const own = "support@example.com"
const ticketId = "0b6f3a2c-5d1e-4f00-a123-456789abcdef"

const email = (overrides: Partial<GuardInput> = {}): GuardInput => ({
  from: { address: "ada@customer.test", name: "Ada" },
  replyTo: [],
  headers: {},
  contentType: "text/plain",
  ...overrides
})

const withHeaders = (headers: Record<string, string>) => email({ headers })

describe("loopGuard", () => {
  it("lets an ordinary customer mail through", () => {
    expect(loopGuard(email(), own)).toBeUndefined()
    expect(loopGuard(withHeaders({ "auto-submitted": "no" }), own)).toBeUndefined()
    expect(loopGuard(withHeaders({ "auto-submitted": " No ; comment" }), own)).toBeUndefined()
    expect(loopGuard(withHeaders({ precedence: "first-class", "return-path": "<ada@customer.test>" }), own)).toBeUndefined()
    expect(loopGuard(email({ from: { address: "noreplyservice.fan@customer.test", name: "" } }), own)).toBeUndefined()
  })

  it.each([
    ["auto-submitted", "auto-replied", "auto_submitted"],
    ["auto-submitted", "auto-generated", "auto_submitted"],
    ["auto-submitted", "auto-notified; owner-email=x@y.test", "auto_submitted"],
    ["precedence", "bulk", "precedence"],
    ["precedence", "Junk", "precedence"],
    ["precedence", "list", "precedence"],
    ["list-id", "<announce.lists.example.org>", "mailing_list"],
    ["list-unsubscribe", "<mailto:leave@lists.example.org>", "mailing_list"],
    ["x-autoreply", "yes", "auto_reply_header"],
    ["x-autorespond", "Out of office", "auto_reply_header"],
    ["x-auto-response-suppress", "All", "auto_reply_header"],
    ["return-path", "<>", "bounce"]
  ])("skips %s: %s as %s", (header, value, reason) => {
    const skip = loopGuard(withHeaders({ [header]: value }), own)
    expect(skip?.reason).toBe(reason)
    expect(skip?.detail.length).toBeGreaterThan(0)
  })

  it("skips delivery reports and mail from mailer-daemon or postmaster as bounces", () => {
    expect(loopGuard(email({ contentType: "multipart/report" }), own)?.reason).toBe("bounce")
    expect(loopGuard(email({ from: { address: "mailer-daemon@googlemail.com", name: "Mail Delivery Subsystem" } }), own)?.reason).toBe("bounce")
    expect(loopGuard(email({ from: { address: "postmaster@customer.test", name: "" } }), own)?.reason).toBe("bounce")
  })

  it.each(["noreply@shop.test", "no-reply@shop.test", "no_reply@shop.test", "do-not-reply@shop.test", "donotreply@shop.test", "noreply+abc@shop.test", "bounces+123@shop.test"])(
    "skips the no-reply sender %s",
    (address) => {
      expect(loopGuard(email({ from: { address, name: "" } }), own)?.reason).toBe("no_reply_sender")
    }
  )

  it("skips a no-reply Reply-To, since the answer would go there", () => {
    expect(loopGuard(email({ replyTo: [{ address: "no-reply@shop.test", name: "" }] }), own)?.reason).toBe("no_reply_sender")
  })

  it("skips mail from, or answering to, mailroom's own address", () => {
    expect(loopGuard(email({ from: { address: own, name: "Support" } }), own)?.reason).toBe("own_address")
    expect(loopGuard(email({ replyTo: [{ address: own, name: "" }] }), "Support@Example.com")?.reason).toBe("own_address")
  })

  it("names a bounce before the Auto-Submitted header it also carries", () => {
    const dsn = email({
      from: { address: "mailer-daemon@mx.test", name: "" },
      contentType: "multipart/report",
      headers: { "auto-submitted": "auto-replied" }
    })
    expect(loopGuard(dsn, own)?.reason).toBe("bounce")
  })
})

describe("rateGuard", () => {
  it("allows replies up to the limit and skips the one beyond", () => {
    expect(rateGuard(4, 5)).toBeUndefined()
    expect(rateGuard(5, 5)).toMatchObject({ reason: "rate_limited" })
    expect(rateGuard(5, 5)!.detail).toContain("REPLY_RATE_LIMIT=5")
  })
})

describe("replySubject", () => {
  const token = ticketToken(ticketId)

  it("prefixes Re: once and adds the ticket token", () => {
    expect(token).toBe("0b6f3a2c5d1e")
    expect(replySubject("Cannot log in", ticketId)).toBe(`Re: Cannot log in [#${token}]`)
  })

  it("does not stack Re: or the token", () => {
    expect(replySubject("Re: RE: Aw: Cannot log in", ticketId)).toBe(`Re: Cannot log in [#${token}]`)
    expect(replySubject(`Re: Cannot log in [#${token}]`, ticketId)).toBe(`Re: Cannot log in [#${token}]`)
    expect(replySubject(`RE[2]: Cannot log in [#${token.toUpperCase()}]`, ticketId)).toBe(`Re: Cannot log in [#${token.toUpperCase()}]`)
  })

  it("keeps Fwd: and answers an empty subject with the token alone", () => {
    expect(replySubject("Fwd: invoice", ticketId)).toBe(`Re: Fwd: invoice [#${token}]`)
    expect(replySubject("", ticketId)).toBe(`Re: [#${token}]`)
  })

  it("carries no line break from the customer's subject", () => {
    const subject = replySubject("Hello\r\nBcc: victim@example.org\nX-Evil: 1", ticketId)
    expect(subject).not.toMatch(/[\r\n]/)
    expect(subject).toBe(`Re: Hello Bcc: victim@example.org X-Evil: 1 [#${token}]`)
  })
})

describe("subjectTokens", () => {
  it("finds every ticket token, lower-cased, once", () => {
    expect(subjectTokens("Re: help [#0B6F3A2C5D1E] and [#0b6f3a2c5d1e] [#abc]")).toEqual(["0b6f3a2c5d1e"])
    expect(subjectTokens("no token here [#zzzzzzzzzzzz]")).toEqual([])
  })
})

describe("threading", () => {
  it("answers the customer's Message-ID and extends its References", () => {
    expect(threading({ messageId: "<c2@customer.test>", references: ["<root@x.test>", "<c1@customer.test>"] })).toEqual({
      inReplyTo: "<c2@customer.test>",
      references: ["<root@x.test>", "<c1@customer.test>", "<c2@customer.test>"]
    })
  })

  it("drops ids that could carry anything but an id, and keeps the root and the newest when the chain is long", () => {
    const long = Array.from({ length: 40 }, (_, i) => `<m${i}@x.test>`)
    const result = threading({ messageId: "<last@x.test>", references: ["bad id\r\nBcc: x@y", "<a b@x>", ...long] })
    expect(result.references).toHaveLength(20)
    expect(result.references[0]).toBe("<m0@x.test>")
    expect(result.references.at(-1)).toBe("<last@x.test>")
    expect(result.references.every(isMessageId)).toBe(true)
  })

  it("has no In-Reply-To for a mail without a usable Message-ID", () => {
    expect(threading({ messageId: null, references: [] })).toEqual({ inReplyTo: null, references: [] })
    expect(threading({ messageId: "not-an-id", references: [] }).inReplyTo).toBeNull()
  })
})

describe("header helpers", () => {
  it("safeHeader removes line breaks and control characters", () => {
    expect(safeHeader("a\r\nb\u0000c\u0007d\u2028e")).toBe("a bcd e")
  })

  it("newMessageId is unique and on the mailbox's domain", () => {
    const a = newMessageId("support@Example.com")
    expect(a).toMatch(/^<[0-9a-f-]{36}\.mailroom@example\.com>$/)
    expect(newMessageId("support@example.com")).not.toBe(a)
  })

  it("answers Reply-To when set, else From", () => {
    expect(recipient(email()).address).toBe("ada@customer.test")
    expect(recipient(email({ replyTo: [{ address: "team@customer.test", name: "" }] })).address).toBe("team@customer.test")
  })
})
