import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { EventBusLive } from "../../src/bus/KafkaBus.js"
import { Relay } from "../../src/bus/Relay.js"
import { StoreLive } from "../../src/Layers.js"
import { runCli } from "../support/cli.js"
import type { RawRecord } from "../support/kafka.js"
import { consumeRecords, KafkaServer, topicSize } from "../support/kafka.js"
import { freshDatabase } from "../support/postgres.js"
import { baseEnv, configLayer, mail } from "../unit/layers.js"

type Raw = RawRecord

/** Reads a topic from the beginning, every partition, until `enough` says so. */
const consumeUntil = (topic: string, enough: (records: ReadonlyArray<Raw>) => boolean) =>
  Effect.flatMap(KafkaServer, (broker) => Effect.promise(() => consumeRecords(broker.brokers, topic, (record) => record, enough)))

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-erase-kafka-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const ADA = "ada@customer.test"
const BOB = "bob@other.test"
const SECRETS = ["ADA-SECRET-SUBJECT", "ADA-SECRET-BODY", "ADA-SECRET-FOLLOWUP", "ADA-SECRET-SECOND-TICKET"]

/** Whether a record's value carries anything of Ada's. */
const carriesAda = (record: Raw) =>
  record.value !== null && [ADA, ...SECRETS].some((needle) => record.value!.toLowerCase().includes(needle.toLowerCase()))

const isTombstone = (record: Raw) => record.value === null

/** The relay of `mailroom` (run and --once), in this process: Kafka over the database at `env`. */
const relayOnce = (env: Record<string, string>) =>
  Effect.flatMap(Relay, (relay) => relay.drain).pipe(
    Effect.provide(Relay.Default.pipe(Layer.provide(EventBusLive), Layer.provideMerge(StoreLive), Layer.provide(configLayer(env))))
  )

const onDatabase = <A extends object>(env: Record<string, string>, statement: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(statement)).pipe(
    Effect.provide(StoreLive.pipe(Layer.provide(configLayer(env))))
  )

/** A fresh database, a folder for the files to import, topics of their own, and the settings over them. */
const rig = (label: string, extra: Record<string, string>) =>
  Effect.gen(function*() {
    const broker = yield* KafkaServer
    const db = yield* freshDatabase(`${label}_kafka`)
    const dir = yield* tempDir
    const topics = { inbound: `email_inbound_${label}`, events: `mailroom.events.${label}` }
    const env: Record<string, string> = {
      ...baseEnv,
      DATABASE_URL: db.url,
      AGENT: "off",
      KAFKA_BROKERS: broker.brokers,
      KAFKA_TOPIC: topics.inbound,
      KAFKA_EVENTS_TOPIC: topics.events,
      KAFKA_DLQ_TOPIC: `mailroom.events.dlq.${label}`,
      ...extra
    }
    return { dir, env, topics }
  })

layer(KafkaServer.layer(), { excludeTestServices: true })("mailroom erase on Kafka", (it) => {
  it.scoped("tombstones every key that carried the erased customer's data, on both topics, and no other key", () =>
    Effect.gen(function*() {
      const { dir, env, topics } = yield* rig("erase", { MAILROOM_SECRET_KEY: "erase-kafka-test-secret-0123456789abcdef0123456789abcdef" })

      // Ada: a thread of two mails and a mail of its own (two tickets); Bob: one mail.
      yield* Effect.promise(async () => {
        await writeFile(join(dir, "1-ada.eml"), mail({
          from: `Ada Lovelace <${ADA}>`,
          messageId: "<ada-1@customer.test>",
          subject: "ADA-SECRET-SUBJECT",
          text: "ADA-SECRET-BODY: my account number is 12345"
        }))
        await writeFile(join(dir, "2-ada.eml"), mail({
          from: `Ada Lovelace <${ADA}>`,
          messageId: "<ada-2@customer.test>",
          inReplyTo: "<ada-1@customer.test>",
          references: ["<ada-1@customer.test>"],
          subject: "Re: ADA-SECRET-SUBJECT",
          text: "ADA-SECRET-FOLLOWUP: any news?"
        }))
        await writeFile(join(dir, "3-bob.eml"), mail({
          from: `Bob Other <${BOB}>`,
          messageId: "<bob-1@other.test>",
          subject: "BOB-SUBJECT",
          text: "BOB-BODY: hello"
        }))
        await writeFile(join(dir, "4-ada.eml"), mail({
          from: ADA,
          messageId: "<ada-3@customer.test>",
          subject: "ADA-SECRET-SECOND-TICKET",
          text: "Another question entirely."
        }))
      })

      const imported = yield* Effect.promise(() => runCli(["import", dir], env))
      expect(imported.code, imported.stderr).toBe(0)
      expect(imported.stdout).toContain("Imported 4: 4 received (3 new tickets)")
      expect(yield* relayOnce(env)).toBe(4)

      // Before: Ada's mail on both topics, keyed by her two tickets; Bob's by his one.
      const inboundBefore = yield* consumeUntil(topics.inbound, (records) => records.length >= 4)
      const eventsBefore = yield* consumeUntil(topics.events, (records) => records.length >= 4)
      expect(inboundBefore).toHaveLength(4)
      expect(eventsBefore).toHaveLength(4)
      const adaKeys = [...new Set(inboundBefore.filter(carriesAda).map((r) => r.key!))].sort()
      const bobKeys = [...new Set(inboundBefore.filter((r) => !carriesAda(r)).map((r) => r.key!))]
      expect(adaKeys).toHaveLength(2)
      expect(bobKeys).toHaveLength(1)
      expect(adaKeys).not.toContain(bobKeys[0])
      expect(inboundBefore.filter(carriesAda).map((r) => JSON.parse(r.value!).customer.email)).toEqual([ADA, ADA, ADA])
      expect([...new Set(eventsBefore.filter(carriesAda).map((r) => r.key!))].sort()).toEqual(adaKeys)
      expect(eventsBefore.filter((r) => !carriesAda(r)).map((r) => r.key)).toEqual(bobKeys)
      expect([...inboundBefore, ...eventsBefore].some(isTombstone)).toBe(false)

      // Erase Ada.
      const erased = yield* Effect.promise(() => runCli(["erase", "--customer", ADA], env))
      expect(erased.code, erased.stderr).toBe(0)
      expect(erased.stdout).toMatch(new RegExp(`^Erased ${ADA} \\(customer [^)]+\\): 2 ticket\\(s\\) and 3 message\\(s\\) deleted`))
      expect(yield* relayOnce(env)).toBe(1)

      const tombstonesOn = (records: ReadonlyArray<Raw>) => records.filter(isTombstone)
      const inbound = yield* consumeUntil(topics.inbound, (records) => tombstonesOn(records).length >= adaKeys.length)
      const events = yield* consumeUntil(topics.events, (records) =>
        tombstonesOn(records).length >= adaKeys.length && records.some((r) => r.headers.ce_type === "mailroom.CustomerErased"))
      // Nothing else arrived: 2 tombstones on email_inbound; 2 tombstones and the CustomerErased on mailroom.events.
      expect(yield* topicSize(topics.inbound)).toBe(4 + 2)
      expect(yield* topicSize(topics.events)).toBe(4 + 2 + 1)

      const erasure = events.find((r) => r.headers.ce_type === "mailroom.CustomerErased")!
      const erasedBy = erasure.headers.ce_id!
      const erasureData = JSON.parse(erasure.value!).data
      expect(erasureData._tag).toBe("CustomerErased")
      expect([...erasureData.ticketIds].sort()).toEqual(adaKeys)
      expect(erasureData).toMatchObject({ messagesDeleted: 3, unsealedEvents: 0 })
      expect(erasureData.keysDestroyed).toBeGreaterThanOrEqual(1)
      // The erasure record names Ada by nothing but keyed ids.
      expect(carriesAda(erasure)).toBe(false)
      expect(JSON.stringify(erasure.headers).toLowerCase()).not.toContain(ADA)
      expect(erasure.key ?? "").not.toContain(ADA)

      for (const records of [inbound, events]) {
        const tombstones = tombstonesOn(records)
        // One tombstone per erased ticket on each topic, and none for Bob's.
        expect(tombstones.map((t) => t.key).sort()).toEqual(adaKeys)
        expect(tombstones.every((t) => t.headers.mailroom_erased_by === erasedBy)).toBe(true)
        expect(records.filter((r) => bobKeys.includes(r.key!)).some(isTombstone)).toBe(false)
        // Every record with Ada's data has a tombstone after it under the same key (same key, same partition).
        const withAda = records.filter(carriesAda)
        expect(withAda).toHaveLength(3)
        for (const record of withAda) {
          const later = tombstones.filter((t) => t.key === record.key && t.partition === record.partition && t.offset > record.offset)
          expect(later, `${record.topic} ${record.key}@${record.offset}`).toHaveLength(1)
        }
        // What is not a tombstone and not the erasure: either Ada's (tombstoned above) or Bob's.
        for (const record of records.filter((r) => !isTombstone(r) && r !== erasure)) {
          expect(carriesAda(record) ? adaKeys : bobKeys).toContain(record.key)
        }
      }

      // The projection kept Bob and nothing of Ada.
      const customers = yield* onDatabase<{ email: string }>(env, "SELECT email FROM customers ORDER BY email")
      expect(customers.map((c) => c.email)).toEqual([BOB])
      const tickets = yield* onDatabase<{ id: string }>(env, "SELECT id FROM tickets")
      expect(tickets.map((t) => t.id)).toEqual(bobKeys)

      // The whole log relayed again from its start to a fresh pair of topics (as when a topic is rebuilt):
      // Ada's erased mail makes no email_inbound record, and nothing relayed carries her data.
      const rebuilt = { inbound: "email_inbound_erase_rebuilt", events: "mailroom.events.erase.rebuilt" }
      const rebuiltEnv = { ...env, KAFKA_TOPIC: rebuilt.inbound, KAFKA_EVENTS_TOPIC: rebuilt.events }
      yield* onDatabase(env, "DELETE FROM positions WHERE consumer = 'relay:kafka'")
      expect(yield* relayOnce(rebuiltEnv)).toBe(5)
      const inboundRebuilt = yield* consumeUntil(rebuilt.inbound, (records) => records.length >= 1 + 2)
      const eventsRebuilt = yield* consumeUntil(rebuilt.events, (records) => records.length >= 5 + 2)
      expect(yield* topicSize(rebuilt.inbound)).toBe(1 + 2)
      expect(yield* topicSize(rebuilt.events)).toBe(5 + 2)
      expect([...inboundRebuilt, ...eventsRebuilt].filter(carriesAda)).toEqual([])
      expect(inboundRebuilt.filter((r) => !isTombstone(r)).map((r) => [r.key, JSON.parse(r.value!).customer.email])).toEqual([[bobKeys[0], BOB]])
      // Ada's events are still there on mailroom.events, their personal fields read as erased.
      const adaEvents = eventsRebuilt.filter((r) => !isTombstone(r) && adaKeys.includes(r.key!))
      expect(adaEvents).toHaveLength(3)
      for (const record of adaEvents) {
        const data = JSON.parse(record.value!).data
        expect(data).toMatchObject({ _tag: "EmailReceived", subject: "", text: "", from: { address: "", name: "" } })
      }
    }), 180_000)

  it.scoped("tombstones the erased customer's quarantined mail by its own key, which no one else's record shares", () =>
    Effect.gen(function*() {
      const { dir, env, topics } = yield* rig("erase_q", { MAX_MESSAGE_BYTES: "2000" })
      yield* Effect.promise(async () => {
        await writeFile(join(dir, "1-ada-big.eml"), mail({ from: `Ada Lovelace <${ADA}>`, subject: "ADA-SECRET-SUBJECT scans", text: "x".repeat(5000) }))
        await writeFile(join(dir, "2-bob-big.eml"), mail({ from: `Bob <${BOB}>`, subject: "BOB-BIG", text: "y".repeat(5000) }))
      })
      const imported = yield* Effect.promise(() => runCli(["import", dir], env))
      expect(imported.stdout).toContain("Imported 2: 0 received (0 new tickets), 0 duplicates, 2 quarantined")
      expect(yield* relayOnce(env)).toBe(2)
      const erased = yield* Effect.promise(() => runCli(["erase", "--customer", ADA], env))
      expect(erased.code, erased.stderr).toBe(0)
      expect(yield* relayOnce(env)).toBe(1)
      const size = yield* topicSize(topics.events)
      const records = yield* consumeUntil(topics.events, (all) => all.length >= size)
      const adaRecord = records.find(carriesAda)
      const bobRecord = records.find((r) => r.value?.includes("BOB-BIG"))
      expect(adaRecord).toBeDefined()
      expect(adaRecord!.key).not.toBe(bobRecord!.key)
      const tombstones = records.filter(isTombstone)
      expect(tombstones.map((t) => t.key)).toEqual([adaRecord!.key])
      expect(tombstones[0]!.offset > adaRecord!.offset).toBe(true)
    }))
})
