import { SqlClient } from "@effect/sql"
import { Data, Effect, Layer, Option, Redacted } from "effect"
import type { Message, SASLOptions, TopicMessages } from "kafkajs"
import { KafkaConfig, kafkaBrokers } from "../config/Bus.js"
import type { StoredEvent } from "../log/Event.js"
import { withEventTrace, withSpanWhenTracing } from "../telemetry/Tracing.js"
import { EventBus, EventBusInProcess, PublishFailed, relayConsumer } from "./EventBus.js"
import { MAX_SEND_RECORDS, makeDeliver, outgoing } from "./KafkaRecords.js"
import type { DeadLetter, OutRecord } from "./KafkaRecords.js"

const group = (records: ReadonlyArray<OutRecord>): Array<TopicMessages> => {
  const byTopic = new Map<string, Array<Message>>()
  for (const { topic, message } of records) byTopic.set(topic, [...(byTopic.get(topic) ?? []), message])
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }))
}

const sasl = (config: KafkaConfig): SASLOptions | undefined =>
  Option.isSome(config.saslMechanism)
    ? {
      mechanism: config.saslMechanism.value,
      username: Option.getOrElse(config.username, () => ""),
      password: Option.match(config.password, { onNone: () => "", onSome: Redacted.value })
    } as SASLOptions
    : undefined

/** The kafkajs client of the settings; kafkajs is loaded only when KAFKA_BROKERS is set. */
const client = (brokers: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const config = yield* KafkaConfig
    const { default: kafkajs } = yield* Effect.promise(() => import("kafkajs"))
    const mechanism = sasl(config)
    const kafka = new kafkajs.Kafka({
      clientId: config.clientId,
      brokers: [...brokers],
      ssl: config.tls,
      ...(mechanism ? { sasl: mechanism } : {}),
      logLevel: kafkajs.logLevel.NOTHING,
      connectionTimeout: 5_000,
      requestTimeout: 15_000,
      // Few quick retries inside kafkajs; the relay's own Schedule handles an outage.
      retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 2_000 }
    })
    return { config, kafkajs, kafka }
  })

/** The brokers could not be asked for their topics (`mailroom check`). */
export class KafkaUnreachable extends Data.TaggedError("KafkaUnreachable")<{ readonly brokers: string; readonly reason: string }> {
  override get message() {
    return `the Kafka brokers ${this.brokers} did not answer (${this.reason}): check KAFKA_BROKERS, KAFKA_TLS and the KAFKA_SASL_* settings; events wait in the log meanwhile`
  }
}

/** What `mailroom check` says of Kafka: the brokers answer, and which of mailroom's topics they hold. */
export const checkKafka = (brokers: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const { config, kafka } = yield* client(brokers)
    const admin = kafka.admin()
    const topics = yield* Effect.tryPromise({
      try: async () => {
        await admin.connect()
        try {
          return await admin.listTopics()
        } finally {
          await admin.disconnect().catch(() => undefined)
        }
      },
      catch: (cause) => new KafkaUnreachable({ brokers: brokers.join(","), reason: cause instanceof Error ? cause.message : String(cause) })
    })
    const ours = [config.inboundTopic, config.eventsTopic, config.dlqTopic]
    const missing = ours.filter((topic) => !topics.includes(topic))
    return `${brokers.join(", ")} answered; ${missing.length === 0 ? `topics ${ours.join(", ")} there` : `${missing.join(", ")} not there yet (made when the first event goes out)`}`
  })

/**
 * Kafka through kafkajs: an idempotent producer, one request in flight so that order per key holds,
 * connected lazily so that a broker that is down never holds back start-up or intake.
 */
const make = (brokers: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const consumer = relayConsumer("kafka")
    const { config, kafka, kafkajs } = yield* client(brokers)
    const newProducer = () =>
      kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: kafkajs.Partitioners.DefaultPartitioner })
    let producer = newProducer()
    let ready = false
    yield* Effect.addFinalizer(() => Effect.promise(() => producer.disconnect().catch(() => undefined)))

    /** After a failure a new producer gets a new producer id: the old sequence numbers may be stale. */
    const reset = async () => {
      ready = false
      const old = producer
      producer = newProducer()
      await old.disconnect().catch(() => undefined)
    }

    const createTopics = async () => {
      const admin = kafka.admin()
      await admin.connect()
      try {
        const existing = new Set(await admin.listTopics())
        const missing = [config.inboundTopic, config.eventsTopic, config.dlqTopic].filter((topic) => !existing.has(topic))
        if (missing.length > 0) {
          await admin.createTopics({
            waitForLeaders: true,
            topics: missing.map((topic) => ({ topic, numPartitions: config.partitions, replicationFactor: config.replication }))
          })
        }
      } finally {
        await admin.disconnect()
      }
    }

    const once = yield* Effect.makeSemaphore(1)
    const connect = once.withPermits(1)(Effect.tryPromise({
      try: async () => {
        if (ready) return
        await producer.connect()
        await createTopics()
        ready = true
      },
      catch: (cause) => new PublishFailed({ bus: "kafka", reason: String((cause as Error).message ?? cause), cause })
    })).pipe(Effect.tapError(() => Effect.promise(reset)))

    const send = (records: ReadonlyArray<OutRecord>) =>
      connect.pipe(
        Effect.mapError((error) => error.cause),
        Effect.zipRight(Effect.tryPromise({
          try: () => producer.sendBatch({ topicMessages: group(records), acks: -1 }),
          catch: (cause) => cause
        }).pipe(Effect.tapError(() => Effect.promise(reset))))
      )

    const deadLetter = (letter: DeadLetter) =>
      send([{
        topic: config.dlqTopic,
        message: { key: letter.eventId, value: JSON.stringify(letter), headers: { "content-type": "application/json" } }
      }]).pipe(
        Effect.zipRight(sql`
          INSERT INTO dead_letters (event_id, seq, consumer, reason)
          VALUES (${letter.eventId}, ${letter.seq}, ${consumer}, ${letter.reason})
          ON CONFLICT (event_id) DO NOTHING
        `),
        Effect.zipRight(Effect.logWarning(
          `Kafka refused event ${letter.eventId} (seq ${letter.seq}, ${letter.size} bytes): ${letter.reason}; ` +
            `it is on ${config.dlqTopic} and in dead_letters, the log keeps it whole, and delivery goes on`
        )),
        Effect.withSpan("EventBus.deadLetter", {
          attributes: { "messaging.destination.name": config.dlqTopic, "messaging.message.id": letter.eventId }
        })
      )

    const deliver = makeDeliver({
      send,
      deadLetter,
      limits: { maxBytes: config.maxMessageBytes, maxRecords: MAX_SEND_RECORDS }
    })
    const topics = { inbound: config.inboundTopic, events: config.eventsTopic }

    const publish = Effect.fn("EventBus.publish")(function*(events: ReadonlyArray<StoredEvent>) {
      yield* Effect.annotateCurrentSpan({
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": config.eventsTopic,
        "messaging.batch.message_count": events.length
      })
      // A short span in each email's own trace, so that Jaeger shows the publish under the email.
      yield* Effect.forEach(events, (event) =>
        Effect.void.pipe(
          withSpanWhenTracing(`send ${config.eventsTopic}`, {
            kind: "producer",
            captureStackTrace: false,
            attributes: {
              "messaging.system": "kafka",
              "messaging.operation.type": "send",
              "messaging.destination.name": config.eventsTopic,
              "messaging.message.id": event.id,
              "messaging.kafka.message.key": event.ticketId ?? event.mailbox
            }
          }),
          withEventTrace(event)
        ), { discard: true })
      yield* deliver(events.map((event) => outgoing(event, topics)))
    })

    // Best effort at start-up, so that topics exist before the first event; an absent broker is fine.
    yield* connect.pipe(Effect.ignore, Effect.forkScoped)
    return EventBus.of({ name: "kafka", relayed: true, publish })
  })

/** Kafka when KAFKA_BROKERS is set, else the in-process bus. */
export const EventBusLive = Layer.unwrapEffect(
  Effect.map(kafkaBrokers, (brokers) =>
    Option.isSome(brokers) && brokers.value.length > 0 ? Layer.scoped(EventBus, make(brokers.value)) : EventBusInProcess
  )
)
