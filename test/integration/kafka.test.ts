import { EventLog } from "../../src/log/EventLog.js"
import { expect, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Fiber, Layer, Option } from "effect"
import kafkajs from "kafkajs"
import { pipelineOn } from "../../src/Layers.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { Relay } from "../../src/bus/Relay.js"
import { Imap, MemoryMailbox } from "../../src/mailbox/Imap.js"
import { checkKafka, EventBusLive } from "../../src/bus/KafkaBus.js"
import { collectStatus, formatStatus } from "../../src/cli/Status.js"
import { eventLimits } from "../../src/mail/ParseMail.js"
import { consumeRecords, KafkaServer, topicSize } from "../support/kafka.js"
import { databaseEnv } from "../support/stack.js"
import { configLayer, mail } from "../unit/layers.js"

interface Consumed {
  readonly key: string
  readonly value: any
  readonly headers: Record<string, string>
  readonly partition: number
}

/** Reads a topic from the beginning until `enough` says so. */
const consumeUntil = (topic: string, enough: (records: ReadonlyArray<Consumed>) => boolean) =>
  Effect.flatMap(KafkaServer, (broker) =>
    Effect.promise(() =>
      consumeRecords(broker.brokers, topic, (r): Consumed => ({
        key: r.key ?? "",
        value: JSON.parse(r.value ?? "null"),
        headers: r.headers,
        partition: r.partition
      }), enough)
    ))

/** Creates topics ahead of mailroom, with one partition (so one total order) and a broker limit of their own. */
const createTopics = (topics: ReadonlyArray<string>, maxMessageBytes: number) =>
  Effect.flatMap(KafkaServer, (broker) => Effect.promise(async () => {
    const admin = new kafkajs.Kafka({ brokers: [broker.brokers], logLevel: kafkajs.logLevel.NOTHING }).admin()
    await admin.connect()
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: topics.map((topic) => ({
          topic,
          numPartitions: 1,
          replicationFactor: 1,
          configEntries: [{ name: "max.message.bytes", value: String(maxMessageBytes) }]
        }))
      })
    } finally {
      await admin.disconnect()
    }
  }))

/** Reads a topic from the beginning until `count` records arrived. */
const consume = (topic: string, count: number) => consumeUntil(topic, (records) => records.length >= count)

const kafkaPipeline = (mailbox: MemoryMailbox, label: string) =>
  Layer.unwrapScoped(
    Effect.zipWith(KafkaServer, databaseEnv("postgres", label), (broker, dbEnv) =>
      pipelineOn(Imap.Test(mailbox), EventBusLive).pipe(
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

layer(KafkaServer.layer(), { excludeTestServices: true })("the Kafka event bus", (it) => {
  it.scoped("`mailroom check` asks the brokers for mailroom's topics, and names brokers that do not answer", () =>
    Effect.gen(function*() {
      const broker = yield* KafkaServer
      const topics = { KAFKA_TOPIC: "check_inbound", KAFKA_EVENTS_TOPIC: "check.events", KAFKA_DLQ_TOPIC: "check.events.dlq" }
      const check = (brokers: ReadonlyArray<string>) => checkKafka(brokers).pipe(Effect.provide(configLayer(topics)))
      expect(yield* check([broker.brokers])).toBe(`${broker.brokers} answered; check_inbound, check.events, check.events.dlq not there yet (made when the first event goes out)`)
      yield* createTopics(Object.values(topics), 1_000_000)
      expect(yield* check([broker.brokers])).toBe(`${broker.brokers} answered; topics check_inbound, check.events, check.events.dlq there`)
      const down = yield* Effect.flip(check(["127.0.0.1:1"]))
      expect(down._tag).toBe("KafkaUnreachable")
      expect(down.message).toMatch(/^the Kafka brokers 127\.0\.0\.1:1 did not answer \(.*\): check KAFKA_BROKERS, KAFKA_TLS and the KAFKA_SASL_\* settings/)
    }))

  it.scoped("delivers every event to mailroom.events and received mail to email_inbound, keyed by ticket, in order", () => {
    const mailbox = new MemoryMailbox()
    mailbox.append(mail({ messageId: "<a1@c.test>", subject: "A" }))
    mailbox.append(mail({ messageId: "<b1@c.test>", subject: "B", from: "Bea <bea@customer.test>" }))
    mailbox.append(mail({ messageId: "<a2@c.test>", inReplyTo: "<a1@c.test>", subject: "Re: A" }))
    mailbox.append(mail({ from: null }))
    mailbox.append(mail({ messageId: "<a3@c.test>", inReplyTo: "<a2@c.test>", subject: "Re: Re: A" }))
    mailbox.append(mail({ messageId: "<b2@c.test>", inReplyTo: "<b1@c.test>", subject: "Re: B", from: "bea@customer.test" }))
    return Effect.gen(function*() {
      const relayed = yield* passAndDrain
      const events = yield* Effect.flatMap(EventLog, (log) => log.read(0n, 100))
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
      const position = yield* Effect.flatMap(EventLog, (log) => log.position("relay:kafka"))
      expect(position).toBe(events.at(-1)!.seq)
    }).pipe(Effect.provide(kafkaPipeline(mailbox, "order")))
  })

  it.scoped("an event the broker refuses is dead-lettered mid-backlog: later events follow in order, status counts it, a restart re-sends nothing", () => {
    const mailbox = new MemoryMailbox()
    for (let i = 0; i < 4; i++) mailbox.append(mail({ subject: `before ${i}` }))
    mailbox.append(mail({ subject: "huge", text: "h".repeat(150_000) }))
    for (let i = 0; i < 4; i++) mailbox.append(mail({ subject: `after ${i}` }))
    const topics = { inbound: "email_inbound_dlq", events: "mailroom.events.dlqtest", dlq: "mailroom.events.dlq.dlqtest" }
    return Effect.gen(function*() {
      const broker = yield* KafkaServer
      // The broker takes at most 100 kB per batch on these topics; the huge mail's event is over it.
      yield* createTopics([topics.inbound, topics.events], 100_000)
      const env = {
        ...(yield* databaseEnv("postgres", "dlq")),
        AGENT: "off",
        KAFKA_BROKERS: broker.brokers,
        KAFKA_TOPIC: topics.inbound,
        KAFKA_EVENTS_TOPIC: topics.events,
        KAFKA_DLQ_TOPIC: topics.dlq,
        KAFKA_MAX_MESSAGE_BYTES: "100000"
      }
      // Built once per provide: each run below is a fresh relay (and producer) on the same database.
      const imap = Imap.Test(mailbox)
      const pipeline = pipelineOn(imap, EventBusLive).pipe(Layer.provide(configLayer(env)))
      const status = collectStatus.pipe(Effect.provide(Layer.merge(imap, configLayer(env))))

      const first = yield* Effect.gen(function*() {
        const relayed = yield* passAndDrain
        const events = yield* Effect.flatMap(EventLog, (log) => log.read(0n, 100))
        const deadLetters = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ event_id: string; seq: string; consumer: string; reason: string }>`SELECT * FROM dead_letters`)
        return { relayed, events, deadLetters, report: yield* status }
      }).pipe(Effect.provide(pipeline))
      const huge = first.events.find((e) => e.data._tag === "EmailReceived" && e.data.subject === "huge")!
      const others = first.events.filter((e) => e.id !== huge.id)
      expect(first.events).toHaveLength(9)
      expect(first.relayed).toBe(9)

      const delivered = yield* consume(topics.events, others.length)
      expect(delivered.map((r) => r.headers.ce_id)).toEqual(others.map((e) => e.id))
      expect(delivered.map((r) => r.value.seq)).toEqual(others.map((e) => e.seq.toString()))
      expect(yield* topicSize(topics.events)).toBe(8)

      const [letter] = yield* consume(topics.dlq, 1)
      expect(letter!.key).toBe(huge.id)
      expect(letter!.value).toMatchObject({
        eventId: huge.id,
        seq: huge.seq.toString(),
        type: "EmailReceived",
        mailbox: "INBOX",
        reason: expect.stringMatching(/^MESSAGE_TOO_LARGE/)
      })
      expect(letter!.value.size).toBeGreaterThan(100_000)
      expect(first.deadLetters).toEqual([
        { event_id: huge.id, seq: huge.seq.toString(), consumer: "relay:kafka", reason: letter!.value.reason, at: expect.any(Date) }
      ])

      const outbox = first.report.outbox.find((o) => o.consumer === "relay:kafka")
      expect(outbox).toMatchObject({ lag: 0, deadLettered: 1, position: first.events.at(-1)!.seq.toString() })
      expect(formatStatus(first.report)).toMatch(/relay:kafka\s+0 event\(s\) behind \(seq \d+\), 1 dead-lettered/)

      // A restart: a second relay on the same database sends the one new event and nothing else.
      mailbox.append(mail({ subject: "after the restart" }))
      const second = yield* Effect.gen(function*() {
        const relayed = yield* passAndDrain
        return { relayed, report: yield* status }
      }).pipe(Effect.provide(pipeline))
      expect(second.relayed).toBe(1)
      const all = yield* consume(topics.events, 9)
      expect(all.at(-1)!.value.data.subject).toBe("after the restart")
      expect(yield* topicSize(topics.events)).toBe(9)
      expect(yield* topicSize(topics.inbound)).toBe(9)
      expect(yield* topicSize(topics.dlq)).toBe(1)
      expect(second.report.outbox.find((o) => o.consumer === "relay:kafka")).toMatchObject({ lag: 0, deadLettered: 1 })
    })
  }, 180_000)

  it.scoped("a mail with 2 MB of text becomes an event with its text cut, and its email_inbound record says so", () => {
    const mailbox = new MemoryMailbox()
    const text = "Lorem ipsum dolor sit amet. ".repeat(75_000)
    mailbox.append(mail({ subject: "long", text }))
    return Effect.gen(function*() {
      expect(yield* passAndDrain).toBe(1)
      const [event] = yield* Effect.flatMap(EventLog, (log) => log.read(0n, 10))
      if (event?.data._tag !== "EmailReceived") throw new Error(`expected an EmailReceived, got ${event?.type}`)
      expect(event.data.truncated).toEqual(["text"])
      expect(Buffer.byteLength(event.data.text)).toBeLessThanOrEqual(eventLimits.textBytes)
      expect(text.startsWith(event.data.text)).toBe(true)
      // The whole mail stays in the log's raw store.
      const [raw] = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ size: string }>`SELECT size FROM raw_messages WHERE sha256 = ${event.data._tag === "EmailReceived" ? event.data.rawSha256 : ""}`)
      expect(Number(raw!.size)).toBeGreaterThan(2_000_000)

      const [inbound] = yield* consume("email_inbound_cut", 1)
      expect(inbound!.headers.mailroom_truncated).toBe("text")
      expect(inbound!.value.truncated).toEqual(["text"])
      expect(inbound!.value.text).toBe(event.data.text)
      const [record] = yield* consume("mailroom.events.cut", 1)
      expect(record!.headers.mailroom_truncated).toBe("text")
      expect(record!.value.data.truncated).toEqual(["text"])
    }).pipe(Effect.provide(kafkaPipeline(mailbox, "cut")))
  })

  it.scoped("a broker outage: ingest goes on, the relay waits without passing an unacknowledged event, then catches up", () => {
    const mailbox = new MemoryMailbox()
    for (let i = 0; i < 10; i++) mailbox.append(mail({ subject: `before ${i}` }))
    return Effect.gen(function*() {
      const broker = yield* KafkaServer
      yield* passAndDrain
      const log = yield* EventLog
      const relay = yield* Relay
      const running = yield* Effect.fork(relay.run)
      yield* Effect.promise(() => broker.stop())
      for (let i = 0; i < 25; i++) mailbox.append(mail({ subject: `during ${i}` }))
      const summary = yield* Effect.flatMap(Poller, (p) => p.once).pipe(Effect.map(Option.getOrThrow))
      expect(summary.received).toBe(25)
      const before = yield* log.position("relay:kafka")
      yield* Effect.sleep(Duration.seconds(3))
      const events = yield* log.read(0n, 1000)
      expect(yield* log.position("relay:kafka")).toBe(before)
      expect(before).toBeLessThan(events.at(-1)!.seq)
      yield* Effect.promise(() => broker.restart())
      const last = events.at(-1)!.seq
      while ((yield* log.position("relay:kafka")) < last) yield* Effect.sleep(Duration.millis(200))
      yield* Fiber.interrupt(running)
      // At-least-once: a send cut short by the restart may have reached some partitions, and is sent again.
      const all = yield* consumeUntil("mailroom.events.outage", (records) => new Set(records.map((r) => r.headers.ce_id)).size >= events.length)
      expect(new Set(all.map((r) => r.headers.ce_id))).toEqual(new Set(events.map((e) => e.id)))
    }).pipe(Effect.provide(kafkaPipeline(mailbox, "outage")))
  }, 180_000)
})
