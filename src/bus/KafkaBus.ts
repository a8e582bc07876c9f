import { Config, Effect, Layer, Option, Redacted, Schema } from "effect"
import type { Message, SASLOptions, TopicMessages } from "kafkajs"
import { EventData } from "../log/Event.js"
import type { StoredEvent } from "../log/Event.js"
import { setting } from "../config/Settings.js"
import { withEventTrace, withSpanWhenTracing } from "../telemetry/Tracing.js"
import { EventBus, EventBusInProcess, PublishFailed } from "./EventBus.js"

const list = (name: string) =>
  Config.string(name).pipe(Config.map((value) => value.split(",").map((s) => s.trim()).filter((s) => s.length > 0)))

const positive = (name: string) =>
  Config.integer(name).pipe(Config.validate({ message: "Expected a whole number above 0", validation: (n) => n > 0 }))

export const kafkaBrokers = setting(
  "KAFKA_BROKERS",
  "Comma-separated Kafka brokers (host:port). Unset: events stay in-process.",
  (name) => Config.option(list(name))
)

export const KafkaConfig = Config.all({
  clientId: setting("KAFKA_CLIENT_ID", "Kafka client id.", Config.nonEmptyString, { value: "mailroom" }),
  tls: setting("KAFKA_TLS", "Connect to the brokers with TLS.", Config.boolean, { value: false }),
  saslMechanism: setting(
    "KAFKA_SASL_MECHANISM",
    "plain, scram-sha-256 or scram-sha-512; unset for no SASL.",
    (name) => Config.option(Config.literal("plain", "scram-sha-256", "scram-sha-512")(name))
  ),
  username: setting("KAFKA_USERNAME", "SASL user name.", (name) => Config.option(Config.string(name))),
  password: setting("KAFKA_PASSWORD", "SASL password.", (name) => Config.option(Config.redacted(name))),
  inboundTopic: setting("KAFKA_TOPIC", "Topic of received emails, keyed by ticket id.", Config.nonEmptyString, {
    value: "email_inbound"
  }),
  eventsTopic: setting("KAFKA_EVENTS_TOPIC", "Topic of every event of the log.", Config.nonEmptyString, {
    value: "mailroom.events"
  }),
  partitions: setting("KAFKA_TOPIC_PARTITIONS", "Partitions of topics mailroom creates.", positive, { value: 3 }),
  replication: setting("KAFKA_TOPIC_REPLICATION", "Replication factor of topics mailroom creates.", positive, { value: 1 })
})
export type KafkaConfig = Config.Config.Success<typeof KafkaConfig>

const encode = Schema.encodeSync(EventData)

/** The documented value of an `email_inbound` record. */
export const inboundPayload = (event: StoredEvent) => {
  if (event.data._tag !== "EmailReceived") return undefined
  const email = event.data
  return {
    eventId: event.id,
    mailbox: event.mailbox,
    ticketId: email.ticketId,
    newTicket: email.newTicket,
    customer: { email: email.from.address, name: email.from.name },
    subject: email.subject,
    text: email.text,
    html: email.html,
    messageId: email.messageId,
    inReplyTo: email.inReplyTo,
    references: email.references,
    receivedAt: event.occurredAt.toISOString(),
    attachments: email.attachments
  }
}

/** CloudEvents 1.0 binary mode: the envelope travels in ce_* headers, the data is the record value. */
export const cloudEventHeaders = (event: StoredEvent): Record<string, string> => ({
  ce_specversion: "1.0",
  ce_id: event.id,
  ce_type: `mailroom.${event.type}`,
  ce_source: `/mailroom/${encodeURIComponent(event.mailbox)}`,
  ce_time: event.occurredAt.toISOString(),
  ...(event.ticketId ? { ce_subject: event.ticketId } : {}),
  "content-type": "application/json",
  ...(event.trace ? { traceparent: event.trace } : {})
})

/** The records one event becomes: always one on the events topic; received mail also on the inbound topic. */
export const toRecords = (
  event: StoredEvent,
  topics: { readonly inbound: string; readonly events: string }
): Array<{ readonly topic: string; readonly message: Message }> => {
  const headers = cloudEventHeaders(event)
  const key = event.ticketId ?? event.mailbox
  const inbound = inboundPayload(event)
  return [
    ...(inbound ? [{ topic: topics.inbound, message: { key, value: JSON.stringify(inbound), headers } }] : []),
    {
      topic: topics.events,
      message: {
        key,
        value: JSON.stringify({ seq: event.seq.toString(), uid: event.uid, uidvalidity: event.uidvalidity, data: encode(event.data) }),
        headers
      }
    }
  ]
}

const group = (records: ReadonlyArray<{ readonly topic: string; readonly message: Message }>): Array<TopicMessages> => {
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

/**
 * Kafka through kafkajs: an idempotent producer, one request in flight so that order per key holds,
 * connected lazily so that a broker that is down never holds back start-up or intake.
 */
const make = (brokers: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const config = yield* KafkaConfig
    // Loaded only when KAFKA_BROKERS is set.
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
        const missing = [config.inboundTopic, config.eventsTopic].filter((topic) => !existing.has(topic))
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

    const publish = Effect.fn("EventBus.publish")(function*(events: ReadonlyArray<StoredEvent>) {
      yield* Effect.annotateCurrentSpan({
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.destination.name": config.eventsTopic,
        "messaging.batch.message_count": events.length
      })
      yield* connect
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
      const records = events.flatMap((event) => toRecords(event, { inbound: config.inboundTopic, events: config.eventsTopic }))
      yield* Effect.tryPromise({
        try: () => producer.sendBatch({ topicMessages: group(records), acks: -1 }),
        catch: (cause) => new PublishFailed({ bus: "kafka", reason: String((cause as Error).message ?? cause), cause })
      }).pipe(Effect.tapError(() => Effect.promise(reset)))
    })

    // Best effort at start-up, so that topics exist before the first event; an absent broker is fine.
    yield* connect.pipe(Effect.ignore, Effect.forkScoped)
    return EventBus.of({ name: "kafka", publish })
  })

/** Kafka when KAFKA_BROKERS is set, else the in-process bus. */
export const EventBusLive = Layer.unwrapEffect(
  Effect.map(kafkaBrokers, (brokers) =>
    Option.isSome(brokers) && brokers.value.length > 0 ? Layer.scoped(EventBus, make(brokers.value)) : EventBusInProcess
  )
)
