import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { runCli } from "../support/cli.js"
import { DovecotServer, dovecotEnv } from "../support/dovecot.js"
import { GreenMailServer } from "../support/greenmail.js"
import { PostgresServer, query } from "../support/postgres.js"
import { realWorldMail, realWorldOutcomes } from "../support/realWorld.js"

const outcome = (type: string, reason: string | null) => (type === "EmailQuarantined" ? `EmailQuarantined:${reason}` : type)

/**
 * Real-world mail appended to a server, then one `--once` process on a fresh PostgreSQL database:
 * each mail is recorded once, as the pipeline over the memory mailbox decides it from `sources`
 * (the bytes the server serves), with its raw bytes; a second run adds nothing.
 */
const recordsEachOnce = (label: string, env: Record<string, string>, uids: ReadonlyArray<number>, sources: () => Promise<ReadonlyArray<Buffer>>) =>
  Effect.gen(function*() {
    const db = yield* Effect.flatMap(PostgresServer, (postgres) => postgres.freshDatabase(label))
    const withDb = { ...env, DATABASE_URL: db.url }
    const run = yield* Effect.promise(() => runCli(["--once"], withDb))
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toContain(`Found ${uids.length} new email(s)`)

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

    const memory = yield* realWorldOutcomes((yield* Effect.promise(sources)).map((raw) => ({ raw })))
    const expected = memory.uids.map((uid) => {
      const event = memory.events.find((e) => e.uid === uid)!
      return outcome(event.data._tag, event.data._tag === "EmailQuarantined" ? event.data.reason : null)
    })
    expect(rows.map((r) => outcome(r.type, r.reason))).toEqual(expected)
    const received = rows.filter((r) => r.type === "EmailReceived").length
    expect(received).toBeGreaterThan(0)
    const [messages] = yield* Effect.promise(() => query<{ n: string }>(db.url, "SELECT count(*) AS n FROM messages"))
    expect(Number(messages!.n)).toBe(received)

    const again = yield* Effect.promise(() => runCli(["--once"], withDb))
    expect(again.code, again.stderr).toBe(0)
    expect(again.stderr).toContain("No new emails found")
    const [events] = yield* Effect.promise(() => query<{ n: string }>(db.url, "SELECT count(*) AS n FROM events WHERE uid IS NOT NULL"))
    expect(Number(events!.n)).toBe(uids.length)
  }).pipe(Effect.scoped)

describe("real-world mail through an IMAP server, the process and PostgreSQL", () => {
  const mails = realWorldMail()

  layer(Layer.merge(DovecotServer.layer(), PostgresServer.layer), { excludeTestServices: true })((it) => {
    it.effect("Dovecot: each mail once, decided as in memory from the bytes Dovecot serves, with its raw bytes, all flagged \\Seen", () =>
      Effect.gen(function*() {
        const dovecot = yield* DovecotServer
        const uids = yield* Effect.promise(() => dovecot.append(mails.map((m) => m.raw)))
        expect(uids).toHaveLength(mails.length)
        yield* recordsEachOnce("realworld", dovecotEnv(dovecot), uids, async () => (await dovecot.messages()).map((m) => m.source))
        const flags = yield* Effect.promise(() => dovecot.flags())
        expect(uids.filter((uid) => !flags.get(uid)?.has("\\Seen"))).toEqual([])
      }))
  })

  layer(Layer.merge(GreenMailServer.layer(), PostgresServer.layer), { excludeTestServices: true })((it) => {
    it.effect("GreenMail: each mail once, decided as in memory, with its raw bytes", () =>
      Effect.gen(function*() {
        const greenmail = yield* GreenMailServer
        // GreenMail's MIME parser refuses a few of these (Dovecot stores them all): the rest is the test.
        const appended = yield* Effect.promise(() => greenmail.appendEach(mails.map((m) => m.raw)))
        const stored = mails.filter((_, i) => appended[i] !== undefined)
        const uids = appended.filter((uid) => uid !== undefined)
        expect(stored.length).toBeGreaterThan(mails.length * 0.9)
        const env = {
          GMAIL_SENDER_EMAIL: greenmail.user,
          GMAIL_SENDER_PASSWORD: greenmail.password,
          IMAP_HOST: greenmail.host,
          IMAP_PORT: String(greenmail.imapPort),
          IMAP_TLS: "false",
          AGENT: "off"
        }
        yield* recordsEachOnce("realworldgm", env, uids, async () => stored.map((m) => m.raw))
      }))
  })
})
