import { createRequire } from "node:module"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import kafkajs from "kafkajs"
import { CustomerErased, EmailQuarantined, EmailReceived } from "../../src/log/Event.js"
import type { StoredEvent } from "../../src/log/Event.js"
import type { DeadLetter, OutRecord, Outgoing } from "../../src/bus/KafkaRecords.js"
import { makeDeliver, outgoing, planSends, recordBytes, toRecords } from "../../src/bus/KafkaRecords.js"
import type { PublishFailed } from "../../src/bus/EventBus.js"

const topics = { inbound: "email_inbound", events: "mailroom.events" }
const at = new Date("2026-11-24T10:00:00Z")

const fields = {
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
}
const received = new EmailReceived(fields)

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
      attachments: [{ filename: "a.pdf", contentType: "application/pdf", size: 3, sha256: "abc" }],
      truncated: []
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
    // Its own key: an erasure can tombstone it without touching anyone else's records.
    expect(records[0]!.message.key).toBe(event(quarantined).id)
    expect(records[0]!.message.headers).not.toHaveProperty("traceparent")
    expect(records[0]!.message.headers).toMatchObject({ ce_type: "mailroom.EmailQuarantined" })
  })

  it("turns CustomerErased into a tombstone per ticket on both topics, then the event keyed by the customer", () => {
    const erased = event(new CustomerErased({
      customerId: "c-1",
      addressId: "a-1",
      ticketIds: ["t-1", "t-2"],
      quarantineEventIds: ["q-1"],
      keysDestroyed: 1,
      rawMessagesDeleted: 2,
      messagesDeleted: 3,
      unsealedEvents: 0
    }))
    const records = toRecords(erased, topics)
    const tombstones = records.filter((r) => r.message.value === null)
    expect(tombstones.map((r) => `${r.topic} ${String(r.message.key)}`).sort()).toEqual([
      "email_inbound t-1",
      "email_inbound t-2",
      "mailroom.events q-1",
      "mailroom.events t-1",
      "mailroom.events t-2"
    ])
    expect(tombstones.every((r) => r.message.headers?.mailroom_erased_by === erased.id)).toBe(true)
    expect(records.at(-1)).toMatchObject({ topic: "mailroom.events", message: { key: "c-1" } })
    expect(JSON.parse(String(records.at(-1)!.message.value)).data.ticketIds).toEqual(["t-1", "t-2"])
  })

  it("publishes an erased mail on the events topic only, with nothing of what it said", () => {
    const records = toRecords({ ...event(received), erased: true }, topics)
    expect(records.map((r) => r.topic)).toEqual(["mailroom.events"])
  })
})

describe("a cut event on Kafka", () => {
  it("names the cut fields in a mailroom_truncated header on both records and in the email_inbound payload", () => {
    const cut = new EmailReceived({ ...fields, truncated: ["text", "cc"] })
    const [inbound, all] = toRecords(event(cut), topics)
    expect(inbound!.message.headers).toMatchObject({ mailroom_truncated: "text,cc" })
    expect(all!.message.headers).toMatchObject({ mailroom_truncated: "text,cc" })
    expect(JSON.parse(String(inbound!.message.value)).truncated).toEqual(["text", "cc"])
    expect(JSON.parse(String(all!.message.value)).data.truncated).toEqual(["text", "cc"])
  })
})

const stored = (seq: number, text = "Hello"): StoredEvent => ({
  ...event(new EmailReceived({ ...fields, text })),
  seq: BigInt(seq),
  id: `00000000-0000-4000-8000-${String(seq).padStart(12, "0")}`
})

const page = (texts: ReadonlyArray<string>): Array<Outgoing> =>
  texts.map((text, i) => outgoing(stored(i + 1, text), topics))

const seqs = (sends: ReadonlyArray<ReadonlyArray<Outgoing>>) => sends.map((send) => send.map((item) => Number(item.event.seq)))

// kafkajs's own encoders, to hold the size bound against the bytes that really go out.
const require = createRequire(import.meta.url)
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0/index.js") as {
  RecordBatch: (options: { records: Array<unknown> }) => Promise<{ buffer: Buffer }>
}
const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js") as (options: object) => { buffer: Buffer }

describe("byte paging", () => {
  it("bounds what a record adds to its batch: kafkajs's encoding of a batch never exceeds 61 bytes plus the records' bounds", async () => {
    const messages = page(["short", "é".repeat(5_000), "x".repeat(200_000)]).flatMap((item) => item.records.map((r) => r.message))
    const encoded = await RecordBatch({
      records: messages.map((message, i) =>
        Record({ ...message, key: Buffer.from(String(message.key)), value: Buffer.from(String(message.value)), offsetDelta: i, timestampDelta: 0 })
      )
    })
    const bound = 61 + messages.reduce((sum, message) => sum + recordBytes(message), 0)
    expect(encoded.buffer.length).toBeLessThanOrEqual(bound)
    // Tight enough to pack sends well: a few bytes of slack per record.
    expect(bound - encoded.buffer.length).toBeLessThan(messages.length * 120)
  })

  it("bounds each record alone, whatever its key, value and headers", () => {
    const messages = [
      { key: "k", value: "v".repeat(300) },
      { key: "k".repeat(20_000), value: null },
      { key: null, value: "€".repeat(70_000), headers: { a: "1", b: ["2", "3"], ["ü".repeat(200)]: "x".repeat(20_000) } }
    ]
    for (const message of messages) {
      const encoded = Record({
        key: message.key === null ? null : Buffer.from(message.key),
        value: message.value === null ? null : Buffer.from(message.value),
        headers: message.headers ?? {},
        offsetDelta: 499,
        timestampDelta: 60_000
      })
      expect(encoded.buffer.length).toBeLessThanOrEqual(recordBytes(message))
      expect(recordBytes(message) - encoded.buffer.length).toBeLessThan(64)
    }
  })

  it("splits a page, in order, into sends whose bytes stay under the limit", () => {
    const items = page(Array.from({ length: 12 }, (_, i) => "y".repeat(1_000 * (i % 4))))
    const maxBytes = 9_000
    const sends = planSends(items, { maxBytes, maxRecords: 1_000 })
    expect(sends.length).toBeGreaterThan(2)
    expect(sends.flat().map((item) => item.event.seq)).toEqual(items.map((item) => item.event.seq))
    for (const send of sends) expect(61 + send.reduce((sum, item) => sum + item.bytes, 0)).toBeLessThanOrEqual(maxBytes)
    // Each send is as full as the next event allows.
    for (const [i, send] of sends.slice(0, -1).entries()) {
      expect(61 + [...send, sends[i + 1]![0]!].reduce((sum, item) => sum + item.bytes, 0)).toBeGreaterThan(maxBytes)
    }
  })

  it("splits by record count too, keeping an event's two records together", () => {
    const sends = planSends(page(["a", "b", "c", "d", "e"]), { maxBytes: 1_000_000, maxRecords: 4 })
    expect(seqs(sends)).toEqual([[1, 2], [3, 4], [5]])
  })

  it("sends an event over the limit alone, between the others", () => {
    const sends = planSends(page(["a", "b", "z".repeat(50_000), "c"]), { maxBytes: 20_000, maxRecords: 1_000 })
    expect(seqs(sends)).toEqual([[1, 2], [3], [4]])
  })
})

const tooLarge = () => {
  const refusal = new kafkajs.KafkaJSProtocolError({
    type: "MESSAGE_TOO_LARGE",
    code: 10,
    retriable: false,
    message: "The request included a message larger than the max message size the server will accept"
  } as unknown as Error)
  return Object.assign(new kafkajs.KafkaJSNonRetriableError(refusal), { cause: refusal })
}

const corrupt = () => {
  const refusal = new kafkajs.KafkaJSProtocolError({
    type: "CORRUPT_MESSAGE",
    code: 2,
    retriable: true,
    message: "This message has failed its CRC checksum, exceeds the valid size, or is otherwise corrupt"
  } as unknown as Error)
  return new kafkajs.KafkaJSNumberOfRetriesExceeded(refusal, { retryCount: 2, retryTime: 100, cause: refusal } as never)
}

const unreachable = () => {
  const down = new kafkajs.KafkaJSConnectionError("Connection error: connect ECONNREFUSED 127.0.0.1:9092")
  return new kafkajs.KafkaJSNumberOfRetriesExceeded(down, { retryCount: 2, retryTime: 100, cause: down } as never)
}

/** A broker that refuses, as a whole, any send holding a record over `recordLimit`, and fails as `fault` says. */
const fakeBroker = (recordLimit: number, fault: (sendIndex: number) => Error | undefined = () => undefined) => {
  const sends: Array<ReadonlyArray<OutRecord>> = []
  const accepted: Array<ReadonlyArray<OutRecord>> = []
  const letters: Array<DeadLetter> = []
  const send = (records: ReadonlyArray<OutRecord>) =>
    Effect.suspend(() => {
      sends.push(records)
      const failure = fault(sends.length - 1) ??
        (records.some((record) => recordBytes(record.message) > recordLimit) ? tooLarge() : undefined)
      if (failure) return Effect.fail(failure)
      accepted.push(records)
      return Effect.void
    })
  const deadLetter = (letter: DeadLetter) => Effect.sync(() => void letters.push(letter))
  const delivered = () => accepted.flat().filter((r) => r.topic === topics.events).map((r) => JSON.parse(String(r.message.value)).seq)
  return { send, deadLetter, sends, accepted, letters, delivered }
}

describe("delivery", () => {
  it.effect("a refused event among others is found by halving, dead-lettered, and the rest is delivered in order", () =>
    Effect.gen(function*() {
      const items = page(["a", "b", "c", "d", "z".repeat(30_000), "e", "f"])
      const broker = fakeBroker(20_000)
      // The setting is above what this broker takes: only the broker's refusal finds the event.
      yield* makeDeliver({ ...broker, limits: { maxBytes: 1_000_000, maxRecords: 500 } })(items)
      expect(broker.delivered()).toEqual(["1", "2", "3", "4", "6", "7"])
      expect(broker.letters).toEqual([{
        eventId: items[4]!.event.id,
        seq: "5",
        type: "EmailReceived",
        mailbox: "INBOX",
        reason: expect.stringMatching(/^MESSAGE_TOO_LARGE: /),
        size: items[4]!.bytes
      }])
      expect(broker.sends.length).toBeLessThan(items.length + 3)
    }))

  it.effect("keeps every accepted send under KAFKA_MAX_MESSAGE_BYTES and tries an event over it alone", () =>
    Effect.gen(function*() {
      const items = page([...Array.from({ length: 40 }, (_, i) => "q".repeat(400 * i)), "z".repeat(30_000), "end"])
      const broker = fakeBroker(20_000)
      yield* makeDeliver({ ...broker, limits: { maxBytes: 20_000, maxRecords: 500 } })(items)
      for (const records of broker.sends.filter((records) => records.length > 2)) {
        expect(61 + records.reduce((sum, record) => sum + recordBytes(record.message), 0)).toBeLessThanOrEqual(20_000)
      }
      expect(broker.letters.map((letter) => letter.seq)).toEqual(["41"])
      // Nothing but the oversized event itself was ever refused.
      expect(broker.sends.length - broker.accepted.length).toBe(1)
      expect(broker.delivered()).toEqual(items.filter((item) => item.event.seq !== 41n).map((item) => item.event.seq.toString()))
    }))

  it.effect("CORRUPT_MESSAGE after kafkajs's own retries is a refusal too", () =>
    Effect.gen(function*() {
      const broker = fakeBroker(1_000_000, (i) => (i === 0 ? corrupt() : undefined))
      yield* makeDeliver({ ...broker, limits: { maxBytes: 1_000_000, maxRecords: 500 } })(page(["only"]))
      expect(broker.letters.map((letter) => letter.reason)).toEqual([expect.stringMatching(/^CORRUPT_MESSAGE: /)])
    }))

  it.effect("an unreachable broker fails the publish, naming the last event delivered, and dead-letters nothing", () =>
    Effect.gen(function*() {
      const items = page(["a", "b", "c", "d"])
      const broker = fakeBroker(1_000_000, (i) => (i === 1 ? unreachable() : undefined))
      const exit = yield* Effect.exit(makeDeliver({ ...broker, limits: { maxBytes: 1_000_000, maxRecords: 4 } })(items))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? (exit.cause as { error?: PublishFailed }).error : undefined
      expect(error?._tag).toBe("PublishFailed")
      expect(error?.deliveredUpTo).toBe(2n)
      expect(error?.reason).toContain("ECONNREFUSED")
      expect(broker.letters).toEqual([])
      expect(broker.delivered()).toEqual(["1", "2"])
    }))

  it.effect("an outage before anything was delivered names no event", () =>
    Effect.gen(function*() {
      const broker = fakeBroker(1_000_000, () => unreachable())
      const error = yield* Effect.flip(makeDeliver({ ...broker, limits: { maxBytes: 1_000_000, maxRecords: 500 } })(page(["a"])))
      expect(error.deliveredUpTo).toBeUndefined()
    }))
})
