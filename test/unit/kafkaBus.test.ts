import { describe, expect, it } from "vitest"
import { EmailQuarantined, EmailReceived } from "../../src/log/Event.js"
import type { StoredEvent } from "../../src/log/Event.js"
import { toRecords } from "../../src/bus/KafkaBus.js"

const topics = { inbound: "email_inbound", events: "mailroom.events" }
const at = new Date("2026-11-24T10:00:00Z")

const received = new EmailReceived({
  messageId: "<m1@c.test>",
  from: { address: "ada@customer.test", name: "Ada" },
  to: [{ address: "support@example.com", name: "" }],
  cc: [],
  replyTo: [],
  subject: "Login broken",
  date: null,
  inReplyTo: "<m0@c.test>",
  references: ["<m0@c.test>"],
  text: "Hello",
  html: "<p>Hello</p>",
  attachments: [{ filename: "a.pdf", contentType: "application/pdf", size: 3, sha256: "abc" }],
  headers: {},
  contentType: "text/plain",
  rawSha256: "ff",
  size: 100,
  ticketId: "11111111-1111-4111-8111-111111111111",
  customerId: "22222222-2222-4222-8222-222222222222",
  newTicket: false
})

const event = (data: StoredEvent["data"], trace: string | null = null): StoredEvent => ({
  seq: 7n,
  id: "33333333-3333-4333-8333-333333333333",
  type: data._tag,
  mailbox: "INBOX",
  uidvalidity: 9,
  uid: 42,
  ticketId: data._tag === "EmailReceived" ? data.ticketId : null,
  occurredAt: at,
  data,
  trace
})

describe("Kafka records", () => {
  it("a received email goes to email_inbound keyed by ticket with the documented payload, and to mailroom.events", () => {
    const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    const records = toRecords(event(received, trace), topics)
    expect(records.map((r) => r.topic)).toEqual(["email_inbound", "mailroom.events"])
    const [inbound, all] = records
    expect(inbound!.message.key).toBe(received.ticketId)
    expect(JSON.parse(String(inbound!.message.value))).toEqual({
      eventId: "33333333-3333-4333-8333-333333333333",
      mailbox: "INBOX",
      ticketId: received.ticketId,
      newTicket: false,
      customer: { email: "ada@customer.test", name: "Ada" },
      subject: "Login broken",
      text: "Hello",
      html: "<p>Hello</p>",
      messageId: "<m1@c.test>",
      inReplyTo: "<m0@c.test>",
      references: ["<m0@c.test>"],
      receivedAt: "2026-11-24T10:00:00.000Z",
      attachments: [{ filename: "a.pdf", contentType: "application/pdf", size: 3, sha256: "abc" }]
    })
    expect(inbound!.message.headers).toEqual({
      ce_specversion: "1.0",
      ce_id: "33333333-3333-4333-8333-333333333333",
      ce_type: "mailroom.EmailReceived",
      ce_source: "/mailroom/INBOX",
      ce_time: "2026-11-24T10:00:00.000Z",
      ce_subject: received.ticketId,
      "content-type": "application/json",
      traceparent: trace
    })
    expect(JSON.parse(String(all!.message.value))).toMatchObject({ seq: "7", uid: 42, data: { _tag: "EmailReceived" } })
  })

  it("other events go only to mailroom.events, keyed by mailbox when there is no ticket, without traceparent when untraced", () => {
    const quarantined = new EmailQuarantined({
      reason: "no_sender",
      detail: "no usable From address",
      size: 10,
      rawSha256: "aa",
      headersOnly: false,
      headers: { messageId: null, from: null, subject: null, date: null }
    })
    const records = toRecords(event(quarantined), topics)
    expect(records).toHaveLength(1)
    expect(records[0]!.topic).toBe("mailroom.events")
    expect(records[0]!.message.key).toBe("INBOX")
    expect(records[0]!.message.headers).not.toHaveProperty("traceparent")
    expect(records[0]!.message.headers).toMatchObject({ ce_type: "mailroom.EmailQuarantined" })
  })
})
