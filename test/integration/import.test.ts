import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import { describeImport, Importer } from "../../src/cli/Import.js"
import { EventLog } from "../../src/log/EventLog.js"
import { Parser } from "../../src/mail/Parser.js"
import { SenderAuthenticator } from "../../src/mail/SenderAuth.js"
import { ImapLive } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { Responder } from "../../src/replies/Responder.js"
import { ReplyServers } from "../support/replyStack.js"
import type { Backend } from "../support/stack.js"
import { sqlPipeline } from "../support/stack.js"
import { configLayer, mail } from "../unit/layers.js"

const lf = (raw: string) => raw.replace(/\r\n/g, "\n")

/** A temporary folder for the files to import, removed afterwards. */
const importDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-import-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

for (const backend of ["postgres", "pglite"] satisfies Array<Backend>) {
  layer(ReplyServers.layer(), { excludeTestServices: true })(`mailroom import on ${backend}`, (it) => {
    const folder = `Import-${backend}`

    it.scoped("records mbox, Maildir and .eml mail once, adds nothing the second time, takes the same mail over IMAP as duplicates and answers none of it", () =>
      Effect.gen(function*() {
        const servers = yield* ReplyServers
        yield* Effect.promise(() => servers.dovecot.createMailbox(folder))
        const dir = yield* importDir
        yield* Effect.promise(async () => {
          const fromMbox = [1, 2, 3].map((i) => mail({ subject: `mbox ${i}`, text: i === 2 ? "From the start it failed.\r\n>From quoted" : "Hello" }))
          const fromMaildir = [1, 2, 3].map((i) => mail({ subject: `maildir ${i}`, from: `Bea <bea${i}@customer.test>` }))
          const fromEml = [
            mail({ subject: "eml a", from: "Carl <carl@customer.test>" }),
            mail({ subject: "eml without id", messageId: null, from: "Dora <dora@customer.test>" }),
            mail({ subject: "eml c", from: "Carl <carl@customer.test>" })
          ]
          const mbox = join(dir, "archive.mbox")
          // mboxrd: the writer quotes body lines that start with "From " (and those already quoted).
          const quoted = (raw: string) => lf(raw).replace(/^(>*From )/gm, ">$1")
          await writeFile(mbox, fromMbox.map((raw, i) => `From ada@customer.test Tue Nov 24 1${i}:00:00 2026\n${quoted(raw)}\n`).join(""))
          const maildir = join(dir, "maildir")
          for (const sub of ["cur", "new", "tmp"]) await mkdir(join(maildir, sub), { recursive: true })
          await writeFile(join(maildir, "cur", "1700000001.M1.host:2,S"), lf(fromMaildir[0]!))
          await writeFile(join(maildir, "new", "1700000002.M2.host"), lf(fromMaildir[1]!))
          await writeFile(join(maildir, "cur", "1700000003.M3.host:2,"), fromMaildir[2]!)
          const eml = join(dir, "eml")
          await mkdir(join(eml, "2026", "03"), { recursive: true })
          await writeFile(join(eml, "2026", "03", "a.eml"), fromEml[0]!)
          await writeFile(join(eml, "2026", "03", "b.eml"), lf(fromEml[1]!))
          await writeFile(join(eml, "c.eml"), fromEml[2]!)

          const env = servers.env({ AGENT: "knowledge", IMAP_MAILBOX: folder, IMAP_BACKFILL: "all", IMAP_BATCH_SIZE: "2" })
          const stack = Importer.Default.pipe(
            Layer.provide(Layer.mergeAll(Parser.Default, SenderAuthenticator.Default)),
            Layer.provideMerge(sqlPipeline(backend, `import_${backend}`, ImapLive, env)),
            Layer.provide(configLayer(env))
          )
          const runtime = ManagedRuntime.make(stack)
          try {
            // Built before anything is imported: the responder reads the log from its start, imports included.
            const responder = await runtime.runPromise(Responder)
            expect(responder.enabled).toBe(true)
            const importAll = () => runtime.runPromise(Effect.flatMap(Importer, (i) => i.importPaths([mbox, maildir, eml])))
            const sql = <A extends object>(statement: string) =>
              runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, (s) => s.unsafe<A>(statement)))
            const events = () => runtime.runPromise(Effect.flatMap(EventLog, (log) => log.read(0n, 10_000)))

            const first = await importAll()
            expect(first).toEqual({ mails: 9, received: 9, ticketsCreated: 9, duplicates: 0, quarantined: 0, alreadyImported: 0 })
            const afterFirst = await events()
            const imported = afterFirst.filter((e) => e.type === "EmailReceived")
            expect(new Set(imported.map((e) => e.mailbox))).toEqual(new Set([`import:${mbox}`, `import:${maildir}`, `import:${eml}`]))
            expect(imported.every((e) => e.uidvalidity === 1)).toBe(true)
            // mboxrd unquoting: the body is the mail's own again.
            const second = imported.find((e) => e.mailbox === `import:${mbox}` && e.uid === 2)!
            expect(second.data._tag === "EmailReceived" && second.data.text).toContain("From the start it failed.\n>From quoted")

            const files = await sql<{ uid: string; file: string }>(`SELECT uid, file FROM import_sources WHERE mailbox = 'import:${eml}' ORDER BY uid`)
            expect(files.map((r) => [Number(r.uid), r.file])).toEqual([[1, "2026/03/a.eml"], [2, "2026/03/b.eml"], [3, "c.eml"]])
            const byUid = new Map(imported.filter((e) => e.mailbox === `import:${maildir}`).map((e) => [e.uid, e.data]))
            expect([1, 2, 3].map((uid) => { const d = byUid.get(uid); return d?._tag === "EmailReceived" ? d.subject : undefined }))
              .toEqual(["maildir 1", "maildir 2", "maildir 3"])

            const again = await importAll()
            expect(again).toEqual({ mails: 9, received: 0, ticketsCreated: 0, duplicates: 0, quarantined: 0, alreadyImported: 9 })
            expect(describeImport(again)).toBe("Imported 9: 0 received (0 new tickets), 0 duplicates, 0 quarantined, 9 already imported")
            expect((await events()).length).toBe(afterFirst.length)

            // The same mail arrives over IMAP, with one that was never imported.
            const fresh = mail({ subject: "only over IMAP", from: "Eve <eve@customer.test>", authenticated: true })
            await servers.dovecot.append([...fromMbox, ...fromMaildir, ...fromEml, fresh], { mailbox: folder })
            const pass = await runtime.runPromise(Effect.flatMap(Poller, (p) => p.once).pipe(Effect.map(Option.getOrThrow)))
            expect(pass).toMatchObject({ found: 10, received: 1, duplicates: 9, quarantined: 0 })
            const [tickets] = await sql<{ n: string }>("SELECT count(*) AS n FROM tickets")
            expect(Number(tickets!.n)).toBe(10)
            const [messages] = await sql<{ n: string }>("SELECT count(*) AS n FROM messages")
            expect(Number(messages!.n)).toBe(10)
            const all = await events()
            const duplicateOf = new Set(all.flatMap((e) => e.data._tag === "EmailDuplicate" ? [e.data.duplicateOf] : []))
            expect(duplicateOf).toEqual(new Set(imported.map((e) => e.id)))

            // The responder answers the mailbox's own mail only: imported mail gets no reply event at all.
            const replies = await runtime.runPromise(Effect.flatMap(Responder, (r) => r.drain).pipe(Effect.map(Option.getOrThrow)))
            expect(replies.sent + replies.drafted + replies.skipped + replies.failed).toBe(1)
            const answered = (await events()).flatMap((e) => "emailEventId" in e.data ? [e.data.emailEventId] : [])
            const freshEvent = all.find((e) => e.type === "EmailReceived" && e.mailbox === folder)!
            expect(new Set(answered)).toEqual(new Set([freshEvent.id]))
          } finally {
            await runtime.dispose()
          }
        })
      }))
  })
}
