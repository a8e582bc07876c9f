import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import kafkajs from "kafkajs"
import { runCli } from "../support/cli.js"
import { DovecotServer } from "../support/dovecot.js"
import { KafkaServer } from "../support/kafka.js"
import { mail } from "../support/mails.js"
import { createDatabase, query } from "../support/postgres.js"

const SUPPORT = { user: "support@acme.test", password: "support-pass" }
const SALES = { user: "sales@globex.test", password: "sales-pass" }

/** Both accounts on one Dovecot, and a broker: two accounts × two folders in one process. */
const servers = Effect.gen(function*() {
  return { dovecot: yield* DovecotServer, kafka: yield* KafkaServer }
})

const consumeAll = async (brokers: string, topic: string, count: number) => {
  const kafka = new kafkajs.Kafka({ brokers: [brokers], logLevel: kafkajs.logLevel.NOTHING })
  const consumer = kafka.consumer({ groupId: `mailboxes-${topic}-${Math.random()}` })
  const records: Array<{ key: string; headers: Record<string, string> }> = []
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${records.length} of ${count} records on ${topic}`)), 60_000)
    void consumer.run({
      eachMessage: async ({ message }) => {
        records.push({
          key: message.key?.toString() ?? "",
          headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]))
        })
        if (records.length >= count) {
          clearTimeout(timer)
          resolve()
        }
      }
    })
  })
  await consumer.disconnect()
  return records
}

layer(DovecotServer.layer({ users: [SUPPORT, SALES] }), { excludeTestServices: true })((it) => {
  it.layer(KafkaServer.layer())("several mailboxes in one process (MAILBOXES_FILE)", (it) => {
    describe("two accounts, two folders each", () => {
      it.scoped("keeps events, cursors, tickets, status and Kafka keys apart, and a second run adds nothing", () =>
        Effect.gen(function*() {
          const { dovecot, kafka } = yield* servers
          const db = yield* Effect.promise(() => createDatabase("mailboxes"))
          const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-mailboxes-")))
          yield* Effect.addFinalizer(() => Effect.promise(async () => {
            await db.drop()
            await rm(dir, { recursive: true, force: true })
          }))
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
            await writeFile(join(dir, "mailboxes.yaml"), [
              "mailboxes:",
              `  - address: ${SUPPORT.user}`,
              `    imap: { host: 127.0.0.1, port: ${dovecot.port}, tls: false }`,
              "    auth: { password_env: SUPPORT_PASSWORD }",
              "    folders: [INBOX, Escalations]",
              `  - address: ${SALES.user}`,
              `    imap: { host: 127.0.0.1, port: ${dovecot.port}, tls: false }`,
              "    auth: { password_env: SALES_PASSWORD }",
              "    folders: [INBOX, Leads]",
              ""
            ].join("\n"))
          })
          const env = {
            MAILBOXES_FILE: join(dir, "mailboxes.yaml"),
            SUPPORT_PASSWORD: SUPPORT.password,
            SALES_PASSWORD: SALES.password,
            DATABASE_URL: db.url,
            IMAP_BACKFILL: "all",
            AGENT: "off",
            KAFKA_BROKERS: kafka.brokers,
            KAFKA_TOPIC: "email_inbound_mailboxes",
            KAFKA_EVENTS_TOPIC: "mailroom.events.mailboxes",
            KAFKA_DLQ_TOPIC: "mailroom.events.dlq.mailboxes"
          }
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
          const db = yield* Effect.promise(() => createDatabase("mailboxes_missing"))
          const dir = yield* Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-mailboxes-")))
          yield* Effect.addFinalizer(() => Effect.promise(async () => {
            await db.drop()
            await rm(dir, { recursive: true, force: true })
          }))
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
