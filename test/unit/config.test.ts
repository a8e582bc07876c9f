import { describe, expect, it } from "@effect/vitest"
import { Cause, Config, ConfigProvider, Effect, Option, Redacted } from "effect"
import { kafkaBrokers } from "../../src/config/Bus.js"
import { ImapConfig, IntakeConfig, OAuth2Config } from "../../src/config/Config.js"
import { LlmConfig, ReplyConfig } from "../../src/config/Replies.js"
import { TelemetryConfig } from "../../src/config/Telemetry.js"
import { describeFailure } from "../../src/cli/Fatal.js"

const load = <A, E>(config: Effect.Effect<A, E>, env: Record<string, string>) =>
  config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

const lineFor = <A, E>(config: Effect.Effect<A, E>, env: Record<string, string>) =>
  load(config, env).pipe(
    Effect.flip,
    Effect.map((error) => describeFailure(Cause.fail(error)))
  )

describe("configuration", () => {
  it.effect("strips the spaces Gmail shows in app passwords and defaults to Gmail", () =>
    Effect.gen(function*() {
      const config = yield* load(ImapConfig, { GMAIL_SENDER_EMAIL: "a@b.test", GMAIL_SENDER_PASSWORD: " abcd efgh ijkl mnop " })
      expect(Redacted.value(config.password)).toBe("abcdefghijklmnop")
      expect(String(config.password)).not.toContain("abcd")
      expect(config).toMatchObject({ host: "imap.gmail.com", port: 993, tls: true })
    }))

  it.effect("names a missing variable, with its help, as a configuration error (exit code 2)", () =>
    Effect.gen(function*() {
      const fatal = yield* lineFor(ImapConfig, { GMAIL_SENDER_PASSWORD: "x" })
      expect(fatal?.exitCode).toBe(2)
      expect(fatal?.line).toMatch(/^GMAIL_SENDER_EMAIL is not set: The mailbox login/)
    }))

  it.effect("batches 6 MB on PostgreSQL and 2 MB on the embedded database, unless IMAP_BATCH_BYTES says otherwise", () =>
    Effect.gen(function*() {
      expect((yield* load(IntakeConfig, { DATABASE_URL: "postgres://db/mail" })).batchBytes).toBe(6 * 1024 * 1024)
      expect((yield* load(IntakeConfig, {})).batchBytes).toBe(2 * 1024 * 1024)
      expect((yield* load(IntakeConfig, { IMAP_BATCH_BYTES: "1000" })).batchBytes).toBe(1000)
      expect((yield* lineFor(IntakeConfig, { IMAP_BATCH_BYTES: "-1" }))?.line).toMatch(/^IMAP_BATCH_BYTES is invalid/)
    }))

  it.effect("takes Kafka brokers as host:port pairs, blank as none, and names a list that is not", () =>
    Effect.gen(function*() {
      expect(yield* load(kafkaBrokers, { KAFKA_BROKERS: " kafka-1:9092, 10.0.0.7:9093,[::1]:9094 " })).toEqual(Option.some(["kafka-1:9092", "10.0.0.7:9093", "[::1]:9094"]))
      expect(yield* load(kafkaBrokers, { KAFKA_BROKERS: "" })).toEqual(Option.some([]))
      expect(yield* load(kafkaBrokers, {})).toEqual(Option.none())
      for (const bad of ["localhost", ":", "kafka:99999", "kafka:0", "kafka:9092,kafka 2:9092", "::1:9092"]) {
        expect((yield* lineFor(kafkaBrokers, { KAFKA_BROKERS: bad }))?.line, bad).toMatch(/^KAFKA_BROKERS is invalid \(Expected comma-separated host:port pairs/)
      }
    }))

  it.effect("takes URLs with their http:// or https://, and names one without, never repeating it", () =>
    Effect.gen(function*() {
      expect((yield* load(LlmConfig, { LLM_BASE_URL: " https://user:secret@llm.test/v1 " })).baseUrl).toBe("https://user:secret@llm.test/v1")
      expect((yield* load(TelemetryConfig, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" })).endpoint).toEqual(Option.some("http://127.0.0.1:4318"))
      const cases: ReadonlyArray<readonly [Config.Config<unknown>, string, string]> = [
        [LlmConfig, "LLM_BASE_URL", "localhost:8000/v1"],
        [LlmConfig, "LLM_BASE_URL", "ftp://user:secret@llm.test/v1"],
        [TelemetryConfig, "OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"],
        [OAuth2Config, "OAUTH2_TOKEN_URL", "login.example.com/token"]
      ]
      for (const [config, name, value] of cases) {
        const line = (yield* lineFor(config, { [name]: value }))?.line
        expect(line, value).toMatch(new RegExp(`^${name} is invalid \\(Expected an http:// or https:// URL`))
        expect(line).not.toContain("secret")
      }
    }))

  it.effect("names a malformed variable and what it expects", () =>
    Effect.gen(function*() {
      const port = yield* lineFor(ImapConfig, { GMAIL_SENDER_EMAIL: "a@b.test", GMAIL_SENDER_PASSWORD: "x", IMAP_PORT: "nine" })
      expect(port?.line).toMatch(/^IMAP_PORT is invalid/)
      const interval = yield* lineFor(IntakeConfig, { IMAP_POLL_INTERVAL: "0" })
      expect(interval?.line).toMatch(/^IMAP_POLL_INTERVAL is invalid \(Expected a whole number of seconds above 0\)/)
      const backfill = yield* lineFor(IntakeConfig, { IMAP_BACKFILL: "everything" })
      expect(backfill?.line).toMatch(/^IMAP_BACKFILL is invalid/)
      const from = yield* lineFor(ReplyConfig, { REPLY_FROM: "help desk" })
      expect(from?.line).toMatch(/^REPLY_FROM is invalid \(Expected an email address, e\.g\. help@example\.com\)/)
      const aliases = yield* lineFor(ReplyConfig, { OWN_ADDRESSES: "help@example.com, billing" })
      expect(aliases?.line).toMatch(/^OWN_ADDRESSES is invalid \(Expected comma-separated email addresses\)/)
      expect((yield* load(ReplyConfig, { OWN_ADDRESSES: " Help@Example.com,, billing@example.com " })).ownAddresses).toEqual(["help@example.com", "billing@example.com"])
    }))

  it.effect("an empty password is refused", () =>
    Effect.gen(function*() {
      const fatal = yield* lineFor(ImapConfig, { GMAIL_SENDER_EMAIL: "a@b.test", GMAIL_SENDER_PASSWORD: "    " })
      expect(fatal?.line).toMatch(/^GMAIL_SENDER_PASSWORD is invalid \(Expected a non-empty password\)/)
    }))
})
