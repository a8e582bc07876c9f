import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Cause, Effect, Option } from "effect"
import { describeFailure } from "../../src/cli/Fatal.js"
import { replayCommand } from "../../src/cli/Replay.js"
import { ReplyIntended, ReplySent } from "../../src/log/Event.js"
import { EventLog } from "../../src/log/EventLog.js"
import { Imap, MemoryMailbox } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { ReplyStore } from "../../src/replies/ReplyStore.js"
import { replayProjections } from "../../src/tickets/Replay.js"
import { PostgresServer } from "../support/postgres.js"
import type { Backend } from "../support/stack.js"
import { sqlPipeline } from "../support/stack.js"
import { mail } from "../unit/layers.js"

const once = Effect.flatMap(Poller, (poller) => poller.once).pipe(Effect.map(Option.getOrThrow))

const logState = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ n: string; max: string }>`SELECT count(*) AS n, max(seq) AS max FROM events`.pipe(Effect.map((rows) => rows[0]!)))

const indexNames = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ indexname: string }>`
    SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()
      AND tablename IN ('customers', 'tickets', 'messages', 'ticket_participants') ORDER BY indexname`.pipe(
    Effect.map((rows) => rows.map((row) => row.indexname))
  ))

const differing = (report: Effect.Effect.Success<ReturnType<typeof replayProjections>>) =>
  Object.fromEntries(report.tables.map((t) => [t.table, t.differing]))

/** Answers the first mail as the responder would: intent, then sent, through the store. */
const answer = Effect.gen(function*() {
  const log = yield* EventLog
  const store = yield* ReplyStore
  const first = (yield* log.read(0n, 100)).find((e) => e.data._tag === "EmailReceived")!
  if (first.data._tag !== "EmailReceived") throw new Error("unreachable")
  const base = { emailEventId: first.id, ticketId: first.data.ticketId, customerId: first.data.customerId }
  yield* store.intend("INBOX", new ReplyIntended({
    ...base,
    messageId: "<answer-1@example.com>",
    from: "support@example.com",
    to: { address: "ada@customer.test", name: "Ada" },
    subject: "Re: Help",
    inReplyTo: "<a@c.test>",
    references: ["<a@c.test>"],
    text: "Here is how.",
    agent: "test",
    model: null
  }))
  yield* Effect.sleep("5 millis")
  yield* store.append("INBOX", new ReplySent({
    ...base,
    messageId: "<answer-1@example.com>",
    to: "ada@customer.test",
    response: "250 OK",
    attempts: 1,
    foundInSent: false
  }))
})

for (const backend of ["postgres", "pglite"] satisfies Array<Backend>) {
  layer(PostgresServer.layer, { excludeTestServices: true })(`replay on ${backend}`, (it) => {
    it.scoped("rebuilds the projections from the log, finds tampering, fixes it, and leaves the log alone", () => Effect.gen(function*() {
      const server = yield* PostgresServer
      const mailbox = new MemoryMailbox()
      mailbox.append(mail({ messageId: "<a@c.test>", from: "Ada <ada@customer.test>", subject: "Help", headers: { Cc: "bob@customer.test" } }))
      mailbox.append(mail({ messageId: "<b@c.test>", inReplyTo: "<a@c.test>", from: "ada@customer.test", subject: "Re: Help" }))
      mailbox.append(mail({ messageId: "<a@c.test>" }))
      mailbox.append(mail({ messageId: "<e@evil.test>", inReplyTo: "<a@c.test>", from: "eve@evil.test", subject: "Re: Help" }))
      mailbox.append(mail({ from: null }))
      mailbox.append(mail({ messageId: "<c1@c.test>", from: "carol@other.test", subject: "No name yet" }))
      return yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        expect(yield* once).toMatchObject({ received: 4, duplicates: 1, quarantined: 1 })
        yield* Effect.sleep("5 millis")
        mailbox.append(mail({ messageId: "<bob1@c.test>", inReplyTo: "<a@c.test>", from: "bob@customer.test", subject: "Re: Help" }))
        mailbox.append(mail({ messageId: "<c2@c.test>", from: "Carol C <carol@other.test>", subject: "Named now" }))
        expect(yield* once).toMatchObject({ received: 2 })
        yield* Effect.sleep("5 millis")
        yield* answer

        // What the mix made live, so that "equal" below is about something.
        const [ticket] = yield* sql<{ updated_at: Date; created_at: Date }>`
          SELECT t.created_at, t.updated_at FROM tickets t JOIN messages m ON m.ticket_id = t.id WHERE m.message_id = '<a@c.test>'`
        expect(ticket!.updated_at.getTime()).toBeGreaterThan(ticket!.created_at.getTime())
        expect((yield* sql`SELECT 1 FROM tickets WHERE linked_ticket_id IS NOT NULL`).length).toBe(1)
        expect((yield* sql`SELECT 1 FROM messages WHERE direction = 'outbound'`).length).toBe(1)
        expect(yield* sql`SELECT name FROM customers WHERE email = 'carol@other.test'`).toEqual([{ name: "Carol C" }])

        const before = yield* logState
        const indexesBefore = yield* indexNames
        expect(indexesBefore).toContain("messages_message_id")
        const clean = yield* replayProjections({ check: true })
        expect(clean.equal).toBe(true)
        expect(Object.fromEntries(clean.tables.map((t) => [t.table, t.replayed]))).toEqual({
          customers: 4,
          tickets: 4,
          messages: 7,
          ticket_participants: 9
        })
        yield* replayCommand({ check: true })

        yield* sql`UPDATE messages SET subject = 'x' WHERE message_id = '<b@c.test>'`
        yield* sql`DELETE FROM ticket_participants WHERE address = 'bob@customer.test'`
        const tampered = yield* replayProjections({ check: true })
        expect(tampered.equal).toBe(false)
        expect(differing(tampered)).toEqual({ customers: 0, tickets: 0, messages: 1, ticket_participants: 1 })
        const subject = tampered.tables.find((t) => t.table === "messages")!.samples[0]!.columns
        expect(subject).toEqual([{ column: "subject", live: "x", replayed: "Re: Help" }])
        const failed = yield* Effect.flip(replayCommand({ check: true }))
        expect(failed._tag).toBe("ProjectionsDiffer")
        expect(describeFailure(Cause.fail(failed))?.exitCode).toBe(1)
        expect(failed.message).toContain("mailroom replay")

        const rebuilt = yield* replayCommand({ check: false })
        expect(rebuilt.swapped).toBe(true)
        expect(differing(rebuilt)).toEqual({ customers: 0, tickets: 0, messages: 1, ticket_participants: 1 })
        expect((yield* replayProjections({ check: true })).equal).toBe(true)
        expect(yield* sql`SELECT subject FROM messages WHERE message_id = '<b@c.test>'`).toEqual([{ subject: "Re: Help" }])
        expect(yield* logState).toEqual(before)

        // The swapped-in tables keep the originals' index names, uniqueness and foreign keys.
        expect(yield* indexNames).toEqual(indexesBefore)
        const orphan = yield* Effect.either(sql`
          INSERT INTO messages (id, ticket_id, mailbox, direction, from_email, subject, text, received_at)
          VALUES (gen_random_uuid(), gen_random_uuid(), 'INBOX', 'inbound', 'x@y.test', 's', 't', now())`)
        expect(orphan._tag).toBe("Left")
        const twice = yield* Effect.either(sql`
          INSERT INTO customers (id, email, name, created_at) VALUES (gen_random_uuid(), 'ada@customer.test', '', now())`)
        expect(twice._tag).toBe("Left")

        // Intake goes on over the new tables: a follow-up still finds its thread.
        mailbox.append(mail({ messageId: "<b2@c.test>", inReplyTo: "<b@c.test>", from: "ada@customer.test", subject: "Re: Re: Help" }))
        expect(yield* once).toMatchObject({ received: 1, ticketsCreated: 0 })
        expect((yield* replayProjections({ check: true })).equal).toBe(true)
      }).pipe(Effect.provide(sqlPipeline(backend, "replay", Imap.Test(mailbox), {}, server)))
    }))
  })
}
