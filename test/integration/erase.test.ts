import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import { EventLog } from "../../src/log/EventLog.js"
import { Imap, MemoryMailbox } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { eraseCustomer } from "../../src/tickets/Erase.js"
import type { CustomerExport } from "../../src/tickets/Export.js"
import { replayProjections } from "../../src/tickets/Replay.js"
import { runCli } from "../support/cli.js"
import { mail } from "../support/mails.js"
import { createDatabase, query } from "../support/postgres.js"
import { ofType, ReplyServers, replyPipeline, withReplyServers } from "../support/replyStack.js"
import type { Backend } from "../support/stack.js"
import { sqlPipeline } from "../support/stack.js"
import { mail as memoryMail } from "../unit/layers.js"

/** What Ada wrote, and what must be nowhere once she is erased: not in a table, not in raw mail. */
const ADA = ["ada@customer.test", "Ada Lovelace", "ADA-SECRET-SUBJECT", "ADA-SECRET-BODY", "ADA-HUGE-ATTACHMENT"]

/** Every table that holds `needle`, as text or (bytea columns) as bytes; through the pipeline's own SqlClient, as PGlite has no server to connect to. */
const holdersIn = (needle: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const tables = yield* sql<{ table_name: string }>`
      SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
    const found: Array<string> = []
    for (const { table_name: table } of tables) {
      const bytea = yield* sql<{ column_name: string }>`
        SELECT column_name FROM information_schema.columns WHERE table_name = ${table} AND data_type = 'bytea'`
      const conditions = [
        sql`t::text ILIKE ${`%${needle}%`}`,
        ...bytea.map((c) => sql`position(convert_to(${needle}, 'UTF8') in coalesce(${sql(c.column_name)}, ''::bytea)) > 0`)
      ]
      const [row] = yield* sql<{ n: string }>`SELECT count(*) AS n FROM ${sql(table)} t WHERE ${sql.or(conditions)}`
      if (Number(row!.n) > 0) found.push(table)
    }
    return found
  })

const count = async (url: string, statement: string) => Number((await query<{ n: string }>(url, statement))[0]!.n)

layer(ReplyServers.layer(), { excludeTestServices: true })((it) => {
  describe("mailroom erase --customer", () => {
    it.effect("leaves nothing of the customer readable in any table, keeps everyone else's, and the log only grows", () => withReplyServers(async (servers) => {
      const db = await createDatabase("erase")
      const p = await replyPipeline(servers, "erase", { DATABASE_URL: db.url, AGENT: "knowledge", MAX_MESSAGE_BYTES: "60000" })
      try {
        await servers.dovecot.append([
          mail({
            authenticated: true,
            from: "Ada Lovelace <ada@customer.test>",
            messageId: "<ada-1@customer.test>",
            headers: { Cc: "Bob Builder <bob@other.test>" },
            subject: "ADA-SECRET-SUBJECT: my card was charged twice",
            text: "ADA-SECRET-BODY. Please refund the second charge."
          }),
          // Bob was put on Ada's ticket by her Cc: his answer joins it.
          mail({
            authenticated: true,
            from: "Bob Builder <bob@other.test>",
            messageId: "<bob-1@other.test>",
            inReplyTo: "<ada-1@customer.test>",
            subject: "Re: ADA-SECRET-SUBJECT: my card was charged twice",
            text: "Bob here, I can confirm."
          }),
          mail({ authenticated: true, from: "Bob Builder <bob@other.test>", messageId: "<bob-2@other.test>", subject: "BOB-OWN-TICKET", text: "Bob's own question." }),
          // Over MAX_MESSAGE_BYTES: quarantined, with Ada's From and subject in its header glimpse.
          mail({
            from: "Ada Lovelace <ada@customer.test>",
            messageId: "<ada-2@customer.test>",
            subject: "ADA-SECRET-SUBJECT scans",
            text: `ADA-HUGE-ATTACHMENT ${"x".repeat(80_000)}`
          })
        ])
        await p.ingest()
        expect((await p.reply()).sent).toBeGreaterThanOrEqual(1)
        const eventsBefore = await count(db.url, "SELECT count(*) AS n FROM events")
        for (const needle of ADA.slice(0, 3)) expect((await p.runtime.runPromise(holdersIn(needle))).length, needle).toBeGreaterThan(0)
        // Sealed from the start: the events table itself never held Ada's words in clear.
        expect(await count(db.url, "SELECT count(*) AS n FROM events WHERE data::text ILIKE '%ada@customer.test%' OR data::text LIKE '%ADA-SECRET%'")).toBe(0)

        // The right of access first: everything of hers, readable, as JSON.
        const exported = await runCli(["export", "--customer", "Ada@Customer.test", "--raw"], servers.env({ DATABASE_URL: db.url }))
        expect(exported.code, exported.stderr).toBe(0)
        expect(exported.stderr.trim()).toMatch(
          /^Exported ada@customer\.test: 1 ticket\(s\), 4 message\(s\), \d+ event\(s\), 3 raw mail\(s\); 2 message\(s\) from or to other people, marked "others": read them before handing this over$/
        )
        const access = JSON.parse(exported.stdout) as CustomerExport
        expect(access.customer).toMatchObject({ email: "ada@customer.test", name: "Ada Lovelace" })
        expect(access.tickets).toHaveLength(1)
        // Her mail, Bob's answer on her ticket, and mailroom's answers to both.
        expect(access.tickets[0]!.messages.map((m) => `${m.direction} ${m.from}`).sort()).toEqual([
          "inbound ada@customer.test",
          "inbound bob@other.test",
          `outbound ${servers.dovecot.user}`,
          `outbound ${servers.dovecot.user}`
        ].sort())
        expect(access.tickets[0]!.messages.find((m) => m.from === "ada@customer.test")!.text).toContain("ADA-SECRET-BODY")
        // Bob's words on her ticket, and mailroom's answer to him, are marked as others': hers are not.
        expect(access.tickets[0]!.messages.filter((m) => m.others).map((m) => `${m.direction} ${m.from} ${m.to}`).sort()).toEqual([
          expect.stringMatching(/^inbound bob@other\.test /),
          `outbound ${servers.dovecot.user} bob@other.test`
        ])
        expect(access.events.filter((e) => e.others).map((e) => e.type)).toEqual(expect.arrayContaining(["EmailReceived"]))
        expect(JSON.stringify(access.events.filter((e) => !e.others))).not.toContain("Bob here")
        expect(access.rawMail.filter((r) => r.others).map((r) => Buffer.from(r.base64, "base64").toString("latin1"))).toEqual([expect.stringContaining("Bob here")])
        expect(access.events.map((e) => e.type)).toEqual(expect.arrayContaining(["EmailReceived", "EmailQuarantined", "ReplyIntended", "ReplySent"]))
        expect(access.events.every((e) => !e.erased)).toBe(true)
        expect(JSON.stringify(access.events)).toContain("ADA-SECRET-SUBJECT")
        expect(access.rawMail.map((r) => Buffer.from(r.base64, "base64").toString("latin1")).some((raw) => raw.includes("ADA-SECRET-BODY"))).toBe(true)
        expect(access.rawMail.filter((r) => r.headersOnly)).toHaveLength(1)

        const run = await runCli(["erase", "--customer", "Ada@Customer.test"], servers.env({ DATABASE_URL: db.url }))
        expect(run.code, run.stderr).toBe(0)
        expect(run.stdout).toContain("Erased ada@customer.test")
        // Her ticket held her mail, Bob's answer in it and mailroom's answers to both; raw: those two mails and the quarantined one.
        expect(run.stdout).toMatch(/1 ticket\(s\) and 4 message\(s\) deleted, 3 raw mail\(s\) deleted, 1 key\(s\) destroyed/)

        for (const needle of ADA) expect(await p.runtime.runPromise(holdersIn(needle)), needle).toEqual([])
        // Everything else stays: Bob's own ticket and mail, every event (one more: CustomerErased).
        expect(await count(db.url, "SELECT count(*) AS n FROM tickets WHERE subject = 'BOB-OWN-TICKET'")).toBe(1)
        expect(await count(db.url, "SELECT count(*) AS n FROM customers WHERE email = 'bob@other.test'")).toBe(1)
        expect(await count(db.url, "SELECT count(*) AS n FROM events")).toBe(eventsBefore + 1)

        const events = await p.events()
        const erased = events.filter((e) => e.erased)
        expect(erased.map((e) => e.type).sort()).toEqual(["EmailQuarantined", "EmailReceived", "ReplyIntended", "ReplySent"])
        expect(JSON.stringify(erased.map((e) => e.data))).not.toMatch(/ada@customer\.test|ADA-SECRET|Lovelace/)
        // Bob's answer on Ada's ticket is his: still readable in the log, though its ticket is gone from the projections.
        expect(ofType(events, "EmailReceived").filter((e) => e.from.address === "bob@other.test")).toHaveLength(2)
        const [customerErased] = ofType(events, "CustomerErased")
        expect(customerErased).toMatchObject({ keysDestroyed: 1, rawMessagesDeleted: 3, messagesDeleted: 4, unsealedEvents: 0 })
        expect(customerErased!.ticketIds).toHaveLength(1)

        // Once erased, an export holds nothing of hers: no customer, no ticket, the events read as erased.
        const afterwards = JSON.parse((await runCli(["export", "--customer", "ada@customer.test", "--raw"], servers.env({ DATABASE_URL: db.url }))).stdout) as CustomerExport
        expect(afterwards).toMatchObject({ customer: null, tickets: [], elsewhere: [], rawMail: [] })
        expect(afterwards.events.filter((e) => e.erased).map((e) => e.type).sort()).toEqual(["EmailQuarantined", "EmailReceived", "ReplyIntended", "ReplySent"])
        expect(JSON.stringify(afterwards.events)).not.toMatch(/ADA-SECRET|Lovelace/)

        // Rebuilding from the log gives what the live tables hold: the erasure is part of the log.
        const check = await p.runtime.runPromise(replayProjections({ check: true }))
        expect(check.tables.filter((t) => t.differing > 0)).toEqual([])

        // Her next mail opens a customer and a ticket of its own, readable as any other.
        await servers.dovecot.append([
          mail({ authenticated: true, from: "Ada Lovelace <ada@customer.test>", messageId: "<ada-3@customer.test>", inReplyTo: "<ada-1@customer.test>", subject: "Hello again" })
        ])
        await p.ingest()
        const after = await p.events()
        const again = ofType(after, "EmailReceived").at(-1)!
        expect(again).toMatchObject({ subject: "Hello again", newTicket: true, linkedTicketId: null })
        expect(after.at(-1)!.erased).toBeUndefined()
        expect(await count(db.url, "SELECT count(*) AS n FROM customers WHERE email = 'ada@customer.test'")).toBe(1)
        expect((await p.runtime.runPromise(replayProjections({ check: true }))).equal).toBe(true)
      } finally {
        await p.runtime.dispose()
        await db.drop()
      }
    }))

    it.effect("neither records nor sends an answer to a customer erased while the model was writing it", () => withReplyServers(async (servers) => {
      const db = await createDatabase("erase_meanwhile")
      const p = await replyPipeline(servers, "erase_meanwhile", { DATABASE_URL: db.url })
      const sentBefore = servers.sink.messages.length
      try {
        await servers.dovecot.append([
          mail({ authenticated: true, from: "Ada Lovelace <ada@customer.test>", messageId: "<ada-m@customer.test>", subject: "ADA-MEANWHILE-SUBJECT", text: "ADA-MEANWHILE-BODY" })
        ])
        await p.ingest()
        // The model takes its time; meanwhile a person runs `mailroom erase` for Ada.
        let erasedMeanwhile = false
        servers.llm.setResponder(async () => {
          await p.runtime.runPromise(eraseCustomer("ada@customer.test"))
          erasedMeanwhile = true
          return "Hello Ada, ADA-MEANWHILE-ANSWER: use Forgot password on the sign-in page."
        })
        const summary = await p.reply()
        expect(erasedMeanwhile).toBe(true)
        expect(summary).toEqual({ sent: 0, drafted: 0, skipped: 1, failed: 0 })
        expect(servers.sink.messages.length).toBe(sentBefore)
        const events = await p.events()
        expect(events.map((e) => e.type)).toEqual(["EmailReceived", "CustomerErased"])
        // No key was made anew to seal an answer with: nothing of Ada's is readable anywhere.
        expect(await count(db.url, "SELECT count(*) AS n FROM customer_keys WHERE key IS NOT NULL")).toBe(0)
        for (const needle of ["ada@customer.test", "Lovelace", "ADA-MEANWHILE"]) {
          expect(await p.runtime.runPromise(holdersIn(needle)), needle).toEqual([])
        }
        // Nothing is left to answer on the next run either.
        expect(await p.reply()).toEqual({ sent: 0, drafted: 0, skipped: 0, failed: 0 })
      } finally {
        servers.llm.setResponder(() => "We have your message and will follow up.")
        await p.runtime.dispose()
        await db.drop()
      }
    }))

    it.effect("records nothing of an answer whose customer was erased while it went out, and goes on", () => withReplyServers(async (servers) => {
      const db = await createDatabase("erase_sending")
      const p = await replyPipeline(servers, "erase_sending", { DATABASE_URL: db.url })
      const sentBefore = servers.sink.messages.length
      try {
        await servers.dovecot.append([
          mail({ authenticated: true, from: "Ada Lovelace <ada@customer.test>", messageId: "<ada-s@customer.test>", subject: "ADA-SENDING-SUBJECT", text: "ADA-SENDING-BODY" }),
          mail({ authenticated: true, from: "Bob <bob@customer.test>", messageId: "<bob-s@customer.test>", subject: "How do I reset my password?" })
        ])
        await p.ingest()
        // Ada's answer is on the wire when a person runs `mailroom erase` for her.
        let erasedWhileSending = false
        servers.sink.beforeAccepting(async () => {
          if (erasedWhileSending) return
          erasedWhileSending = true
          await p.runtime.runPromise(eraseCustomer("ada@customer.test"))
        })
        const summary = await p.reply()
        expect(erasedWhileSending).toBe(true)
        // Both answers went out (an answer on the wire cannot be called back); Bob's is recorded.
        expect(servers.sink.messages.length).toBe(sentBefore + 2)
        expect(summary).toMatchObject({ sent: 2, failed: 0 })
        const events = await p.events()
        expect(ofType(events, "ReplySent")).toHaveLength(1)
        expect(ofType(events, "ReplySent")[0]).toMatchObject({ to: "bob@customer.test" })
        // No key was made anew to seal Ada's ReplySent with (Bob's is the one live key): nothing of
        // Ada's is readable anywhere.
        expect(await count(db.url, "SELECT count(*) AS n FROM customer_keys WHERE key IS NOT NULL")).toBe(1)
        for (const needle of ["ada@customer.test", "Lovelace", "ADA-SENDING"]) {
          expect(await p.runtime.runPromise(holdersIn(needle)), needle).toEqual([])
        }
        expect(await p.reply()).toEqual({ sent: 0, drafted: 0, skipped: 0, failed: 0 })
      } finally {
        servers.sink.beforeAccepting(undefined)
        await p.runtime.dispose()
        await db.drop()
      }
    }))

    it.effect("seals under MAILROOM_SECRET_KEY once it is set, and refuses to start with another key", () => withReplyServers(async (servers) => {
      const db = await createDatabase("erase_key")
      const env = (extra: Record<string, string> = {}) => servers.env({ DATABASE_URL: db.url, AGENT: "off", IMAP_BACKFILL: "all", ...extra })
      try {
        await servers.dovecot.append([mail({ from: "Cy <cy@customer.test>", subject: "CY-SECRET before the key" })])
        expect((await runCli(["--once"], env())).code).toBe(0)
        expect(await count(db.url, "SELECT count(*) AS n FROM mailroom_secrets WHERE name = 'root'")).toBe(1)
        const keys = await count(db.url, "SELECT count(*) AS n FROM customer_keys WHERE key IS NOT NULL")
        expect(keys).toBeGreaterThan(0)
        // Set later: the keys are wrapped again, the database's own root goes, and the mail still reads.
        const keyed = await runCli(["--once"], env({ MAILROOM_SECRET_KEY: "correct horse battery staple" }))
        expect(keyed.code, keyed.stderr).toBe(0)
        expect(keyed.stderr).toContain(`MAILROOM_SECRET_KEY now seals the ${keys} customer key(s)`)
        expect(await count(db.url, "SELECT count(*) AS n FROM mailroom_secrets WHERE name = 'root'")).toBe(0)
        const wrong = await runCli(["--once"], env({ MAILROOM_SECRET_KEY: "another key" }))
        expect(wrong.code).not.toBe(0)
        expect(wrong.stderr.trim().split("\n").at(-1)).toContain("MAILROOM_SECRET_KEY is not the key this database's customer keys were sealed with")
        const unset = await runCli(["--once"], env())
        expect(unset.code).not.toBe(0)
        const check = await runCli(["replay", "--check"], env({ MAILROOM_SECRET_KEY: "correct horse battery staple" }))
        expect(check.code, check.stdout + check.stderr).toBe(0)
        expect(check.stdout).toContain("The projections match the log")
      } finally {
        await db.drop()
      }
    }))
  })
})

describe.each<Backend>(["postgres", "pglite"])("erasure on %s", (backend) => {
  it.scoped("leaves the customer's address, name and words in no table, the log only grown, and a later mail opens a fresh customer", () => {
    const mailbox = new MemoryMailbox()
    mailbox.append(memoryMail({ from: "Grace Hopper <grace@navy.test>", subject: "GRACE-SECRET subject", text: "GRACE-BODY words", messageId: "<g1@navy.test>" }))
    mailbox.append(memoryMail({ from: "Grace Hopper <grace@navy.test>", subject: "Re: GRACE-SECRET subject", text: "more GRACE-BODY", inReplyTo: "<g1@navy.test>" }))
    mailbox.append(memoryMail({ from: "Alan <alan@other.test>", subject: "Alan's own", text: "hello" }))
    return Effect.gen(function*() {
      const once = Effect.flatMap(Poller, (poller) => poller.once).pipe(Effect.map(Option.getOrThrow))
      expect(yield* once).toMatchObject({ received: 3, ticketsCreated: 2 })
      const log = yield* EventLog
      const before = (yield* log.read(0n, 100)).length
      for (const needle of ["grace@navy.test", "Grace Hopper", "GRACE-SECRET", "GRACE-BODY"]) expect((yield* holdersIn(needle)).length, needle).toBeGreaterThan(0)
      const erased = yield* eraseCustomer("Grace@Navy.test")
      expect(erased).toMatchObject({ messagesDeleted: 2, rawMessagesDeleted: 2, keysDestroyed: 1 })
      for (const needle of ["grace@navy.test", "Grace Hopper", "GRACE-SECRET", "GRACE-BODY"]) expect(yield* holdersIn(needle), needle).toEqual([])
      const events = yield* log.read(0n, 100)
      expect(events).toHaveLength(before + 1)
      expect(events.filter((e) => e.erased).map((e) => e.type)).toEqual(["EmailReceived", "EmailReceived"])
      // Alan's mail is untouched: in his ticket, his message and its raw bytes (the log holds it sealed).
      expect([...(yield* holdersIn("Alan's own"))].sort()).toEqual(["messages", "raw_messages", "tickets"])

      mailbox.append(memoryMail({ from: "Grace Hopper <grace@navy.test>", subject: "Hello again", messageId: "<g3@navy.test>", inReplyTo: "<g1@navy.test>" }))
      expect(yield* once).toMatchObject({ received: 1, ticketsCreated: 1 })
      const sql = yield* SqlClient.SqlClient
      const customers = yield* sql<{ email: string }>`SELECT email FROM customers ORDER BY email`
      expect(customers.map((c) => c.email)).toEqual(["alan@other.test", "grace@navy.test"])
    }).pipe(Effect.provide(sqlPipeline(backend, `erase_${backend}`, Imap.Test(mailbox))))
  })
})
