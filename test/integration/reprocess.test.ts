import { expect, layer } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import { writeFile } from "node:fs/promises"
import { join } from "node:path"
import { describeReprocess, reprocessFleet } from "../../src/cli/Reprocess.js"
import { StoreLive } from "../../src/Layers.js"
import { Parser } from "../../src/mail/Parser.js"
import { SenderAuthenticator } from "../../src/mail/SenderAuth.js"
import { ImapLive } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { Reprocessor } from "../../src/tickets/Reprocess.js"
import { runCli } from "../support/cli.js"
import { DovecotServer, fileEnv, mailboxesYaml, SALES, SUPPORT } from "../support/dovecot.js"
import { PostgresServer, query, scratchDatabaseAndFolder } from "../support/postgres.js"
import { pipelineOn } from "../../src/Layers.js"
import { EventBus, MemoryEventBus } from "../../src/bus/EventBus.js"
import { configLayer, mail } from "../unit/layers.js"

layer(Layer.merge(DovecotServer.layer(), PostgresServer.layer), { excludeTestServices: true })("mailroom reprocess against Dovecot and PostgreSQL", (it) => {
  it.scoped("with nothing to reprocess says so and exits at once, on a shared PostgreSQL too", () =>
    Effect.gen(function*() {
      const db = yield* Effect.flatMap(PostgresServer, (postgres) => postgres.freshDatabase("reprocess_nothing"))
      // The command used to print its answer and then wait forever on a LISTEN connection it never
      // needed, when it was done before that connection was (on a database migrated already).
      for (const _ of ["migrates", "is quick"]) {
        const run = yield* Effect.promise(() => runCli(["reprocess"], { DATABASE_URL: db.url }, { timeoutMs: 15_000 }))
        expect(run.code, run.stderr).toBe(0)
        expect(run.stdout).toContain("No quarantined mail to reprocess")
      }
    }))

  it.scoped("fetches a too-large mail again once MAX_MESSAGE_BYTES allows it, links it to its quarantine event and does it once", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const db = yield* Effect.flatMap(PostgresServer, (postgres) => postgres.freshDatabase("reprocess"))
      const env: Record<string, string> = {
        GMAIL_SENDER_EMAIL: dovecot.user,
        GMAIL_SENDER_PASSWORD: dovecot.password,
        IMAP_HOST: dovecot.host,
        IMAP_PORT: String(dovecot.port),
        IMAP_TLS: "false",
        IMAP_BACKFILL: "all",
        AGENT: "off",
        DATABASE_URL: db.url
      }

      const reprocessor = (limit: string) =>
        ManagedRuntime.make(
          Reprocessor.Default.pipe(
            Layer.provide(Layer.mergeAll(Parser.Default, SenderAuthenticator.Default, reprocessFleet)),
            Layer.provideMerge(StoreLive),
            Layer.provide(configLayer({ ...env, MAX_MESSAGE_BYTES: limit }))
          )
        )

      const reprocess = async (limit: string) => {
        const runtime = reprocessor(limit)
        try {
          return await runtime.runPromise(Effect.flatMap(Reprocessor, (r) => r.run({ reasons: ["too_large"], ids: [] })))
        } finally {
          await runtime.dispose()
        }
      }

      yield* Effect.promise(async () => {
        const big = mail({ subject: "Logs attached inline", from: "Fay <fay@customer.test>", text: "log line 0123456789\r\n".repeat(500) })
        expect(big.length).toBeGreaterThan(10_000)
        await dovecot.append([big, mail({ subject: "small one" })])
        const intake = ManagedRuntime.make(
          pipelineOn(ImapLive, EventBus.Test(new MemoryEventBus())).pipe(Layer.provide(configLayer({ ...env, MAX_MESSAGE_BYTES: "2000" })))
        )
        const pass = await intake.runPromise(Effect.flatMap(Poller, (p) => p.once).pipe(Effect.map(Option.getOrThrow)))
        await intake.dispose()
        expect(pass).toMatchObject({ received: 1, quarantined: 1 })
        const [quarantine] = await query<{ id: string; seq: string; data: unknown }>(db.url, "SELECT id, seq, data FROM events WHERE type = 'EmailQuarantined'")
        expect(quarantine!.data).toMatchObject({ reason: "too_large", headersOnly: true })

        // Still over the limit: nothing is fetched or written, and the output says why.
        const still = await reprocess("2000")
        expect(still).toEqual([expect.objectContaining({ _tag: "Skipped", quarantineEventId: quarantine!.id })])
        expect(describeReprocess(still)).toContain("still over MAX_MESSAGE_BYTES (2000)")
        expect(await query(db.url, "SELECT 1 FROM events WHERE type = 'EmailReprocessed'")).toHaveLength(0)

        const done = await reprocess("20000")
        expect(done).toEqual([expect.objectContaining({ _tag: "Reprocessed", outcome: "EmailReceived", newTicket: true, bytesFrom: "imap" })])
        expect(describeReprocess(done)).toContain("Reprocessed 1: 1 received, 0 duplicates, 0 quarantined again, 0 skipped")

        const linked = await query<{ seq: string; data: { quarantineEventId: string; outcomeEventId: string; rawSha256: string } }>(
          db.url,
          "SELECT seq, data FROM events WHERE type = 'EmailReprocessed'"
        )
        expect(linked).toHaveLength(1)
        expect(linked[0]!.data.quarantineEventId).toBe(quarantine!.id)
        const [received] = await query<{ id: string; seq: string; uid: string | null; ticket_id: string; subject: string }>(
          db.url,
          // The subject is sealed in the event; the projection row of the same id shows it.
          `SELECT e.id, e.seq, e.uid, e.ticket_id, m.subject FROM events e JOIN messages m ON m.id = e.id WHERE e.id = '${linked[0]!.data.outcomeEventId}'`
        )
        expect(received).toMatchObject({ uid: null, subject: "Logs attached inline" })
        const [ticket] = await query<{ n: string }>(db.url, `SELECT count(*) AS n FROM tickets WHERE id = '${received!.ticket_id}'`)
        expect(Number(ticket!.n)).toBe(1)
        const [message] = await query<{ text: string }>(db.url, `SELECT text FROM messages WHERE id = '${received!.id}'`)
        expect(message!.text).toContain("log line 0123456789")
        const [raw] = await query<{ headers_only: boolean; size: string }>(
          db.url,
          `SELECT headers_only, size FROM raw_messages WHERE sha256 = '${linked[0]!.data.rawSha256}'`
        )
        expect(raw).toMatchObject({ headers_only: false })
        expect(Number(raw!.size)).toBe(Buffer.byteLength(big))

        // The log is appended to, never rewritten.
        const [untouched] = await query<{ seq: string; data: unknown }>(db.url, `SELECT seq, data FROM events WHERE id = '${quarantine!.id}'`)
        expect(untouched).toEqual({ seq: quarantine!.seq, data: quarantine!.data })

        const again = await reprocess("20000")
        expect(again).toEqual([])
        expect(describeReprocess(again)).toContain("No quarantined mail to reprocess")
        expect(await query(db.url, "SELECT 1 FROM events WHERE type IN ('EmailReprocessed', 'EmailReceived')")).toHaveLength(3)
      })
    }))
})

layer(DovecotServer.layer({ users: [SUPPORT, SALES] }), { excludeTestServices: true })("mailroom reprocess with MAILBOXES_FILE", (it) => {
  it.scoped("fetches a too-large mail again from the account and folder its mailbox key names", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const { db, dir } = yield* scratchDatabaseAndFolder("reprocess_file")
      yield* Effect.promise(async () => {
        await dovecot.createMailbox("Orders", { user: SALES.user })
        await writeFile(join(dir, "mailboxes.yaml"), mailboxesYaml(dovecot.port, [
          { user: SUPPORT.user, passwordEnv: "SUPPORT_PASSWORD" },
          { user: SALES.user, passwordEnv: "SALES_PASSWORD", folders: ["INBOX", "Orders"] }
        ]))
        const env = (limit: string) => fileEnv(dir, db, { MAX_MESSAGE_BYTES: limit })
        const big = mail({ subject: "Order export", from: "Gus <gus@customer.test>", text: "order line 0123456789\r\n".repeat(500) })
        // The same UID 1 in two accounts' folders: only the right one holds the big mail.
        await dovecot.append([mail({ subject: "support's first" })], { user: SUPPORT.user })
        await dovecot.append([big], { user: SALES.user, mailbox: "Orders" })
        const intake = await runCli(["--once"], env("2000"))
        expect(intake.code, intake.stderr).toBe(0)
        const [quarantine] = await query<{ mailbox: string; uid: string }>(db.url, "SELECT mailbox, uid FROM events WHERE type = 'EmailQuarantined'")
        expect(quarantine).toEqual({ mailbox: "sales@globex.test/Orders", uid: "1" })

        const run = await runCli(["reprocess", "--reason", "too_large"], env("20000"))
        expect(run.code, run.stderr).toBe(0)
        expect(run.stdout).toContain("fetched again from the mailbox")
        expect(run.stdout).toContain("Reprocessed 1: 1 received")
        const [received] = await query<{ mailbox: string; subject: string; text: string }>(
          db.url,
          "SELECT e.mailbox, m.subject, m.text FROM events e JOIN messages m ON m.id = e.id WHERE e.type = 'EmailReceived' AND e.uid IS NULL"
        )
        expect(received).toMatchObject({ mailbox: "sales@globex.test/Orders", subject: "Order export" })
        expect(received!.text).toContain("order line 0123456789")
      })
    }))
})
