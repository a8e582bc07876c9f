import { Config } from "effect"
import { positive, settingList, splitList } from "./Settings.js"

/** The event bus settings: Kafka. */
const { all, setting } = settingList()
export const settings = all

/** host:port, the host a name, an IPv4 address or a [bracketed] IPv6 one; the port 1–65535. */
const isBroker = (entry: string) => {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(entry)
  return match !== null && Number(match[2]) >= 1 && Number(match[2]) <= 65535
}

export const kafkaBrokers = setting(
  "KAFKA_BROKERS",
  "Comma-separated Kafka brokers (host:port). Unset: events stay in-process.",
  // Checked here: kafkajs takes "localhost" (no port) and fails only when the first event goes out.
  // Blank stays what it was: the in-process bus.
  (name) =>
    Config.option(
      Config.string(name).pipe(
        Config.validate({ message: "Expected comma-separated host:port pairs, e.g. kafka-1:9092,kafka-2:9092", validation: (value) => splitList(value).every(isBroker) }),
        Config.map(splitList)
      )
    )
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
  dlqTopic: setting(
    "KAFKA_DLQ_TOPIC",
    "Topic of dead letters: events the broker refused for their size or content, keyed by event id (the log keeps them whole).",
    Config.nonEmptyString,
    { value: "mailroom.events.dlq" }
  ),
  maxMessageBytes: setting(
    "KAFKA_MAX_MESSAGE_BYTES",
    "The brokers' max.message.bytes: the relay never puts more in one partition's record batch.",
    positive,
    { value: 1_000_000 }
  ),
  partitions: setting("KAFKA_TOPIC_PARTITIONS", "Partitions of topics mailroom creates.", positive, { value: 3 }),
  replication: setting("KAFKA_TOPIC_REPLICATION", "Replication factor of topics mailroom creates.", positive, { value: 1 })
})
export type KafkaConfig = Config.Config.Success<typeof KafkaConfig>
