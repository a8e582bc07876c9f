import { describe, expect, it } from "vitest"
import type { GuardInput } from "../../src/replies/Reply.js"
import {
  isMessageId,
  loopGuard,
  newMessageId,
  rateGuard,
  recipient,
  replySubject,
  safeDisplayName,
  safeHeader,
  subjectTokens,
  threading,
  ticketToken
} from "../../src/replies/Reply.js"

const own = { address: "support@example.com", aliases: ["help@example.com"] }
const ticketId = "0b6f3a2c-5d1e-4f00-a123-456789abcdef"

const email = (overrides: Partial<GuardInput> = {}): GuardInput => ({
  from: { address: "ada@customer.test", name: "Ada" },
  replyTo: [],
  headers: {},
  contentType: "text/plain",
  subject: "My order",
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
    // A person whose address merely starts with "bounce", and forwarding's rewritten Return-Path (SRS).
    expect(loopGuard(withHeaders({ "return-path": "<bounce-fan@customer.test>" }), own)).toBeUndefined()
    expect(loopGuard(withHeaders({ "return-path": "<SRS0=x1Yz=2B=customer.test=ada@forwarder.test>" }), own)).toBeUndefined()
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
    ["return-path", "<>", "bounce"],
    ["feedback-id", "1234:receipts:shop.test:esp", "bulk_sender"],
    ["x-mandrill-user", "md_30112948", "bulk_sender"],
    ["x-mc-user", "0f1e2d3c4b5a69788796a5b4c", "bulk_sender"],
    ["x-sg-eid", "abc123", "bulk_sender"],
    ["x-ses-outgoing", "2026.12.04-54.240.1.1", "bulk_sender"],
    ["return-path", "<bounce-md_30112948.55a02731.v1-163e4a0f@mandrill.shop.test>", "bulk_sender"],
    ["return-path", "<bounce-mc.us5_1234567.890123-ada=customer.test@mail12.suw.mcsv.net>", "bulk_sender"],
    ["return-path", "<bounces+1234567-abcd-ada=customer.test@em123.shop.test>", "bulk_sender"],
    ["return-path", "<bounce+5d2c41.1f7b-ada=customer.test@mg.shop.test>", "bulk_sender"],
    ["return-path", "<msprvs1=18124jsoh3e=bounces-1234-5678@spmailtechn.com>", "bulk_sender"],
    ["return-path", "<pm_bounces@pm-bounces.shop.test>", "bulk_sender"]
  ])("skips %s: %s as %s", (header, value, reason) => {
    const skip = loopGuard(withHeaders({ [header]: value }), own)
    expect(skip?.reason).toBe(reason)
    expect(skip?.detail.length).toBeGreaterThan(0)
  })

  it("skips an automatic reply known only by its subject, in the languages the answer checks read", () => {
    for (const subject of [
      "Automatic reply: Your ticket [#0b6f3a2c5d1e]",
      "Out of Office: Re: My order",
      "RE: Auto-Reply",
      "Abwesenheitsnotiz: Ihre Anfrage",
      "AW: Automatische Antwort: Bestellung",
      "Réponse automatique : Votre commande",
      "Respuesta automática: Su pedido",
      "Risposta automatica: Ordine",
      "Automatisch antwoord: Uw bestelling",
      "Resposta automática: Seu pedido"
    ]) {
      expect(loopGuard(email({ subject }), own), subject).toEqual({ reason: "auto_reply_header", detail: `its subject is an automatic reply's (${subject})` })
    }
    for (const subject of ["How do I set up an automatic reply?", "Re: My order", "Autoreplying twice?", "Office hours", "Abwesenheit beantragen"]) {
      expect(loopGuard(email({ subject }), own), subject).toBeUndefined()
    }
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
    const replyTo = [{ address: "no-reply@customer.test", name: "" }]
    expect(loopGuard(email({ replyTo, senderAuth: { authenticated: true } }), own)?.reason).toBe("no_reply_sender")
  })

  it.each([
    ["x-loop", "support@example.com", "loop"],
    ["x-loop", "other@list.test, Support@Example.com", "loop"],
    ["x-loop", "help@example.com", "loop"],
    ["precedence", "auto_reply", "precedence"],
    ["x-autoresponder", "yes", "auto_reply_header"],
    ["x-autogenerated", "Reply", "auto_reply_header"],
    ["x-failed-recipients", "gone@customer.test", "bounce"],
    ["return-path", "<MAILER-DAEMON@mx.customer.test>", "bounce"],
    ["x-spam-flag", "YES", "spam"],
    ["x-spam-status", "Yes, score=12.3 required=5.0", "spam"],
    ["x-spam", "yes", "spam"]
  ])("skips %s: %s as %s", (header, value, reason) => {
    expect(loopGuard(withHeaders({ [header]: value }), own)?.reason).toBe(reason)
  })

  it.each([
    ["x-loop", "someone-else@list.test"],
    ["x-spam-flag", "NO"],
    ["x-spam-status", "No, score=-0.1 required=5.0"],
    ["x-spam", "no"],
    ["return-path", "<bounces-ada@customer.test>"]
  ])("lets %s: %s through", (header, value) => {
    expect(loopGuard(withHeaders({ [header]: value }), own)).toBeUndefined()
  })

  it("skips our own address with any +tag, and every alias in OWN_ADDRESSES", () => {
    for (const address of ["support+billing@example.com", "SUPPORT+x@EXAMPLE.COM", "help@example.com", "help+a@example.com"]) {
      expect(loopGuard(email({ from: { address: address.toLowerCase(), name: "" } }), own)?.reason).toBe("own_address")
    }
    expect(loopGuard(email({ from: { address: "supporter@example.com", name: "" } }), own)).toBeUndefined()
  })

  it("skips a recipient that is not a valid mailbox address", () => {
    for (const address of ["ada@localhost", "a b@customer.test", "ada@customer", "x".repeat(65) + "@customer.test"]) {
      expect(loopGuard(email({ from: { address, name: "" } }), own)?.reason).toBe("invalid_recipient")
    }
  })

  it("skips mail from, or answering to, mailroom's own address", () => {
    expect(loopGuard(email({ from: { address: own.address, name: "Support" } }), own)?.reason).toBe("own_address")
    const colleague = { address: "ada@example.com", name: "Ada" }
    expect(loopGuard(email({ from: colleague, replyTo: [{ address: own.address, name: "" }], senderAuth: { authenticated: true } }), { address: "Support@Example.com", aliases: [] })?.reason)
      .toBe("own_address")
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

  it("safeHeader removes bidi overrides, zero-width and other format characters", () => {
    expect(safeHeader("Invoice \u202Efdp.exe\u202C \u200Bplease\u2060 \uFEFFcheck\u2066x\u2069")).toBe("Invoice fdp.exe please checkx")
  })

  it("safeDisplayName drops a name holding an address or a link", () => {
    expect(safeDisplayName("Ada Lovelace")).toBe("Ada Lovelace")
    expect(safeDisplayName("support@bank.test")).toBe("")
    expect(safeDisplayName("Verify at https://evil.test")).toBe("")
    expect(safeDisplayName("www.evil.test")).toBe("")
    expect(safeDisplayName("Bank\u202E Security")).toBe("Bank Security")
  })

  it("newMessageId is unique and on the mailbox's domain", () => {
    const a = newMessageId("support@Example.com")
    expect(a).toMatch(/^<[0-9a-f-]{36}\.mailroom@example\.com>$/)
    expect(newMessageId("support@example.com")).not.toBe(a)
  })

  it("answers From; Reply-To only for an authenticated sender on the same organisational domain", () => {
    const authenticated = { authenticated: true }
    expect(recipient(email()).address).toBe("ada@customer.test")
    expect(recipient(email({ replyTo: [{ address: "team@customer.test", name: "" }] })).address).toBe("ada@customer.test")
    expect(recipient(email({ replyTo: [{ address: "team@customer.test", name: "" }], senderAuth: authenticated })).address)
      .toBe("team@customer.test")
    expect(recipient(email({ replyTo: [{ address: "desk@help.customer.test", name: "" }], senderAuth: authenticated })).address)
      .toBe("desk@help.customer.test")
    expect(recipient(email({ replyTo: [{ address: "victim@elsewhere.example", name: "" }], senderAuth: authenticated })).address)
      .toBe("ada@customer.test")
  })
})
