import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Option } from "effect"
import kafkajs from "kafkajs"
import { afterAll, beforeAll } from "vitest"
import { pipelineOn } from "../../src/Layers.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { Relay } from "../../src/bus/Relay.js"
import { MemoryMailbox } from "../../src/mailbox/Imap.js"
import { EventBusLive } from "../../src/bus/KafkaBus.js"
import { StateStore } from "../../src/log/StateStore.js"
import { TicketRepo } from "../../src/tickets/TicketRepo.js"
import type { KafkaBroker } from "../support/kafka.js"
import { startKafka } from "../support/kafka.js"
import { databaseEnv } from "../support/stack.js"
import { configLayer, mail } from "../unit/layers.js"

let broker: KafkaBroker

beforeAll(async () => {
  broker = await startKafka()
})

afterAll(async () => {
  await broker?.cleanup()
})

interface Consumed {
  readonly key: string
  readonly value: any
  readonly headers: Record<string, string>
  readonly partition: number
}

/** Reads a topic from the beginning until `count` records arrived. */
const consume = (topic: string, count: number) =>
  Effect.promise(async () => {
    const kafka = new kafkajs.Kafka({ brokers: [broker.brokers], logLevel: kafkajs.logLevel.NOTHING })
    const consumer = kafka.consumer({ groupId: `test-${topic}-${Math.random()}` })
    const records: Array<Consumed> = []
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${records.length} of ${count} records on ${topic}`)), 60_000)
      void consumer.run({
        eachMessage: async ({ message, partition }) => {
          records.push({
            key: message.key?.toString() ?? "",
            value: JSON.parse(message.value?.toString() ?? "null"),
            headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
            partition
          })
          if (records.length >= count) {
            clearTimeout(timer)
            resolve()
          }
        }
      })
    })
    try {
      await done
    } finally {
      await consumer.disconnect()
    }
    return records
  })

const kafkaPipeline = (mailbox: MemoryMailbox, label: string) =>
  Layer.unwrapScoped(
    Effect.map(databaseEnv("postgres", label), (dbEnv) =>
      pipelineOn(mailbox.layer, EventBusLive).pipe(
        Layer.provide(configLayer({
          ...dbEnv,
          AGENT: "off",
          KAFKA_BROKERS: broker.brokers,
          KAFKA_TOPIC: `email_inbound_${label}`,
          KAFKA_EVENTS_TOPIC: `mailroom.events.${label}`
        }))
      )
    )
  )

const passAndDrain = Effect.gen(function*() {
  yield* Effect.flatMap(Poller, (p) => p.once).pipe(Effect.map(Option.getOrThrow))
  return yield* Effect.flatMap(Relay, (r) => r.drain)
})

describe("the Kafka event bus", () => {
  it.scopedLive("delivers every event to mailroom.events and received mail to email_inbound, keyed by ticket, in order", () => {
    const mailbox = new MemoryMailbox()
    mailbox.append(mail({ messageId: "<a1@c.test>", subject: "A" }))
    mailbox.append(mail({ messageId: "<b1@c.test>", subject: "B", from: "Bea <bea@customer.test>" }))
    mailbox.append(mail({ messageId: "<a2@c.test>", inReplyTo: "<a1@c.test>", subject: "Re: A" }))
    mailbox.append(mail({ from: null }))
    mailbox.append(mail({ messageId: "<a3@c.test>", inReplyTo: "<a2@c.test>", subject: "Re: Re: A" }))
    mailbox.append(mail({ messageId: "<b2@c.test>", inReplyTo: "<b1@c.test>", subject: "Re: B", from: "bea@customer.test" }))
    return Effect.gen(function*() {
      const relayed = yield* passAndDrain
      const events = yield* Effect.flatMap(TicketRepo, (repo) => repo.eventsAfter(0n, 100))
      expect(relayed).toBe(events.length)
      const all = yield* consume("mailroom.events.order", events.length)
      expect(all.map((r) => r.headers.ce_id).sort()).toEqual(events.map((e) => e.id).sort())
      const inbound = yield* consume("email_inbound_order", 5)
      const byKey = new Map<string, Array<string>>()
      for (const record of inbound) byKey.set(record.key, [...(byKey.get(record.key) ?? []), record.value.subject])
      expect([...byKey.values()].sort()).toEqual([["A", "Re: A", "Re: Re: A"], ["B", "Re: B"]])
      const first = inbound.find((r) => r.value.messageId === "<b1@c.test>")!
      expect(first.value).toMatchObject({
        customer: { email: "bea@customer.test", name: "Bea" },
        subject: "B",
        messageId: "<b1@c.test>",
        inReplyTo: null,
        newTicket: true,
        ticketId: first.key
      })
      expect(first.headers).toMatchObject({
        ce_specversion: "1.0",
        ce_type: "mailroom.EmailReceived",
        ce_source: "/mailroom/INBOX",
        "content-type": "application/json"
      })
      expect(Date.parse(first.headers.ce_time!)).not.toBeNaN()
      const position = yield* Effect.flatMap(StateStore, (s) => s.position("relay:kafka"))
      expect(position).toBe(events.at(-1)!.seq)
    }).pipe(Effect.provide(kafkaPipeline(mailbox, "order")))
  })

  it.scopedLive("a broker outage: ingest goes on, the relay waits without passing an unacknowledged event, then catches up", () => {
    const mailbox = new MemoryMailbox()
    for (let i = 0; i < 10; i++) mailbox.append(mail({ subject: `before ${i}` }))
    return Effect.gen(function*() {
      yield* passAndDrain
      const state = yield* StateStore
      const repo = yield* TicketRepo
      const relay = yield* Relay
      const running = yield* Effect.fork(relay.run)
      yield* Effect.promise(() => broker.stop())
      for (let i = 0; i < 25; i++) mailbox.append(mail({ subject: `during ${i}` }))
      const summary = yield* Effect.flatMap(Poller, (p) => p.once).pipe(Effect.map(Option.getOrThrow))
      expect(summary.received).toBe(25)
      const before = yield* state.position("relay:kafka")
      yield* Effect.sleep(Duration.seconds(3))
      const events = yield* repo.eventsAfter(0n, 1000)
      expect(yield* state.position("relay:kafka")).toBe(before)
      expect(before).toBeLessThan(events.at(-1)!.seq)
      yield* Effect.promise(() => broker.restart())
      const last = events.at(-1)!.seq
      while ((yield* state.position("relay:kafka")) < last) yield* Effect.sleep(Duration.millis(200))
      yield* Fiber.interrupt(running)
      const all = yield* consume("mailroom.events.outage", events.length)
      expect(new Set(all.map((r) => r.headers.ce_id))).toEqual(new Set(events.map((e) => e.id)))
    }).pipe(Effect.provide(kafkaPipeline(mailbox, "outage")))
  }, 180_000)
})
