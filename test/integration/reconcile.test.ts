import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Cause, Effect, Layer, Option } from "effect"
import { describeFailure } from "../../src/cli/Fatal.js"
import { reconcileCommand } from "../../src/cli/Reconcile.js"
import { collectStatus } from "../../src/cli/Status.js"
import { ImapLive } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { DovecotServer } from "../support/dovecot.js"
import { mail } from "../support/mails.js"
import { sqlPipeline } from "../support/stack.js"
import { configLayer } from "../unit/layers.js"

const rfc5322 = (date: Date) => date.toUTCString().replace("GMT", "+0000")

const intakeUids = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ uid: string; type: string }>`
    SELECT uid, type FROM events WHERE type IN ('EmailReceived', 'EmailDuplicate', 'EmailQuarantined') ORDER BY uid`.pipe(
    Effect.map((rows) => rows.map((row) => Number(row.uid)))
  ))

layer(DovecotServer.layer(), { excludeTestServices: true })("reconcile against Dovecot and PostgreSQL", (it) => {
  it.scoped("reports exactly the UIDs the cursor passed without an event, takes them in once, and then finds none", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const env = {
        GMAIL_SENDER_EMAIL: dovecot.user,
        GMAIL_SENDER_PASSWORD: dovecot.password,
        IMAP_HOST: dovecot.host,
        IMAP_PORT: String(dovecot.port),
        IMAP_TLS: "false",
        IMAP_BACKFILL: "unseen",
        AGENT: "off"
      }
      const config = configLayer(env)
      const pipeline = Layer.merge(sqlPipeline("postgres", "reconcile", ImapLive, env), ImapLive.pipe(Layer.provide(config)))
      return yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const poller = yield* Poller
        // Read before mailroom's first look: skipped by IMAP_BACKFILL=unseen, and so never a gap.
        const readLongAgo = yield* Effect.promise(() => dovecot.append([mail({ subject: "old 1" }), mail({ subject: "old 2" })], { seen: true }))
        const unread = yield* Effect.promise(() => dovecot.append([mail({ subject: "unread before" })]))
        expect(Option.getOrThrow(yield* poller.once)).toMatchObject({ received: 1 })
        const later = yield* Effect.promise(() => dovecot.append([mail({ subject: "later 1" }), mail({ subject: "later 2" })]))
        expect(Option.getOrThrow(yield* poller.once)).toMatchObject({ received: 2 })

        // Mail the cursor passes without its events: as if a commit had been lost.
        const twoHoursAgo = new Date(Date.now() - 2 * 3600_000)
        const missed = yield* Effect.promise(() =>
          dovecot.append([
            mail({ subject: "missed 1", date: new Date(Date.now() - 10 * 86400_000), trace: [`Received: from mx.example.net by imap.example.com; ${rfc5322(twoHoursAgo)}`] }),
            mail({ subject: "missed 2" })
          ])
        )
        yield* sql`UPDATE cursors SET last_uid = ${Math.max(...missed)}, seen_uid = ${Math.max(...missed)}`
        const recordedBefore = yield* intakeUids
        expect(recordedBefore).toEqual([...unread, ...later])

        const status = yield* collectStatus
        expect(status.mailboxes[0]!.gaps).toEqual(missed)

        const refused = yield* Effect.flip(reconcileCommand({ check: true }))
        expect(refused._tag).toBe("GapsFound")
        expect(describeFailure(Cause.fail(refused))?.exitCode).toBe(1)
        expect(yield* intakeUids).toEqual(recordedBefore)

        const [first] = yield* reconcileCommand({ check: false })
        expect(first!.gaps).toEqual(missed)
        expect(first!.gaps).not.toContain(readLongAgo[0])
        expect(first!.oldestUnprocessedAge).toBeGreaterThan(2 * 3600 - 120)
        expect(first!.oldestUnprocessedAge).toBeLessThan(2 * 3600 + 120)
        expect(first!.backfilled).toMatchObject({ received: 2, duplicates: 0, alreadyRecorded: 0 })
        expect(yield* intakeUids).toEqual([...unread, ...later, ...missed])
        const received = yield* sql<{ uid: string }>`SELECT uid FROM events WHERE type = 'EmailReceived' AND uid = ANY(${missed}) ORDER BY uid`
        expect(received.map((row) => Number(row.uid))).toEqual(missed)
        expect(yield* sql`SELECT subject FROM messages WHERE subject LIKE 'missed%' ORDER BY subject`).toEqual([
          { subject: "missed 1" },
          { subject: "missed 2" }
        ])
        const [cursor] = yield* sql<{ last_uid: string }>`SELECT last_uid FROM cursors`
        expect(Number(cursor!.last_uid)).toBe(Math.max(...missed))
        const flags = yield* Effect.promise(() => dovecot.flags())
        expect(missed.map((uid) => flags.get(uid)?.has("\\Seen"))).toEqual([true, true])

        const [second] = yield* reconcileCommand({ check: false })
        expect(second!.gaps).toEqual([])
        expect(second!.oldestUnprocessedAge).toBe(0)
        expect(second!.backfilled.found).toBe(0)
        expect(yield* intakeUids).toEqual([...unread, ...later, ...missed])
        expect((yield* collectStatus).mailboxes[0]!.gaps).toEqual([])
        yield* reconcileCommand({ check: true })

        // A pass afterwards takes new mail as before, and nothing twice.
        const next = yield* Effect.promise(() => dovecot.append([mail({ subject: "after" })]))
        expect(Option.getOrThrow(yield* poller.once)).toMatchObject({ received: 1, alreadyRecorded: 0 })
        expect(yield* intakeUids).toEqual([...unread, ...later, ...missed, ...next])
      }).pipe(Effect.provide(pipeline), Effect.provide(config))
    }))
})
