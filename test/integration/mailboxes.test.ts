import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { ChildProcess } from "node:child_process"
import { collect, runCli, spawnCli } from "../support/cli.js"
import { DovecotServer, fileEnv, mailboxesYaml, SALES, SUPPORT } from "../support/dovecot.js"
import { consumeRecords, KafkaServer } from "../support/kafka.js"
import { mail } from "../support/mails.js"
import { query, scratchDatabaseAndFolder } from "../support/postgres.js"

/** Both accounts on one Dovecot, and a broker: two accounts × two folders in one process. */
const servers = Effect.gen(function*() {
  return { dovecot: yield* DovecotServer, kafka: yield* KafkaServer }
})

const consumeAll = (brokers: string, topic: string, count: number) =>
  consumeRecords(brokers, topic, (record) => record, (records) => records.length >= count)

layer(DovecotServer.layer({ users: [SUPPORT, SALES] }), { excludeTestServices: true })((it) => {
  it.layer(KafkaServer.layer())("several mailboxes in one process (MAILBOXES_FILE)", (it) => {
    describe("two accounts, two folders each", () => {
      it.scoped("keeps events, cursors, tickets, status and Kafka keys apart, and a second run adds nothing", () =>
        Effect.gen(function*() {
          const { dovecot, kafka } = yield* servers
          const { db, dir } = yield* scratchDatabaseAndFolder("mailboxes")
          yield* Effect.promise(async () => {
            await dovecot.createMailbox("Escalations", { user: SUPPORT.user })
            await dovecot.createMailbox("Leads", { user: SALES.user })
            // The same Message-ID in two accounts' folders: one mail, recorded once across mailboxes.
            await dovecot.append([mail({ from: "Ada <ada@customer.test>", subject: "Support inbox 1", messageId: "<shared@customer.test>" })], { user: SUPPORT.user })
            await dovecot.append([mail({ from: "Bo <bo@customer.test>", subject: "Support inbox 2" })], { user: SUPPORT.user })
            await dovecot.append([mail({ from: "Cy <cy@customer.test>", subject: "Escalated" })], { user: SUPPORT.user, mailbox: "Escalations" })
            await dovecot.append([mail({ from: "Di <di@customer.test>", subject: "Sales inbox" })], { user: SALES.user })
            await dovecot.append([mail({ from: "Ada <ada@customer.test>", subject: "Support inbox 1", messageId: "<shared@customer.test>" })], { user: SALES.user, mailbox: "Leads" })
            await dovecot.append([mail({ from: "Ed <ed@customer.test>", subject: "New lead" })], { user: SALES.user, mailbox: "Leads" })
            await writeFile(join(dir, "mailboxes.yaml"), mailboxesYaml(dovecot.port, [
              { user: SUPPORT.user, passwordEnv: "SUPPORT_PASSWORD", folders: ["INBOX", "Escalations"] },
              { user: SALES.user, passwordEnv: "SALES_PASSWORD", folders: ["INBOX", "Leads"] }
            ]))
          })
          const env = fileEnv(dir, db, {
            KAFKA_BROKERS: kafka.brokers,
            KAFKA_TOPIC: "email_inbound_mailboxes",
            KAFKA_EVENTS_TOPIC: "mailroom.events.mailboxes",
            KAFKA_DLQ_TOPIC: "mailroom.events.dlq.mailboxes"
          })
          const keys = ["sales@globex.test/INBOX", "sales@globex.test/Leads", "support@acme.test/Escalations", "support@acme.test/INBOX"]

          const first = yield* Effect.promise(() => runCli(["--once"], env))
          expect(first.code, first.stderr).toBe(0)
          for (const key of keys) expect(first.stdout).toContain(`${key}: Summary:`)
          expect(first.stdout).toContain("sales@globex.test/Leads: Summary: 1 received (1 new ticket(s)), 1 duplicate(s)")

          const intake = yield* Effect.promise(() =>
            query<{ mailbox: string; type: string; n: string }>(db.url, "SELECT mailbox, type, count(*) AS n FROM events GROUP BY mailbox, type ORDER BY mailbox, type")
          )
          expect(intake.map((row) => `${row.mailbox} ${row.type} ${row.n}`)).toEqual([
            "sales@globex.test/INBOX EmailReceived 1",
            "sales@globex.test/Leads EmailDuplicate 1",
            "sales@globex.test/Leads EmailReceived 1",
            "support@acme.test/Escalations EmailReceived 1",
            "support@acme.test/INBOX EmailReceived 2"
          ])
          const cursors = yield* Effect.promise(() => query<{ mailbox: string }>(db.url, "SELECT mailbox FROM cursors ORDER BY mailbox"))
          expect(cursors.map((row) => row.mailbox)).toEqual(keys)
          const tickets = yield* Effect.promise(() => query<{ mailbox: string; subject: string }>(db.url, "SELECT mailbox, subject FROM tickets ORDER BY subject"))
          expect(tickets.map((t) => `${t.mailbox} ${t.subject}`)).toEqual([
            "support@acme.test/Escalations Escalated",
            "sales@globex.test/Leads New lead",
            "sales@globex.test/INBOX Sales inbox",
            "support@acme.test/INBOX Support inbox 1",
            "support@acme.test/INBOX Support inbox 2"
          ])
          // Each account's mail flagged \Seen in its own folders only.
          const seen = yield* Effect.promise(async () => [
            ...(await dovecot.flags({ user: SUPPORT.user })).values(),
            ...(await dovecot.flags({ user: SUPPORT.user, mailbox: "Escalations" })).values(),
            ...(await dovecot.flags({ user: SALES.user })).values(),
            ...(await dovecot.flags({ user: SALES.user, mailbox: "Leads" })).values()
          ])
          expect(seen.map((flags) => flags.has("\\Seen"))).toEqual([true, true, true, true, true, true])

          // Kafka: the source names the mailbox, so consumers can tell them apart.
          const records = yield* Effect.promise(() => consumeAll(kafka.brokers, "mailroom.events.mailboxes", 6))
          expect([...new Set(records.map((r) => decodeURIComponent(r.headers.ce_source!.slice("/mailroom/".length))))].sort()).toEqual(keys)

          const status = yield* Effect.promise(() => runCli(["status", "--json"], env))
          expect(status.code, status.stderr).toBe(0)
          const report = JSON.parse(status.stdout) as { mailboxes: Array<{ mailbox: string; backlog: number; serverError: string | null }> }
          expect(report.mailboxes.map((m) => m.mailbox).sort()).toEqual(keys)
          expect(report.mailboxes.map((m) => m.serverError)).toEqual([null, null, null, null])
          expect(report.mailboxes.map((m) => m.backlog)).toEqual([0, 0, 0, 0])

          const eventsBefore = yield* Effect.promise(() => query<{ n: string }>(db.url, "SELECT count(*) AS n FROM events"))
          const again = yield* Effect.promise(() => runCli(["--once"], env))
          expect(again.code, again.stderr).toBe(0)
          const eventsAfter = yield* Effect.promise(() => query<{ n: string }>(db.url, "SELECT count(*) AS n FROM events"))
          expect(eventsAfter[0]!.n).toBe(eventsBefore[0]!.n)
        }))

      it.scoped("a folder that cannot be opened is reported on its own; the others go on", () =>
        Effect.gen(function*() {
          const { dovecot } = yield* servers
          const { db, dir } = yield* scratchDatabaseAndFolder("mailboxes_missing")
          yield* Effect.promise(() =>
            writeFile(join(dir, "mailboxes.json"), JSON.stringify({
              mailboxes: [{
                address: SALES.user,
                imap: { host: "127.0.0.1", port: dovecot.port, tls: false },
                auth: { password_env: "SALES_PASSWORD" },
                folders: ["INBOX", "Nowhere"]
              }]
            }))
          )
          const env = { MAILBOXES_FILE: join(dir, "mailboxes.json"), SALES_PASSWORD: SALES.password, DATABASE_URL: db.url, IMAP_BACKFILL: "all", AGENT: "off" }
          const run = yield* Effect.promise(() => runCli(["--once"], env))
          expect(run.stderr).toContain("Nowhere")
          const cursors = yield* Effect.promise(() => query<{ mailbox: string }>(db.url, "SELECT mailbox FROM cursors ORDER BY mailbox"))
          expect(cursors.map((row) => row.mailbox)).toEqual(["sales@globex.test/INBOX"])
        }))

      it.scoped("two processes under MAX_MAILBOXES_PER_PROCESS split the mailboxes; after kill -9 a third takes the dead one's over, nothing lost or doubled", () =>
        Effect.gen(function*() {
          const { dovecot } = yield* servers
          const { db, dir } = yield* scratchDatabaseAndFolder("mailboxes_share")
          const children: Array<{ child: ChildProcess; output: () => string; done: Promise<unknown> }> = []
          // Runs before the database is dropped: finalizers run last added, first.
          yield* Effect.addFinalizer(() => Effect.promise(async () => {
            for (const c of children) {
              c.child.kill("SIGKILL")
              await c.done.catch(() => undefined)
            }
          }))
          yield* Effect.promise(async () => {
            for (const folder of ["Share1", "Share2"]) {
              await dovecot.createMailbox(folder, { user: SUPPORT.user })
              await dovecot.createMailbox(folder, { user: SALES.user })
            }
            await writeFile(join(dir, "mailboxes.yaml"), mailboxesYaml(dovecot.port, [
              { user: SUPPORT.user, passwordEnv: "SUPPORT_PASSWORD", folders: ["Share1", "Share2"] },
              { user: SALES.user, passwordEnv: "SALES_PASSWORD", folders: ["Share1", "Share2"] }
            ]))
          })
          const env = (extra: Record<string, string> = {}) => fileEnv(dir, db, extra)
          const start = (extra: Record<string, string>) => {
            const child = spawnCli(["--interval", "1"], env(extra))
            let stderr = ""
            child.stderr?.on("data", (chunk) => (stderr += chunk))
            const running = { child, output: () => stderr, done: collect(child, 600_000) }
            children.push(running)
            return running
          }
          const led = (output: string) => new Set([...output.matchAll(/This instance leads (\S+\/Share\d)/g)].map((m) => m[1]!))
          const until = async (what: string, check: () => boolean | Promise<boolean>, ms = 60_000) => {
            const end = Date.now() + ms
            while (!(await check())) {
              if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${children.map((c) => c.output()).join("\n---\n")}`)
              await new Promise((resolve) => setTimeout(resolve, 250))
            }
          }
          const folders = [[SUPPORT.user, "Share1"], [SUPPORT.user, "Share2"], [SALES.user, "Share1"], [SALES.user, "Share2"]] as const
          const appendEach = (label: string) =>
            Promise.all(folders.map(([user, mailbox]) => dovecot.append([mail({ subject: `${label} ${user} ${mailbox}` })], { user, mailbox })))
          const intake = () => query<{ mailbox: string; uid: string; n: string }>(
            db.url,
            "SELECT mailbox, uid, count(*) AS n FROM events WHERE type IN ('EmailReceived', 'EmailDuplicate', 'EmailQuarantined') GROUP BY mailbox, uid"
          )

          yield* Effect.promise(async () => {
            await appendEach("before")
            const a = start({ MAX_MAILBOXES_PER_PROCESS: "2" })
            const b = start({ MAX_MAILBOXES_PER_PROCESS: "2" })
            await until("both to lead two mailboxes each", () => led(a.output()).size === 2 && led(b.output()).size === 2)
            expect([...led(a.output())].filter((key) => led(b.output()).has(key))).toEqual([])
            await until("the first mails", async () => (await intake()).length === 4)

            a.child.kill("SIGKILL")
            const killedAt = Date.now()
            await appendEach("after")
            const c = start({})
            await until("the third process to take the dead one's mailboxes", () => [...led(a.output())].every((key) => led(c.output()).has(key)), 60_000)
            const tookOver = Date.now() - killedAt
            await until("every mail", async () => (await intake()).length === 8)
            const rows = await intake()
            expect(rows.filter((row) => row.n !== "1")).toEqual([])
            expect(new Set(rows.map((row) => row.mailbox)).size).toBe(4)
            // B keeps its two; C, without a bound, takes what nobody holds.
            expect([...led(b.output())].filter((key) => led(c.output()).has(key))).toEqual([])
            expect(tookOver).toBeLessThan(60_000)
          })
        }))

      it.scoped("a bad file stops start-up with one line naming the entry and the field", () =>
        Effect.gen(function*() {
          const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-mailboxes-")))
          yield* Effect.addFinalizer(() => Effect.promise(() => rm(dir, { recursive: true, force: true })))
          yield* Effect.promise(() => writeFile(join(dir, "mailboxes.yaml"), "mailboxes:\n  - address: a@b.test\n    imap: { port: 99999 }\n    auth: { password_env: X }\n"))
          const run = yield* Effect.promise(() => runCli(["--once"], { MAILBOXES_FILE: join(dir, "mailboxes.yaml"), X: "x" }))
          expect(run.code).toBe(2)
          const last = run.stderr.trim().split("\n").at(-1)!
          expect(last).toContain("mailboxes[0] (a@b.test) imap.port")
        }))
    })
  })
})
