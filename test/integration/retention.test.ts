import { randomUUID } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schedule, TestClock, TestServices } from "effect"
import { dropExpiredRaw, runRetention } from "../../src/log/Retention.js"
import { Imap, MemoryMailbox } from "../../src/mailbox/Imap.js"
import type { Backend } from "../support/stack.js"
import { sqlPipeline } from "../support/stack.js"
import { configLayer } from "../unit/layers.js"

/** A raw mail stored `age` days ago; its bytes are `size` long. */
const storeRaw = (sha256: string, age: number, size = 100) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`
      INSERT INTO raw_messages (sha256, size, headers_only, bytes, stored_at)
      VALUES (${sha256}, ${size}, false, ${Buffer.alloc(size, 120)}, now() - make_interval(days => ${age}))
    `)

/** An intake event `age` days old that refers to the raw mail `sha256`. */
const recordEvent = (sha256: string, age: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`
      INSERT INTO events (id, type, mailbox, occurred_at, data)
      VALUES (${randomUUID()}, 'EmailDuplicate', 'INBOX', now() - make_interval(days => ${age}), ${
      JSON.stringify({ _tag: "EmailDuplicate", messageId: `<${sha256}@c.test>`, duplicateOf: randomUUID(), ticketId: null, rawSha256: sha256, size: 100 })
    }::jsonb)
    `)

const rawLeft = Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ sha256: string }>`SELECT sha256 FROM raw_messages ORDER BY sha256`).pipe(
  Effect.map((rows) => rows.map((row) => row.sha256))
)

const events = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT seq, id, type, occurred_at, data FROM events ORDER BY seq`)

/** Real time for a database the test clock does not move. */
const eventually = <A, E, R>(check: Effect.Effect<A, E, R>) =>
  TestServices.provideLive(Effect.retry(check, Schedule.spaced("20 millis").pipe(Schedule.intersect(Schedule.recurs(250)))))

const fixture = Effect.gen(function*() {
  yield* storeRaw("old-unreferenced", 40)
  yield* recordEvent("old-unreferenced", 40)
  yield* storeRaw("old-orphan", 45, 250)
  yield* storeRaw("old-dup-long-ago", 400)
  yield* recordEvent("old-dup-long-ago", 400)
  yield* recordEvent("old-dup-long-ago", 200)
  yield* storeRaw("old-dup-yesterday", 400)
  yield* recordEvent("old-dup-yesterday", 400)
  yield* recordEvent("old-dup-yesterday", 1)
  yield* storeRaw("recent", 5)
  yield* recordEvent("recent", 5)
})

describe.each<Backend>(["postgres", "pglite"])("RETENTION_DAYS on %s", (backend) => {
  const database = (label: string) => sqlPipeline(backend, label, Imap.Test(new MemoryMailbox()))

  it.scoped("drops raw mail older than N days that no recent event refers to, in batches, and leaves the log alone", () =>
    Effect.gen(function*() {
      yield* fixture
      const before = yield* events
      const dropped = yield* dropExpiredRaw(30, 2)
      expect(dropped).toEqual({ rows: 3, bytes: 100 + 250 + 100 })
      expect(yield* rawLeft).toEqual(["old-dup-yesterday", "recent"])
      expect(yield* events).toEqual(before)
      expect(yield* dropExpiredRaw(30, 2)).toEqual({ rows: 0, bytes: 0 })
    }).pipe(Effect.provide(database("retention_drop"))))

  it.scoped("keeps everything when RETENTION_DAYS is unset", () =>
    Effect.gen(function*() {
      yield* fixture
      const before = yield* events
      yield* runRetention.pipe(Effect.provide(configLayer()))
      expect((yield* rawLeft).length).toBe(5)
      expect(yield* events).toEqual(before)
    }).pipe(Effect.provide(database("retention_unset"))))

  it.scoped("runs at once, then every hour", () =>
    Effect.gen(function*() {
      yield* fixture
      const fiber = yield* Effect.fork(runRetention.pipe(Effect.provide(configLayer({ RETENTION_DAYS: "30" }))))
      yield* eventually(rawLeft.pipe(Effect.filterOrFail((left) => left.length === 2)))
      yield* storeRaw("aged-since", 31)
      yield* TestClock.adjust("59 minutes")
      expect(yield* rawLeft).toEqual(["aged-since", "old-dup-yesterday", "recent"])
      yield* TestClock.adjust("1 minute")
      yield* eventually(rawLeft.pipe(Effect.filterOrFail((left) => left.length === 2)))
      expect(yield* rawLeft).toEqual(["old-dup-yesterday", "recent"])
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(database("retention_schedule"))))
})
