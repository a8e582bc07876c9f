import { EventLog } from "../../src/log/EventLog.js"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Poller } from "../../src/mailbox/Poller.js"
import { Imap, MemoryMailbox } from "../../src/mailbox/Imap.js"
import { StateStore } from "../../src/log/StateStore.js"
import { TicketRepo } from "../../src/tickets/TicketRepo.js"
import { ReplyIntended } from "../../src/log/Event.js"
import { ReplyStore } from "../../src/replies/ReplyStore.js"
import type { Backend } from "../support/stack.js"
import { sqlPipeline } from "../support/stack.js"
import { mail } from "../unit/layers.js"

const once = Effect.flatMap(Poller, (poller) => poller.once).pipe(Effect.map(Option.getOrThrow))

const count = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: string }>`SELECT count(*) AS n FROM ${sql(table)}`).pipe(
    Effect.map((rows) => Number(rows[0]!.n))
  )

describe.each<Backend>(["postgres", "pglite"])("the SQL event log on %s", (backend) => {
  it.scoped("records events and projections in one transaction per batch, and refuses UPDATE and DELETE", () => {
    const mailbox = new MemoryMailbox()
    mailbox.append(mail({ messageId: "<a@c.test>", from: "Ada <ADA@Customer.test>", subject: "Help" }))
    mailbox.append(mail({ messageId: "<b@c.test>", inReplyTo: "<a@c.test>", from: "ada@customer.test", subject: "Re: Help" }))
    mailbox.append(mail({ messageId: "<a@c.test>" }))
    mailbox.append(mail({ from: null }))
    mailbox.append(mail({ messageId: null, text: "nul \u0000 byte and lone \ud800 surrogate" }))
    return Effect.gen(function*() {
      const summary = yield* once
      expect(summary).toMatchObject({ received: 3, ticketsCreated: 2, duplicates: 1, quarantined: 1 })
      expect(yield* count("events")).toBe(5)
      expect(yield* count("customers")).toBe(1)
      expect(yield* count("tickets")).toBe(2)
      expect(yield* count("messages")).toBe(3)
      expect(yield* count("raw_messages")).toBe(5)
      const sql = yield* SqlClient.SqlClient
      const [customer] = yield* sql<{ email: string; name: string }>`SELECT email, name FROM customers`
      expect(customer).toEqual({ email: "ada@customer.test", name: "Ada" })
      const texts = yield* sql<{ text: string }>`SELECT text FROM messages WHERE message_id IS NULL`
      expect(texts[0]!.text).toContain("nul  byte")
      const update = yield* Effect.either(sql`UPDATE events SET type = 'x'`)
      const remove = yield* Effect.either(sql`DELETE FROM events`)
      expect(update._tag).toBe("Left")
      expect(remove._tag).toBe("Left")
      expect(String(update._tag === "Left" && update.left.cause)).toContain("append-only")
      expect(yield* count("events")).toBe(5)
      const again = yield* once
      expect(again.found).toBe(0)
      const events = yield* Effect.flatMap(EventLog, (log) => log.read(0n, 100))
      expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((a, b) => (a < b ? -1 : 1)))
      expect(events.map((e) => e.type)).toEqual(["EmailReceived", "EmailReceived", "EmailDuplicate", "EmailQuarantined", "EmailReceived"])
    }).pipe(Effect.provide(sqlPipeline(backend, "store", Imap.Test(mailbox))))
  })

  it.scoped("skips every UID of a batch that is already recorded, the lowest and the highest too, and records the rest", () => {
    const mailbox = new MemoryMailbox()
    for (let i = 1; i <= 4; i++) mailbox.append(mail({ messageId: `<again-${i}@c.test>`, subject: `again ${i}` }))
    return Effect.gen(function*() {
      expect(yield* once).toMatchObject({ received: 4 })
      // A cursor behind the log (a gap filled by another instance meanwhile, a restored state table):
      // the next batch holds UIDs 1 to 4 again, every one of them recorded.
      const state = yield* StateStore
      const cursor = Option.getOrThrow(yield* state.cursor("INBOX"))
      yield* state.reset({ ...cursor, lastUid: 0, backfillTo: 0, seenUid: 0 })
      expect(yield* once).toMatchObject({ found: 4, received: 0, duplicates: 0, alreadyRecorded: 4 })
      expect(yield* count("events")).toBe(4)
      // UIDs 2 to 4 recorded, and a new mail, 5, above them.
      yield* state.reset({ ...cursor, lastUid: 1, backfillTo: 0, seenUid: 1 })
      mailbox.append(mail({ messageId: "<again-5@c.test>", subject: "again 5" }))
      expect(yield* once).toMatchObject({ found: 4, received: 1, duplicates: 0, alreadyRecorded: 3 })
      expect(yield* count("events")).toBe(5)
    }).pipe(Effect.provide(sqlPipeline(backend, "store_recorded_again", Imap.Test(mailbox))))
  })

  it.scoped("knows which Message-IDs it holds in a mailbox, for the responder's look for a person's answer", () => {
    const mailbox = new MemoryMailbox()
    mailbox.append(mail({ messageId: "<known-1@c.test>" }))
    mailbox.append(mail({ messageId: "<known-2@c.test>", from: "bob@customer.test" }))
    return Effect.gen(function*() {
      yield* once
      const tickets = yield* TicketRepo
      const asked = ["<known-1@c.test>", "<person@example.com>", "<known-2@c.test>"]
      expect([...(yield* tickets.knownMessageIds("INBOX", asked))].sort()).toEqual(["<known-1@c.test>", "<known-2@c.test>"])
      expect(yield* tickets.knownMessageIds("Other", asked)).toEqual(new Set())
      expect(yield* tickets.knownMessageIds("INBOX", [])).toEqual(new Set())
    }).pipe(Effect.provide(sqlPipeline(backend, "store_known_ids", Imap.Test(mailbox))))
  })

  it.scoped("commits a batch whose rows need more than one statement's 65,535 parameters (long Cc lists) instead of failing at every retry", () => {
    const mailbox = new MemoryMailbox()
    const cc = Array.from({ length: 600 }, (_, i) => `guest${i}@crowd.test`).join(", ")
    for (let i = 0; i < 70; i++) mailbox.append(mail({ from: `sender${i}@customer.test`, subject: `crowd ${i}`, headers: { Cc: cc } }))
    return Effect.gen(function*() {
      const summary = yield* once
      expect(summary).toMatchObject({ received: 70, ticketsCreated: 70 })
      expect(yield* count("events")).toBe(70)
      expect(yield* count("messages")).toBe(70)
      // About 500 participants a ticket (a mail's addresses are capped there), 2 parameters a row:
      // more than one statement may carry.
      expect(yield* count("ticket_participants")).toBeGreaterThan(33_000)
    }).pipe(Effect.provide(sqlPipeline(backend, "crowd", Imap.Test(mailbox))))
  })

  it.scoped("keeps the leader's mailbox_health row when a standby says it stands by", () =>
    Effect.gen(function*() {
      const state = yield* StateStore
      const row = Effect.map(state.health, (all) => all.find((h) => h.mailbox === "shared")!)
      yield* state.reportHealth("shared", "host/1", { _tag: "Login" })
      yield* state.reportHealth("shared", "host/2", { _tag: "State", state: "standby" })
      expect(yield* row).toMatchObject({ instance: "host/1", state: "connected" })
      // Once the leader says it stopped, or the standby leads, the row is the standby's.
      yield* state.reportHealth("shared", "host/1", { _tag: "State", state: "stopped" })
      yield* state.reportHealth("shared", "host/2", { _tag: "State", state: "standby" })
      expect(yield* row).toMatchObject({ instance: "host/2", state: "standby" })
      yield* state.reportHealth("shared", "host/2", { _tag: "Login" })
      expect(yield* row).toMatchObject({ instance: "host/2", state: "connected" })
    }).pipe(Effect.provide(sqlPipeline(backend, "health_rows", Imap.Test(new MemoryMailbox())))))

  it.scoped("plans a commit's statements generically, and only within its transaction", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const repo = yield* TicketRepo
      yield* (yield* StateStore).reset({ mailbox: "INBOX", uidValidity: 1, lastUid: 0, backfillTo: 0, seenUid: 0 })
      const mode = sql<{ plan_cache_mode: string }>`SHOW plan_cache_mode`.pipe(Effect.map((rows) => rows[0]!.plan_cache_mode))
      const during = yield* sql.withTransaction(
        repo.commit({ mailbox: "INBOX", uidValidity: 1, items: [], cursorTo: 0 }).pipe(Effect.zipRight(mode))
      )
      expect(during).toBe("force_generic_plan")
      // PGlite has one connection, so this reads the very session the commit ran on.
      expect(yield* mode).toBe("auto")
    }).pipe(Effect.provide(sqlPipeline(backend, "store_plans", Imap.Test(new MemoryMailbox())))))

  it.scoped("takes the append lock and the generic plan in the round trip that begins the transaction", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const log = yield* EventLog
      const held = yield* log.transaction(() =>
        sql<{ locks: string; mode: string }>`
          SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
            AND ((classid::bigint << 32) | objid::bigint) = ${0x6d61696c}) AS locks, current_setting('plan_cache_mode') AS mode
        `.pipe(Effect.map((rows) => rows[0]!))
      )
      expect({ locks: Number(held.locks), mode: held.mode }).toEqual({ locks: 1, mode: "force_generic_plan" })
      const after = yield* sql<{ n: string }>`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`
      expect(Number(after[0]!.n)).toBe(0)
    }).pipe(Effect.provide(sqlPipeline(backend, "store_lock", Imap.Test(new MemoryMailbox())))))

  it.scoped("hands a read sent with the transaction's first round trip to its work: after the lock, in the same transaction", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const log = yield* EventLog
      const [read, work] = yield* log.transactionAfter(
        `SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
          AND ((classid::bigint << 32) | objid::bigint) = ${0x6d61696c}) AS locks, txid_current()::text AS tx`,
        (_append, rows: ReadonlyArray<{ locks: string; tx: string }>) =>
          Effect.map(sql<{ tx: string }>`SELECT txid_current()::text AS tx`, (now) => [rows, now[0]!.tx] as const)
      )
      expect(read.map((row) => ({ locks: Number(row.locks), sameTransaction: row.tx === work }))).toEqual([{ locks: 1, sameTransaction: true }])
    }).pipe(Effect.provide(sqlPipeline(backend, "store_after", Imap.Test(new MemoryMailbox())))))

  it.scoped("writes only UUIDs into the erasure check's SQL: an id of any other shape goes as a parameter, is refused, and records nothing", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const store = yield* ReplyStore
      const hostile = "00000000-0000-0000-0000-000000000000'::uuid)) AS keys; DROP TABLE events; --"
      const refused = yield* Effect.flip(store.intend("INBOX", new ReplyIntended({
        emailEventId: crypto.randomUUID(),
        ticketId: crypto.randomUUID(),
        customerId: hostile,
        messageId: "<answer-1@example.com>",
        from: "support@example.com",
        to: { address: "ada@customer.test", name: "Ada" },
        subject: "Re: Help",
        inReplyTo: null,
        references: [],
        text: "Here is how.",
        agent: "test",
        model: null
      })))
      // Refused by the cast, as a parameter: written in, the same text would have run a statement of its own.
      expect(refused._tag).toBe("SqlError")
      expect(String((refused as { readonly cause?: unknown }).cause)).toMatch(/invalid input syntax for type uuid/)
      const [left] = yield* sql<{ events: string | null; intents: string }>`
        SELECT to_regclass('events')::text AS events, (SELECT count(*) FROM events WHERE type = 'ReplyIntended')::text AS intents`
      expect(left).toEqual({ events: "events", intents: "0" })
    }).pipe(Effect.provide(sqlPipeline(backend, "store_hostile_id", Imap.Test(new MemoryMailbox())))))

  it.scoped("seals each customer's events under one key across batches: recorded senders, new ones and a quarantined From alike", () => {
    const mailbox = new MemoryMailbox()
    mailbox.append(mail({ from: "Ada <ada@customer.test>", subject: "first" }))
    mailbox.append(mail({ from: "bob@other.test", subject: "bob's" }))
    return Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      expect(yield* once).toMatchObject({ received: 2 })
      mailbox.append(mail({ from: "Ada <ada@customer.test>", subject: "second" }))
      mailbox.append(mail({ from: "carol@third.test", subject: "carol's" }))
      // Over MAX_MESSAGE_BYTES: quarantined, sealed under the key of the address in its From header.
      mailbox.append(mail({ from: "Bob <bob@other.test>", subject: "scans", text: "x".repeat(5_000) }))
      expect(yield* once).toMatchObject({ received: 2, quarantined: 1 })
      const keys = yield* sql<{ customer_id: string; n: string }>`
        SELECT customer_id, count(*) AS n FROM customer_keys WHERE key IS NOT NULL GROUP BY customer_id`
      expect(keys.map((row) => Number(row.n))).toEqual([1, 1, 1])
      const sealedUnder = yield* sql<{ key_id: string; owner: string }>`
        SELECT e.key_id, k.customer_id AS owner FROM events e JOIN customer_keys k ON k.id = e.key_id ORDER BY e.seq`
      expect(sealedUnder).toHaveLength(5)
      expect(new Set(sealedUnder.map((row) => row.owner)).size).toBe(3)
      const events = yield* Effect.flatMap(EventLog, (log) => log.read(0n, 100))
      expect(events.map((e) => [e.type, e.erased ?? false])).toEqual([
        ["EmailReceived", false], ["EmailReceived", false], ["EmailReceived", false], ["EmailReceived", false], ["EmailQuarantined", false]
      ])
      const from = events.map((e) => e.data._tag === "EmailReceived" ? e.data.from.address : e.data._tag === "EmailQuarantined" ? e.data.headers.from : null)
      expect(from).toEqual(["ada@customer.test", "bob@other.test", "ada@customer.test", "carol@third.test", "Bob <bob@other.test>"])
      // The quarantined mail and Bob's own share his key; Ada's two mails share hers.
      expect(sealedUnder[4]!.key_id).toBe(sealedUnder[1]!.key_id)
      expect(sealedUnder[2]!.key_id).toBe(sealedUnder[0]!.key_id)
    }).pipe(Effect.provide(sqlPipeline(backend, "store_keys", Imap.Test(mailbox), { MAX_MESSAGE_BYTES: "4000" })))
  })

  it.scoped("compresses payloads and bodies with lz4 where the server has it, and migrates where it has not", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const columns = yield* sql<{ name: string; method: string }>`
        SELECT attrelid::regclass || '.' || attname AS name, attcompression AS method FROM pg_attribute
        WHERE (attrelid, attname) IN (('events'::regclass, 'data'), ('messages'::regclass, 'text'), ('messages'::regclass, 'html'))
        ORDER BY name`
      const [lz4] = yield* sql<{ available: boolean }>`
        SELECT count(*) > 0 AS available FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)`
      expect(columns.map((c) => c.name)).toEqual(["events.data", "messages.html", "messages.text"])
      expect(columns.map((c) => c.method)).toEqual(Array(3).fill(lz4!.available ? "l" : ""))
      if (backend === "postgres") expect(lz4!.available).toBe(true)
    }).pipe(Effect.provide(sqlPipeline(backend, "store_lz4", Imap.Test(new MemoryMailbox())))))
})
