import type { ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { describe, expect, it } from "@effect/vitest"
import { redactAddresses, redactAttributes, redactSpan } from "../../src/telemetry/Redact.js"

describe("redactAddresses", () => {
  it("blanks an address on its own and inside longer messages, keeping the rest", () => {
    expect(redactAddresses("ada@customer.test")).toBe("[redacted]")
    expect(redactAddresses("the SMTP server refused the reply to ada@customer.test: 550 5.1.1 <ada@customer.test> no such user"))
      .toBe("the SMTP server refused the reply to [redacted]: 550 5.1.1 <[redacted]> no such user")
    expect(redactAddresses("Reply to Ada.Lovelace@Mail.Customer.TEST failed.")).toBe("Reply to [redacted] failed.")
    expect(redactAddresses("mailto:ada@customer.test,bob@customer.test")).toBe("mailto:[redacted],[redacted]")
    expect(redactAddresses("see https://help.test/x?to=dir/ada@customer.test")).toBe("see https://help.test/x?to=dir/[redacted]")
  })

  it("blanks plus, VERP, quoted, literal and internationalised addresses", () => {
    expect(redactAddresses("ada+billing@customer.test")).toBe("[redacted]")
    expect(redactAddresses("bounce+ada=customer.test@lists.example")).toBe("[redacted]")
    expect(redactAddresses("o'brien@customer.ie")).toBe("[redacted]")
    expect(redactAddresses("\"ada lovelace\"@customer.test wrote")).toBe("[redacted] wrote")
    expect(redactAddresses("ada@[192.0.2.1]")).toBe("[redacted]")
    expect(redactAddresses("From: josé.müller@bücher.de")).toBe("From: [redacted]")
    expect(redactAddresses("用户@例子.广告")).toBe("[redacted]")
    expect(redactAddresses("ada@xn--bcher-kva.xn--p1ai")).toBe("[redacted]")
  })

  it("leaves what only contains '@': package names, versions, bare domains, handles", () => {
    for (
      const text of [
        "@effect/sql",
        "@effect/sql@0.52.1 failed",
        "effect@3.22.4",
        // DKIM's i= tag with no local part names the signing domain: an organisation, not a person.
        "header.i=@example.com",
        "follow @mailroom",
        "a @ b",
        "user@localhost",
        "trailing@",
        "no at sign at all"
      ]
    ) {
      expect(redactAddresses(text)).toBe(text)
    }
  })

  it("stays linear on long runs without an address", () => {
    const text = `${"a".repeat(200_000)}@@${"b.".repeat(50_000)}`
    const started = Date.now()
    redactAddresses(text)
    expect(Date.now() - started).toBeLessThan(1000)
  })
})

describe("redactAttributes", () => {
  it("blanks strings and string arrays, leaves numbers and booleans", () => {
    expect(redactAttributes({
      "mailroom.from": "ada@customer.test",
      "mailroom.to": ["support@example.com", "plain"],
      "mailroom.uid": 7,
      "mailroom.ok": true,
      "mailroom.flags": [true, false]
    })).toEqual({
      "mailroom.from": "[redacted]",
      "mailroom.to": ["[redacted]", "plain"],
      "mailroom.uid": 7,
      "mailroom.ok": true,
      "mailroom.flags": [true, false]
    })
  })
})

describe("redactSpan", () => {
  const context = { traceId: "0".repeat(31) + "1", spanId: "0".repeat(15) + "1", traceFlags: 1 }
  const resource = { attributes: { "service.name": "mailroom" } } as unknown as ReadableSpan["resource"]
  const span: ReadableSpan = {
    name: "reply to ada@customer.test",
    kind: 0,
    spanContext: () => context,
    startTime: [1, 0],
    endTime: [2, 0],
    status: { code: 2, message: "the SMTP server refused the reply to ada@customer.test: 550" },
    attributes: { "mailroom.smtp.response": "550 <ada@customer.test>", "server.port": 25 },
    links: [{ context, attributes: { "mailroom.link": "bob@customer.test" } }],
    events: [
      { name: "Reply to ada@customer.test failed", time: [1, 5] },
      {
        name: "exception",
        time: [1, 6],
        attributes: { "exception.message": "refused ada@customer.test", "exception.stacktrace": "SmtpRejected: refused ada@customer.test\n    at x" }
      }
    ],
    duration: [1, 0],
    ended: true,
    resource,
    instrumentationScope: { name: "mailroom" },
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0
  }

  it("blanks the name, attributes, status, event names and attributes, and link attributes", () => {
    const redacted = redactSpan(span)
    expect(JSON.stringify(redacted)).not.toContain("@customer.test")
    expect(redacted.name).toBe("reply to [redacted]")
    expect(redacted.status).toEqual({ code: 2, message: "the SMTP server refused the reply to [redacted]: 550" })
    expect(redacted.attributes).toEqual({ "mailroom.smtp.response": "550 <[redacted]>", "server.port": 25 })
    expect(redacted.events.map((e) => e.name)).toEqual(["Reply to [redacted] failed", "exception"])
    expect(redacted.events[1]!.attributes!["exception.stacktrace"]).toBe("SmtpRejected: refused [redacted]\n    at x")
    expect(redacted.links[0]!.attributes).toEqual({ "mailroom.link": "[redacted]" })
  })

  it("keeps the identity, timing and resource the exporter groups by", () => {
    const redacted = redactSpan(span)
    expect(redacted.spanContext()).toBe(context)
    expect(redacted.resource).toBe(resource)
    expect(redacted.instrumentationScope).toBe(span.instrumentationScope)
    expect([redacted.startTime, redacted.endTime, redacted.duration, redacted.kind]).toEqual([[1, 0], [2, 0], [1, 0], 0])
    expect(span.name).toBe("reply to ada@customer.test")
  })
})
