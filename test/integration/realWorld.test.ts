import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { runCli } from "../support/cli.js"
import { DovecotServer, dovecotEnv } from "../support/dovecot.js"
import { PostgresServer, query } from "../support/postgres.js"
import { realWorldMail, realWorldOutcomes } from "../support/realWorld.js"

const outcome = (type: string, reason: string | null) => (type === "EmailQuarantined" ? `EmailQuarantined:${reason}` : type)

describe("real-world mail through Dovecot, the process and PostgreSQL", () => {
  layer(Layer.merge(DovecotServer.layer(), PostgresServer.layer), { excludeTestServices: true })((it) => {
    it.effect("each mail is recorded once, as the pipeline decides it in memory, with its raw bytes, flagged \\Seen, and a second run adds nothing", () =>
      Effect.gen(function*() {
        const dovecot = yield* DovecotServer
        const db = yield* Effect.flatMap(PostgresServer, (postgres) => postgres.freshDatabase("realworld"))
        const mails = realWorldMail()
        const uids = yield* Effect.promise(() => dovecot.append(mails.map((m) => m.raw)))
        expect(uids).toHaveLength(mails.length)
        const env = { ...dovecotEnv(dovecot), DATABASE_URL: db.url }

        const run = yield* Effect.promise(() => runCli(["--once"], env))
        expect(run.code, run.stderr).toBe(0)
        expect(run.stderr).toContain(`Found ${mails.length} new email(s)`)

        const rows = yield* Effect.promise(() =>
          query<{ uid: string; type: string; reason: string | null; stored: boolean }>(db.url, `
            SELECT e.uid, e.type, e.data->>'reason' AS reason,
              EXISTS (SELECT 1 FROM raw_messages r WHERE r.sha256 = e.data->>'rawSha256') AS stored
            FROM events e WHERE e.uid IS NOT NULL ORDER BY e.uid
          `)
        )
        expect(rows.map((r) => Number(r.uid))).toEqual(uids)
        // Nothing lost: every mail's bytes are kept, whatever became of it.
        expect(rows.filter((r) => !r.stored)).toEqual([])

        // The same decisions as the pipeline over the memory mailbox, from the bytes Dovecot serves.
        const served = yield* Effect.promise(() => dovecot.messages())
        const memory = yield* realWorldOutcomes(served.map((m) => ({ raw: m.source })))
        const expected = memory.uids.map((uid) => {
          const event = memory.events.find((e) => e.uid === uid)!
          return outcome(event.data._tag, event.data._tag === "EmailQuarantined" ? event.data.reason : null)
        })
        expect(rows.map((r) => outcome(r.type, r.reason))).toEqual(expected)
        const received = rows.filter((r) => r.type === "EmailReceived").length
        expect(received).toBeGreaterThan(0)
        const [messages] = yield* Effect.promise(() => query<{ n: string }>(db.url, "SELECT count(*) AS n FROM messages"))
        expect(Number(messages!.n)).toBe(received)

        const flags = yield* Effect.promise(() => dovecot.flags())
        expect(uids.filter((uid) => !flags.get(uid)?.has("\\Seen"))).toEqual([])

        const again = yield* Effect.promise(() => runCli(["--once"], env))
        expect(again.code, again.stderr).toBe(0)
        expect(again.stderr).toContain("No new emails found")
        const [events] = yield* Effect.promise(() => query<{ n: string }>(db.url, "SELECT count(*) AS n FROM events WHERE uid IS NOT NULL"))
        expect(Number(events!.n)).toBe(mails.length)
      }).pipe(Effect.scoped))
  })
})
