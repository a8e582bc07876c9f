import { createHash } from "node:crypto"
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PGlite } from "@electric-sql/pglite"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer, Logger, Option, TestClock, TestContext } from "effect"
import { EarlyLogin } from "../../src/mailbox/EarlyLogin.js"
import { Imap, ImapLive } from "../../src/mailbox/Imap.js"
import { runCli, spawnCli } from "../support/cli.js"
import { generateCorpus } from "../support/corpus.js"
import type { Dovecot } from "../support/dovecot.js"
import { DovecotServer, dovecotEnv } from "../support/dovecot.js"
import type { FaultProxy } from "../support/faultProxy.js"
import { FaultProxyServer } from "../support/faultProxy.js"
import { hostileMails, largeAttachmentMail, mail, pseudoRandomBytes } from "../support/mails.js"
import { PostgresServer, query } from "../support/postgres.js"
import { configLayer } from "../unit/layers.js"

const mailboxEnv = dovecotEnv

const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex")

const count = async (url: string, where = "true") =>
  Number((await query<{ n: string }>(url, `SELECT count(*) AS n FROM events WHERE ${where}`))[0]!.n)

const countTable = async (url: string, table: string) =>
  Number((await query<{ n: string }>(url, `SELECT count(*) AS n FROM ${table}`))[0]!.n)

/**
 * Tickets a careful reader would open, in UID order: one per thread root, and one for every answer
 * whose sender is not the thread's customer (only participants join a ticket).
 */
const expectedTickets = (
  accepted: ReadonlyArray<{ readonly messageId: string; readonly from: string; readonly threadOf?: string | undefined }>
) => {
  const customerOf = new Map<string, string>()
  let tickets = 0
  for (const m of accepted) {
    const parent = m.threadOf === undefined ? undefined : customerOf.get(m.threadOf)
    const joins = parent !== undefined && parent === m.from
    if (!joins) tickets += 1
    customerOf.set(m.messageId, joins ? parent : m.from)
  }
  return tickets
}

/** A Dovecot and a database for the first suite, with the suite's mail appended. */
class IntakeMailbox extends Context.Tag("intake-dovecot.test/IntakeMailbox")<IntakeMailbox, {
  readonly dovecot: Dovecot
  readonly db: { readonly url: string }
  readonly env: Record<string, string>
  readonly preSeen: Array<number>
  readonly taken: Array<number>
}>() {}

/** A Promise-style test body over the first suite's mailbox. */
const withIntakeMailbox = (body: (mailbox: IntakeMailbox["Type"]) => Promise<void>) =>
  Effect.flatMap(IntakeMailbox, (mailbox) => Effect.promise(() => body(mailbox)))

/** A fresh database on the suite's PostgreSQL server, dropped when the test ends. */
const freshDatabase = (label: string) => Effect.flatMap(PostgresServer, (postgres) => postgres.freshDatabase(label))

const DovecotAndPostgres = Layer.merge(DovecotServer.layer(), PostgresServer.layer)

describe("intake against a real Dovecot and PostgreSQL", () => {
  const corpus = [...generateCorpus(240, { maxAttachmentBytes: 200_000 })]
  // Dovecot refuses to store a 0-byte message; that case is covered by the unit tests.
  const hostile = hostileMails().filter((m) => m.raw.length > 0)
  const bigAttachment = 30 * 1024 * 1024

  const Mailbox = Layer.scoped(
    IntakeMailbox,
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const db = yield* freshDatabase("dovecot")
      const env = { ...mailboxEnv(dovecot), DATABASE_URL: db.url }
      return yield* Effect.promise(async () => {
        const preSeen = await dovecot.append(Array.from({ length: 10 }, (_, i) => mail({ subject: `read long ago ${i}` })), { seen: true })
        const taken = [
          ...(await dovecot.append(corpus.map((m) => m.raw))),
          ...(await dovecot.append(hostile.map((m) => m.raw))),
          ...(await dovecot.append([largeAttachmentMail(bigAttachment)]))
        ]
        return { dovecot, db, env, preSeen, taken }
      })
    })
  ).pipe(Layer.provide(DovecotAndPostgres))

  layer(Mailbox, { excludeTestServices: true })((it) => {
    it.effect("records one intake event per unread UID, opens the right tickets and flags everything \\Seen", () =>
      withIntakeMailbox(async ({ dovecot, db, env, preSeen, taken }) => {
        const run = await runCli(["--once"], env)
        expect(run.stderr).toContain(`Connected to IMAP: ${dovecot.user}`)
        expect(run.stderr).toContain(`Found ${taken.length} new email(s)`)
        expect(run.code, run.stderr).toBe(0)
        expect(run.stderr).not.toContain(dovecot.password)

        const uids = await query<{ uid: string; n: string }>(
          db.url,
          "SELECT uid, count(*) AS n FROM events WHERE uid IS NOT NULL GROUP BY uid ORDER BY uid::bigint"
        )
        expect(uids.map((r) => Number(r.uid))).toEqual(taken)
        expect(uids.every((r) => r.n === "1")).toBe(true)

        const quarantined = hostile.filter((m) => m.expect === "quarantined").length + 1
        const duplicates = hostile.filter((m) => m.expect === "duplicate").length
        expect(await count(db.url, "type = 'EmailQuarantined'")).toBe(quarantined)
        expect(await count(db.url, "type = 'EmailDuplicate'")).toBe(duplicates)
        const received = corpus.length + hostile.filter((m) => m.expect === "received").length
        expect(await count(db.url, "type = 'EmailReceived'")).toBe(received)
        expect(await countTable(db.url, "messages")).toBe(received)

        const hostileReceived = hostile.filter((m) => m.expect === "received").length
        expect(await countTable(db.url, "tickets")).toBe(expectedTickets(corpus) + hostileReceived)

        const [big] = await query<{ reason: string; headers_only: boolean; size: number }>(
          db.url,
          "SELECT data->>'reason' AS reason, (data->>'headersOnly')::boolean AS headers_only, (data->>'size')::bigint AS size FROM events WHERE uid = " +
            taken.at(-1)
        )
        expect(big).toMatchObject({ reason: "too_large", headers_only: true })
        expect(Number(big!.size)).toBeGreaterThan(bigAttachment)

        const flags = await dovecot.flags()
        expect(taken.every((uid) => flags.get(uid)?.has("\\Seen"))).toBe(true)
        expect(await count(db.url, `uid IN (${preSeen.join(",")})`)).toBe(0)
      }))

    it.effect("keeps every text valid and HTML as inert data", () =>
      withIntakeMailbox(async ({ db }) => {
        const rows = await query<{ bad: string }>(
          db.url,
          "SELECT count(*) AS bad FROM messages WHERE position(chr(65533) || chr(65533) || chr(65533) in subject) > 0 OR subject ~ '[\\r\\n]'"
        )
        expect(rows[0]!.bad).toBe("0")
        const scripts = await query<{ n: string }>(db.url, "SELECT count(*) AS n FROM messages WHERE html LIKE '%<script%'")
        expect(Number(scripts[0]!.n)).toBeGreaterThanOrEqual(hostile.some((m) => m.raw.includes("<script")) ? 1 : 0)
        // The Japanese charsets are decoded by a package the bundle loads on first use (rarely-used in scripts/bundle.mjs).
        const japanese = await query<{ from_email: string; text: string }>(
          db.url,
          "SELECT from_email, text FROM messages WHERE from_email IN ('jis@customer.test', 'sjis@customer.test') ORDER BY from_email"
        )
        expect(japanese.map((row) => [row.from_email, row.text.trim()])).toEqual([
          ["jis@customer.test", "ログインできません"],
          ["sjis@customer.test", expect.stringContaining("ログイン")]
        ])
      }))

    it.effect("a second --once adds nothing", () =>
      withIntakeMailbox(async ({ db, env }) => {
        const before = await count(db.url)
        const run = await runCli(["--once"], env)
        expect(run.code, run.stderr).toBe(0)
        expect(run.stderr).toContain("No new emails found")
        expect(run.stdout).toContain("Summary: 0 received")
        expect(await count(db.url)).toBe(before)
      }))

    it.effect("takes nothing when the mail above its cursor was expunged unseen (`UID FETCH n:*` then names the newest mail below n)", () =>
      withIntakeMailbox(async ({ dovecot, db, env }) => {
        const before = await count(db.url)
        const gone = await dovecot.append([mail({ subject: "withdrawn 1" }), mail({ subject: "withdrawn 2" })])
        await dovecot.expunge(gone)
        const run = await runCli(["--once"], env)
        expect(run.code, run.stderr).toBe(0)
        expect(run.stderr).toContain("No new emails found")
        expect(await count(db.url)).toBe(before)
      }))

    it.effect("a UIDVALIDITY change appends MailboxReset, rescans, and doubles nothing", () =>
      withIntakeMailbox(async ({ dovecot, db, env }) => {
        const receivedBefore = await count(db.url, "type = 'EmailReceived'")
        const ticketsBefore = await countTable(db.url, "tickets")
        await dovecot.resetUidValidity()
        const uids = await dovecot.uids()
        await dovecot.setSeen(uids.slice(20, 30), false)
        const fresh = await dovecot.append([mail({ subject: "after reset 1" }), mail({ subject: "after reset 2" })])
        const run = await runCli(["--once"], env)
        expect(run.code, run.stderr).toBe(0)
        expect(await count(db.url, "type = 'MailboxReset'")).toBe(1)
        expect(await count(db.url, "type = 'EmailReceived'")).toBe(receivedBefore + fresh.length)
        expect(await countTable(db.url, "tickets")).toBe(ticketsBefore + fresh.length)
        const uidValidity = await dovecot.uidValidity()
        const rescanned = await query<{ uid: string; n: string }>(
          db.url,
          `SELECT uid, count(*) AS n FROM events WHERE uidvalidity = ${uidValidity} AND uid IS NOT NULL GROUP BY uid ORDER BY uid::bigint`
        )
        expect(rescanned.map((r) => Number(r.uid))).toEqual([...uids.slice(20, 30), ...fresh])
        expect(rescanned.every((r) => r.n === "1")).toBe(true)
      }))
  })
})

layer(DovecotAndPostgres, { excludeTestServices: true })("kill -9 in the middle of a large pass", (it) => {
  it.scoped("loses and doubles nothing when rerun, the rerun parsing in worker threads", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const db = yield* freshDatabase("kill")
      yield* Effect.promise(async () => {
        const corpus = [...generateCorpus(1200, { maxAttachmentBytes: 100_000, seed: 7 })]
        const uids = await dovecot.append(corpus.map((m) => m.raw))
        const env = { ...mailboxEnv(dovecot), DATABASE_URL: db.url, IMAP_BATCH_SIZE: "20" }
        const child = spawnCli(["--once"], env)
        const exited = new Promise((resolve) => child.on("exit", resolve))
        while ((await count(db.url).catch(() => 0)) < 100) await new Promise((r) => setTimeout(r, 50))
        child.kill("SIGKILL")
        await exited
        const partial = await count(db.url)
        expect(partial).toBeLessThan(uids.length)
        // The cursor's seen_uid (moved by the commits and after the last \Seen) is never ahead of the flags.
        const [cursor] = await query<{ seen_uid: string }>(db.url, "SELECT seen_uid FROM cursors")
        const flagged = await dovecot.flags()
        expect(uids.filter((uid) => uid <= Number(cursor!.seen_uid)).every((uid) => flagged.get(uid)?.has("\\Seen"))).toBe(true)

        // The rest through parser workers, a batch to each in one message (PARSER_THREADS is 0 on 2 cores).
        const rerun = await runCli(["--once"], { ...env, PARSER_THREADS: "2" })
        expect(rerun.code, rerun.stderr).toBe(0)
        const perUid = await query<{ uid: string; n: string }>(
          db.url,
          "SELECT uid, count(*) AS n FROM events WHERE uid IS NOT NULL GROUP BY uid ORDER BY uid::bigint"
        )
        expect(perUid.map((r) => Number(r.uid))).toEqual(uids)
        expect(perUid.every((r) => r.n === "1")).toBe(true)
        // Each event holds its own mail's hash: no result of a batch went to another of its mails.
        const hashes = await query<{ uid: string; sha: string | null }>(
          db.url,
          "SELECT uid, data->>'rawSha256' AS sha FROM events WHERE uid IS NOT NULL ORDER BY uid::bigint"
        )
        expect(hashes.map((r) => r.sha)).toEqual(corpus.map((m) => createHash("sha256").update(m.raw).digest("hex")))
        expect(await countTable(db.url, "tickets")).toBe(expectedTickets(corpus))
        const flags = await dovecot.flags()
        expect(uids.every((uid) => flags.get(uid)?.has("\\Seen"))).toBe(true)
      })
    }))
})

/** A temporary folder, removed when the test ends. */
const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), prefix))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )

layer(DovecotServer.layer(), { excludeTestServices: true })("the embedded PGlite database", (it) => {
  it.scoped("a command run where mailroom keeps no database says that it made a new, empty one; a start, or a command after one, does not", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const env = { ...mailboxEnv(dovecot), MAILROOM_DATA_DIR: yield* tempDir("mailroom-pglite-") }
      const warning = "There was no database in"
      yield* Effect.promise(async () => {
        // The wrong folder: without the line, an empty list would read as nothing to do.
        const wrongFolder = await runCli(["replies"], env)
        expect(wrongFolder.code, wrongFolder.stderr).toBe(0)
        expect(wrongFolder.stdout).toContain("Nothing for a person in that time.")
        expect(wrongFolder.stderr).toContain(`${warning} ${env.MAILROOM_DATA_DIR}, so this is a new, empty one`)
        expect(wrongFolder.stderr).toContain("set MAILROOM_DATA_DIR (or DATABASE_URL)")
        const again = await runCli(["replies"], env)
        expect(again.stderr).not.toContain(warning)

        const start = await runCli(["--once"], { ...env, MAILROOM_DATA_DIR: join(env.MAILROOM_DATA_DIR, "first-start") })
        expect(start.code, start.stderr).toBe(0)
        expect(start.stderr).not.toContain(warning)
      })
    }))

  it.scoped("runs --once with only mailbox credentials, twice, and records each mail once", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const dataDir = yield* tempDir("mailroom-pglite-")
      yield* Effect.promise(async () => {
        const corpus = [...generateCorpus(40, { maxAttachmentBytes: 50_000, seed: 3 })]
        const uids = await dovecot.append(corpus.map((m) => m.raw))
        const env = { ...mailboxEnv(dovecot), MAILROOM_DATA_DIR: dataDir }
        const first = await runCli(["--once"], env)
        expect(first.code, first.stderr).toBe(0)
        expect(first.stdout).toContain(`Summary: ${uids.length} received`)
        // The second run reads the mailbox settings from a .env file in its working directory.
        await writeFile(join(dataDir, ".env"), Object.entries(mailboxEnv(dovecot)).map(([k, v]) => `${k}=${v}`).join("\n"))
        const second = await runCli(["--once"], { MAILROOM_DATA_DIR: dataDir }, { cwd: dataDir })
        expect(second.code, second.stderr).toBe(0)
        expect(second.stdout).toContain("Summary: 0 received")
        const watching = spawnCli(["--interval", "600"], env)
        let watchingOutput = ""
        watching.stderr?.on("data", (chunk) => (watchingOutput += chunk))
        while (!watchingOutput.includes("No new emails found")) await new Promise((r) => setTimeout(r, 100))
        const refused = await runCli(["--once"], env)
        expect(refused.code).toBe(2)
        expect(refused.stderr.trim()).toMatch(/^mailroom: the embedded database in .* is in use by process \d+: /)
        watching.kill("SIGTERM")
        expect(await new Promise((resolve) => watching.on("exit", resolve))).toBe(0)
        const db = await PGlite.create({ dataDir: join(dataDir, "pglite") })
        try {
          const events = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM events WHERE uid IS NOT NULL")
          const tickets = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM tickets")
          expect(events.rows[0]!.n).toBe(uids.length)
          expect(tickets.rows[0]!.n).toBe(expectedTickets(corpus))
        } finally {
          await db.close()
        }
      })
    }))

  it.scoped("stops on a setting or flag that does not read before it makes a database: one line, exit 2, the data folder left empty", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const dataDir = yield* tempDir("mailroom-unset-")
      yield* Effect.promise(async () => {
        const { GMAIL_SENDER_EMAIL: _, ...withoutLogin } = mailboxEnv(dovecot)
        const runs = [
          [await runCli(["--once"], { ...withoutLogin, MAILROOM_DATA_DIR: dataDir }), /^mailroom: GMAIL_SENDER_EMAIL is not set: /],
          [await runCli(["--once"], { ...mailboxEnv(dovecot), AGENT: "knowledge", SMTP_PORT: "25x", MAILROOM_DATA_DIR: dataDir }), /^mailroom: SMTP_PORT is invalid /],
          [await runCli(["--interval", "0"], { ...mailboxEnv(dovecot), MAILROOM_DATA_DIR: dataDir }), /^mailroom: --interval takes a whole number of seconds above 0$/],
          [await runCli(["status"], { ...withoutLogin, MAILROOM_DATA_DIR: dataDir }), /^mailroom: GMAIL_SENDER_EMAIL is not set: /],
          // A repeated option without its value, which @effect/cli would take as absent: every failed answer asked for again.
          [await runCli(["replies", "retry", "--id"], { ...mailboxEnv(dovecot), MAILROOM_DATA_DIR: dataDir }), /^mailroom: --id needs a value after it$/],
          [await runCli(["replies", "retry", "--id", "--since", "2h"], { ...mailboxEnv(dovecot), MAILROOM_DATA_DIR: dataDir }), /^mailroom: --id needs a value after it$/],
          [await runCli(["reprocess", "--reason"], { ...mailboxEnv(dovecot), MAILROOM_DATA_DIR: dataDir }), /^mailroom: --reason needs a value after it$/],
          // A command line @effect/cli refuses: its own line only, and the exit code of a usage error.
          [await runCli(["import"], { ...mailboxEnv(dovecot), MAILROOM_DATA_DIR: dataDir }), /^Missing argument <PATH>$/]
        ] as const
        for (const [run, line] of runs) {
          expect(run.code, run.stderr).toBe(2)
          expect(run.stderr.trim().split("\n")).toHaveLength(1)
          expect(run.stderr.trim()).toMatch(line)
          expect(run.stdout).toBe("")
        }
        expect(await readdir(dataDir)).toEqual([])
      })
    }))

  it.effect("says in one line why a data folder it cannot create a database in is refused", () =>
    Effect.flatMap(DovecotServer, (dovecot) =>
      Effect.promise(async () => {
        const broken = await mkdtemp(join(tmpdir(), "mailroom-broken-"))
        try {
          await writeFile(join(broken, "pglite"), "not a folder")
          const run = await runCli(["--once"], { ...mailboxEnv(dovecot), MAILROOM_DATA_DIR: broken })
          expect(run.code).not.toBe(0)
          expect(run.stderr.trim().split("\n")).toHaveLength(1)
          expect(run.stderr).toMatch(/^mailroom: could not open the embedded database in .*: EEXIST: file already exists, mkdir '.*pglite'; MAILROOM_DATA_DIR must be a writable folder/)
        } finally {
          await rm(broken, { recursive: true, force: true })
        }
      })))
})

layer(Layer.provideMerge(FaultProxyServer.layer(DovecotServer), DovecotServer.layer()), { excludeTestServices: true })("an IMAP session during a pass", (it) => {
  it.effect("stays out of IDLE while the pass holds the mailbox, and goes back to IDLE after it", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const proxy = yield* FaultProxyServer
      yield* Effect.promise(async () => {
        await dovecot.append([mail({ subject: "one" }), mail({ subject: "two" })])
        const commands = () => proxy.sent().split("\r\n").filter((line) => line !== "").map((line) => line.replace(/^\S+ /, ""))
        const program = Effect.scoped(Effect.gen(function*() {
          const session = yield* (yield* Imap).connect
          yield* session.open("INBOX")
          yield* Effect.scoped(Effect.gen(function*() {
            yield* session.hold("INBOX")
            const [first, second] = yield* session.sizesFrom(1)
            yield* session.fetch([first!.uid], { headersOnly: false })
            // Longer than imapflow waits before it enters IDLE: a batch being parsed and committed.
            yield* Effect.sleep("800 millis")
            yield* session.fetch([second!.uid], { headersOnly: false })
          }))
          const during = commands()
          yield* Effect.sleep("800 millis")
          return { during, after: commands() }
        }))
        const { during, after } = await Effect.runPromise(program.pipe(
          Effect.provide(ImapLive),
          Effect.provide(configLayer({ ...mailboxEnv(dovecot), IMAP_PORT: String(proxy.port) }))
        ))
        expect(during.filter((command) => command.startsWith("UID FETCH"))).toHaveLength(3)
        expect(during).not.toContain("IDLE")
        expect(after.slice(during.length)).toContain("IDLE")
      })
    }))
  it.effect("finds the sent and drafts folders by the marks Dovecot gives them, with one LIST a session, and says when none is marked", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const proxy = yield* FaultProxyServer
      yield* Effect.promise(async () => {
        await dovecot.createMailbox("Drafts")
        const lists = () => proxy.sent().split("\r\n").filter((line) => /^\S+ LIST /.test(line)).length
        const program = Effect.scoped(Effect.gen(function*() {
          const session = yield* (yield* Imap).connect
          const before = lists()
          const sent = yield* session.folder("\\Sent")
          const drafts = yield* session.folder("\\Drafts")
          const named = yield* session.folder("Plain Name")
          const listed = lists() - before
          const archive = yield* Effect.flip(session.folder("\\Archive"))
          return { sent, drafts, named, listed, archive, listedAgain: lists() - before - listed }
        }))
        const result = await Effect.runPromise(program.pipe(
          Effect.provide(ImapLive),
          Effect.provide(configLayer({ ...mailboxEnv(dovecot), IMAP_PORT: String(proxy.port) }))
        ))
        expect(result).toMatchObject({ sent: "Sent", drafts: "Drafts", named: "Plain Name", listed: 1, listedAgain: 1 })
        expect(result.archive).toMatchObject({ _tag: "MailboxNotFound", mailbox: "\\Archive" })
      })
    }))

  it.effect("a search in the folder searched last finds mail that arrived in between (Dovecot searches the view of its last sync)", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const proxy = yield* FaultProxyServer
      yield* Effect.promise(async () => {
        const question = "<asked-twice@customer.test>"
        const program = Effect.scoped(Effect.gen(function*() {
          const session = yield* (yield* Imap).connect
          const first = yield* session.findAnswersTo("INBOX", question)
          // A person's answer filed by another client while the folder stays selected here.
          yield* Effect.promise(() => dovecot.append([mail({ subject: "Re: asked", inReplyTo: question })]))
          const second = yield* session.findAnswersTo("INBOX", question)
          const byId = yield* session.findByMessageId("INBOX", question)
          // Selected read-write by the pass: the next search examines the folder again.
          yield* session.open("INBOX")
          const third = yield* session.findAnswersTo("INBOX", question)
          return { first, second, byId, third }
        }))
        const result = await Effect.runPromise(program.pipe(
          Effect.provide(ImapLive),
          Effect.provide(configLayer({ ...mailboxEnv(dovecot), IMAP_PORT: String(proxy.port) }))
        ))
        expect(result.first).toEqual([])
        expect(result.second).toHaveLength(1)
        expect(result.byId).toEqual([])
        expect(result.third).toEqual(result.second)
      })
    }))

  it.effect("a \\Seen or an APPEND it could not store is an error (ConnectionLost once the connection dropped); a folder open read-only is skipped with one warning", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const proxy = yield* FaultProxyServer
      yield* Effect.promise(async () => {
        const [uid] = await dovecot.append([mail({ subject: "flag me" })])
        const warnings: Array<string> = []
        const capture = Logger.add(Logger.make(({ logLevel, message }) => {
          if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message.join(" ") : String(message))
        }))
        const program = Effect.scoped(Effect.gen(function*() {
          const session = yield* (yield* Imap).connect
          yield* session.open("INBOX")
          // The sent-folder lookup leaves the folder it searched selected read-only.
          yield* session.findByMessageId("INBOX", "<nowhere@customer.test>")
          yield* session.markSeen([uid!])
          yield* session.markSeen([uid!])
          const readOnlyFlags = yield* Effect.promise(() => dovecot.flags())
          yield* session.open("INBOX")
          // imapflow answers an APPEND it did not make with false rather than an error (here: no folder
          // named); that is never a stored draft or copy.
          const notMade = yield* Effect.flip(session.append("", mail({ subject: "a draft" }), ["\\Draft"]))
          proxy.cutAll()
          yield* Effect.sleep("300 millis")
          const lost = yield* Effect.flip(session.markSeen([uid!]))
          const notStored = yield* Effect.flip(session.append("INBOX", mail({ subject: "a draft" }), ["\\Draft"]))
          return { readOnlySeen: readOnlyFlags.get(uid!)?.has("\\Seen") ?? false, lost: lost._tag, notMade: notMade._tag, notStored: notStored._tag }
        }))
        const result = await Effect.runPromise(program.pipe(
          Effect.provide(ImapLive),
          Effect.provide(configLayer({ ...mailboxEnv(dovecot), IMAP_PORT: String(proxy.port) })),
          Effect.provide(capture)
        ))
        expect(result).toEqual({ readOnlySeen: false, lost: "ConnectionLost", notMade: "ImapProtocolError", notStored: "ConnectionLost" })
        expect(warnings.filter((line) => line.includes("is read-only for"))).toHaveLength(1)
        expect((await dovecot.flags()).get(uid!)?.has("\\Seen")).toBe(false)
      })
    }))
})

layer(DovecotAndPostgres, { excludeTestServices: true })("SEARCH LARGER, which sizes a large backlog", (it) => {
  it.scoped("names only the mail whose RFC822.SIZE is over the bound, unread or not, and an intake of over a thousand mails takes each once", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const db = yield* freshDatabase("larger")
      yield* Effect.promise(async () => {
        const small = await dovecot.append(Array.from({ length: 1_100 }, (_, i) => mail({ subject: `small ${i}` })))
        const [large] = await dovecot.append([mail({ subject: "larger", text: "y".repeat(30_000) })])
        const [read] = await dovecot.append([mail({ subject: "larger, read", text: "y".repeat(30_000) })], { seen: true })
        const [quarantined] = await dovecot.append([mail({ subject: "over MAX_MESSAGE_BYTES", text: "x".repeat(80_000) })])
        const searched = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const session = yield* (yield* Imap).connect
          yield* session.open("INBOX")
          const all = yield* session.search({ from: 1 }, { unseenOnly: false, larger: 25_000 })
          const unseen = yield* session.search({ from: 1 }, { unseenOnly: true, larger: 25_000 })
          // A search the server refuses (BAD: no such size) is an error, not "nothing matched".
          const refused = yield* Effect.flip(session.search({ from: 1 }, { unseenOnly: false, larger: -1 }))
          return { all, unseen, refused: refused._tag }
        })).pipe(Effect.provide(ImapLive), Effect.provide(configLayer(mailboxEnv(dovecot)))))
        expect(searched).toEqual({ all: [large, read, quarantined], unseen: [large, quarantined], refused: "ImapProtocolError" })

        const run = await runCli(["--once"], { ...mailboxEnv(dovecot), DATABASE_URL: db.url, IMAP_BACKFILL: "all", MAX_MESSAGE_BYTES: "60000" })
        expect(run.code, run.stderr).toBe(0)
        const taken = [...small, large!, read!, quarantined!]
        const uids = await query<{ uid: string; type: string }>(db.url, "SELECT uid, type FROM events WHERE uid IS NOT NULL ORDER BY uid::bigint")
        expect(uids.map((r) => Number(r.uid))).toEqual(taken)
        expect(uids.filter((r) => r.type === "EmailQuarantined").map((r) => Number(r.uid))).toEqual([quarantined])
      })
    }))
})

layer(Layer.provideMerge(FaultProxyServer.layer(DovecotServer), DovecotServer.layer()), { excludeTestServices: true })("the login begun at start", (it) => {
  const logins = (proxy: FaultProxy) => proxy.sent().split("\r\n").filter((line) => /^\S+ (LOGIN|AUTHENTICATE) /i.test(line)).length
  const connectAndOpen = Effect.scoped(Effect.flatMap(Imap, (imap) => imap.connect).pipe(Effect.flatMap((session) => session.open("INBOX"))))

  it.effect("is made before anything asks for the mailbox, and is the first connect's; the next connect logs in anew", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const proxy = yield* FaultProxyServer
      const before = logins(proxy)
      const counts = yield* Effect.gen(function*() {
        // Nothing has asked for the mailbox yet: in a start, the database would be opening now.
        yield* Effect.sleep("700 millis")
        const early = logins(proxy) - before
        yield* connectAndOpen
        const afterFirst = logins(proxy) - before
        yield* connectAndOpen
        return { early, afterFirst, afterSecond: logins(proxy) - before }
      }).pipe(
        Effect.provide(ImapLive),
        Effect.provide(EarlyLogin.Live),
        Effect.provide(configLayer({ ...mailboxEnv(dovecot), IMAP_PORT: String(proxy.port) }))
      )
      expect(counts).toEqual({ early: 1, afterFirst: 1, afterSecond: 2 })
    }))

  it.effect("is logged out when nothing takes it for 30 seconds (a standby that does not lead), and a connect then logs in anew", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const proxy = yield* FaultProxyServer
      const logouts = () => proxy.sent().split("\r\n").filter((line) => /^\S+ LOGOUT$/i.test(line)).length
      const before = { logins: logins(proxy), logouts: logouts() }
      const realPause = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))
      const counts = yield* Effect.gen(function*() {
        yield* realPause(700)
        const early = { logins: logins(proxy) - before.logins, logouts: logouts() - before.logouts }
        yield* TestClock.adjust("29 seconds")
        yield* realPause(200)
        const kept = logouts() - before.logouts
        yield* TestClock.adjust("2 seconds")
        yield* realPause(500)
        const dropped = logouts() - before.logouts
        yield* connectAndOpen
        return { early, kept, dropped, logins: logins(proxy) - before.logins }
      }).pipe(
        Effect.provide(ImapLive),
        Effect.provide(EarlyLogin.Live),
        Effect.provide(configLayer({ ...mailboxEnv(dovecot), IMAP_PORT: String(proxy.port) })),
        Effect.provide(TestContext.TestContext)
      )
      expect(counts).toEqual({ early: { logins: 1, logouts: 0 }, kept: 0, dropped: 1, logins: 2 })
    }))

  it.effect("hands its refusal to the first connect, as that connect's own: a wrong password is tried once", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const proxy = yield* FaultProxyServer
      const before = logins(proxy)
      const refused = yield* Effect.flip(connectAndOpen).pipe(
        Effect.provide(ImapLive),
        Effect.provide(EarlyLogin.Live),
        Effect.provide(configLayer({ ...mailboxEnv(dovecot), IMAP_PORT: String(proxy.port), GMAIL_SENDER_PASSWORD: "wrong" }))
      )
      expect(refused._tag).toBe("AuthenticationFailed")
      expect(logins(proxy) - before).toBe(1)
    }))

  it.effect("the built bundle logs in in one round trip where the server offers SASL-IR, sends no ENABLE, selects INBOX without listing it, and a wrong password is still refused", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const proxy = yield* FaultProxyServer
      yield* Effect.promise(async () => {
        const dataDir = await mkdtemp(join(tmpdir(), "mailroom-sasl-ir-"))
        try {
          const env = { ...mailboxEnv(dovecot), IMAP_PORT: String(proxy.port), MAILROOM_DATA_DIR: dataDir }
          const from = proxy.sent().length
          const run = await runCli(["--once"], env)
          expect(run.code, run.stderr).toBe(0)
          const lines = proxy.sent().slice(from).split("\r\n")
          // The credentials ride on the command (RFC 4959) instead of answering a "+" a round trip later.
          expect(lines.filter((line) => /^\S+ AUTHENTICATE PLAIN [A-Za-z0-9+/=]+$/.test(line))).toHaveLength(1)
          expect(lines.filter((line) => /^\S+ ENABLE /i.test(line))).toEqual([])
          // INBOX is selected without a LIST and an LSUB of it first.
          expect(lines.filter((line) => /^\S+ SELECT "?INBOX"?$/i.test(line)).length).toBeGreaterThan(0)
          expect(lines.filter((line) => /^\S+ (LIST|LSUB) "" "?INBOX"?/i.test(line))).toEqual([])
          const wrong = await runCli(["--once"], { ...env, GMAIL_SENDER_PASSWORD: "wrong" })
          expect(wrong.code).not.toBe(0)
          expect(wrong.stderr).toMatch(/IMAP login failed/)
        } finally {
          await rm(dataDir, { recursive: true, force: true })
        }
      })
    }))
})

layer(DovecotServer.layer(), { excludeTestServices: true })("new mail reported before the poller listens", (it) => {
  it.effect("is announced once it listens: mail that came during the first pass does not wait for the backstop pass", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      yield* Effect.promise(async () => {
        const program = Effect.scoped(Effect.gen(function*() {
          const session = yield* (yield* Imap).connect
          yield* session.open("INBOX")
          yield* Effect.promise(() => dovecot.append([mail({ subject: "came during the first pass" })]))
          // The answer to the pass's next command reports it (* n EXISTS) while nobody listens yet;
          // the IDLE that follows will not report it again.
          yield* session.sizesFrom(1)
          yield* Effect.sleep("500 millis")
          return yield* session.nextNews.pipe(Effect.timeout("3 seconds"), Effect.option)
        }))
        const heard = await Effect.runPromise(program.pipe(Effect.provide(ImapLive), Effect.provide(configLayer(mailboxEnv(dovecot)))))
        expect(Option.isSome(heard)).toBe(true)
      })
    }))
})

layer(DovecotAndPostgres, { excludeTestServices: true })("a mail larger than one fetch piece", (it) => {
  it.scoped("comes in partial FETCHes and is stored byte for byte, with its attachment's size and sha256", () =>
    Effect.gen(function*() {
      const dovecot = yield* DovecotServer
      const db = yield* freshDatabase("pieces")
      yield* Effect.promise(async () => {
        // Over two pieces and a part of a third, so that the last partial FETCH comes back short.
        const size = 10 * 1024 * 1024 + 12_345
        const big = largeAttachmentMail(size)
        const [uid] = await dovecot.append([big])
        await dovecot.append([mail({ subject: "small after big" })])
        const run = await runCli(["--once"], { ...mailboxEnv(dovecot), DATABASE_URL: db.url, IMAP_BATCH_BYTES: "1048576" })
        expect(run.code, run.stderr).toBe(0)
        const [stored] = await query<{ sha256: string; length: number; raw: string; attachments: string }>(
          db.url,
          // The event's attachments are sealed (personal: file names); the projection holds them in clear.
          `SELECT r.sha256, length(r.bytes) AS length, e.data->>'rawSha256' AS raw, m.attachments
           FROM events e JOIN raw_messages r ON r.sha256 = e.data->>'rawSha256' JOIN messages m ON m.id = e.id WHERE e.uid = ${uid}`
        )
        expect(stored).toMatchObject({ sha256: sha256(big), raw: sha256(big), length: big.length })
        const attachments = typeof stored!.attachments === "string" ? JSON.parse(stored!.attachments) : stored!.attachments
        expect(attachments).toEqual([
          { filename: "logs.bin", contentType: "application/octet-stream", size, sha256: sha256(pseudoRandomBytes(size, size)) }
        ])
        expect(await count(db.url, "type = 'EmailReceived'")).toBe(2)
      })
    }))
})
