import { execFile, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync } from "node:fs"
import { cp, mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import { StoreLive } from "../../src/Layers.js"
import { EventData } from "../../src/log/Event.js"
import type { StoredEvent } from "../../src/log/Event.js"
import { EventLog } from "../../src/log/EventLog.js"
import { ordered } from "../../src/log/Migrations.js"
import { childEnv, collect, runCli } from "../support/cli.js"
import { DovecotServer, dovecotEnv } from "../support/dovecot.js"
import { mail } from "../support/mails.js"
import { freshDataDir, PostgresServer, query } from "../support/postgres.js"
import { configLayer } from "../unit/layers.js"

/**
 * A database written by the previous release, 9c54926 (before 0010_customer_keys sealed personal
 * fields and keyed customer ids), opened by today's version: the log is migrated, never rewritten.
 */
const OLD_COMMIT = "9c54926"

const run = promisify(execFile)
const repo = fileURLToPath(new URL("../..", import.meta.url))
const cacheDir = join(repo, ".cache", `mailroom-${OLD_COMMIT}`)

/**
 * The old release's bundle, built once by its own `npm run build` from `git archive` (nothing in the
 * repository's git state changes) and kept in .cache/mailroom-9c54926/dist. Its bare imports resolve
 * to this checkout's node_modules: 9c54926's dependencies differ only in `yaml` moving to prod.
 */
const oldBundle = async (): Promise<{ readonly mainJs: string; readonly buildMs: number | null }> => {
  const mainJs = join(cacheDir, "dist", "main.js")
  if (existsSync(mainJs)) return { mainJs, buildMs: null }
  const started = Date.now()
  const work = await mkdtemp(join(tmpdir(), "mailroom-old-"))
  try {
    const tree = join(work, "tree")
    await mkdir(tree)
    await run("git", ["-C", repo, "archive", "--format=tar", "-o", join(work, "tree.tar"), OLD_COMMIT])
    await run("tar", ["-xf", join(work, "tree.tar"), "-C", tree])
    await symlink(join(repo, "node_modules"), join(tree, "node_modules"), "dir")
    await run("npm", ["run", "-s", "build"], { cwd: tree, maxBuffer: 64 * 1024 * 1024 }).catch((error: { stdout?: string; stderr?: string }) => {
      throw new Error(`npm run build of ${OLD_COMMIT} failed:\n${error.stdout ?? ""}${error.stderr ?? ""}`)
    })
    const { stdout: commit } = await run("git", ["-C", repo, "rev-parse", `${OLD_COMMIT}^{commit}`])
    const staging = `${cacheDir}.tmp-${process.pid}`
    await rm(staging, { recursive: true, force: true })
    await mkdir(staging, { recursive: true })
    await cp(join(tree, "dist"), join(staging, "dist"), { recursive: true })
    await writeFile(join(staging, "COMMIT"), commit)
    // Another run may have finished first: its copy is as good.
    await rename(staging, cacheDir).catch(() => rm(staging, { recursive: true, force: true }))
    return { mainJs, buildMs: Date.now() - started }
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

class OldMailroom extends Context.Tag("upgrade.test/OldMailroom")<OldMailroom, Awaited<ReturnType<typeof oldBundle>>>() {
  static readonly layer = Layer.effect(OldMailroom, Effect.promise(oldBundle))
}

/** The customer id before 0010: a plain hash of the address (UUID version 5). */
const plainCustomerId = (address: string) => {
  const hex = createHash("sha256").update(`customer:${address}`).digest("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

const ADA = "Ada Lovelace <ada@customer.test>"
const BOB = "Bob Builder <bob@other.test>"
const CAROL = "Carol Client <carol@customer.test>"

/** What 9c54926 is given: a thread with a Cc'd participant who answers, a customer of its own, a duplicate and a mail too big. */
const carolFirst = mail({ from: CAROL, messageId: "<carol-1@customer.test>", subject: "CAROL-OLD-SUBJECT", text: "CAROL-OLD-BODY" })
const oldMails = [
  mail({
    authenticated: true,
    from: ADA,
    messageId: "<ada-1@customer.test>",
    headers: { Cc: BOB },
    subject: "ADA-OLD-SUBJECT: my card was charged twice",
    text: "ADA-OLD-BODY. Please refund the second charge."
  }),
  mail({
    authenticated: true,
    from: BOB,
    messageId: "<bob-1@other.test>",
    inReplyTo: "<ada-1@customer.test>",
    references: ["<ada-1@customer.test>"],
    subject: "Re: ADA-OLD-SUBJECT: my card was charged twice",
    text: "BOB-OLD-BODY: I can confirm."
  }),
  mail({
    authenticated: true,
    from: ADA,
    messageId: "<ada-2@customer.test>",
    inReplyTo: "<bob-1@other.test>",
    references: ["<ada-1@customer.test>", "<bob-1@other.test>"],
    subject: "Re: ADA-OLD-SUBJECT: my card was charged twice",
    text: "ADA-OLD-SECOND-BODY: thanks Bob."
  }),
  carolFirst,
  carolFirst,
  mail({ from: "Dave <dave@customer.test>", messageId: "<dave-1@customer.test>", subject: "DAVE-HUGE", text: `scans ${"x".repeat(40_000)}` })
]

interface EventRow {
  readonly seq: string
  readonly id: string
  readonly type: string
  readonly mailbox: string
  readonly uidvalidity: string | null
  readonly uid: string | null
  readonly ticket_id: string | null
  readonly occurred_at: string
  readonly trace: string | null
  readonly data: string
}

const eventRows = (url: string, where = "true") =>
  query<EventRow>(
    url,
    `SELECT seq::text, id::text, type, mailbox, uidvalidity::text, uid::text, ticket_id::text, occurred_at::text, trace, data::text
     FROM events WHERE ${where} ORDER BY seq`
  )

const customerRows = (url: string) => query<{ id: string; email: string }>(url, "SELECT id::text, email FROM customers ORDER BY email")

const count = async (url: string, statement: string) => Number((await query<{ n: string }>(url, statement))[0]!.n)

/** A database 9c54926 wrote, the mailbox it read, and what its tables held when it was done. */
const makeSuite = Effect.gen(function*() {
  const pg = yield* PostgresServer
  const dovecot = yield* DovecotServer
  const old = yield* OldMailroom
  const db = yield* pg.freshDatabase("upgrade")
  // No .env of the developer's is read: the children run in a folder of their own.
  const cwd = yield* freshDataDir
  const env = (extra: Record<string, string> = {}) => ({
    ...dovecotEnv(dovecot),
    IMAP_BACKFILL: "all",
    MAX_MESSAGE_BYTES: "20000",
    DATABASE_URL: db.url,
    ...extra
  })
  yield* Effect.promise(() => dovecot.append(oldMails))
  const oldRun = yield* Effect.promise(() =>
    collect(spawn(process.execPath, [old.mainJs, "--once"], { env: childEnv(env()), cwd, stdio: ["ignore", "pipe", "pipe"] }))
  )
  const snapshot = {
    events: yield* Effect.promise(() => eventRows(db.url)),
    customers: yield* Effect.promise(() => customerRows(db.url)),
    tickets: yield* Effect.promise(() => query<{ id: string; customer_id: string }>(db.url, "SELECT id::text, customer_id::text FROM tickets ORDER BY id")),
    columns: (yield* Effect.promise(() =>
      query<{ column_name: string }>(db.url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'events' ORDER BY column_name")
    )).map((row) => row.column_name)
  }
  return {
    db,
    dovecot,
    old,
    oldRun,
    snapshot,
    env,
    /** Today's bundle, dist/main.js. */
    today: (args: ReadonlyArray<string>) => runCli(args, env(), { cwd }),
    /** Today's start, which alone migrates a database in use: one pass, nothing answered. */
    start: () => runCli(["--once"], env({ AGENT: "off" }), { cwd }),
    lastOldSeq: snapshot.events.at(-1)?.seq ?? "0"
  }
})

class Suite extends Context.Tag("upgrade.test/Suite")<Suite, Effect.Effect.Success<typeof makeSuite>>() {
  static readonly layer = Layer.scoped(Suite, makeSuite).pipe(
    Layer.provide(Layer.mergeAll(PostgresServer.layer, DovecotServer.layer(), OldMailroom.layer))
  )
}

const withSuite = <A>(test: (suite: Context.Tag.Service<typeof Suite>) => Promise<A>) => Effect.flatMap(Suite, (suite) => Effect.promise(() => test(suite)))

/** The whole log, read by today's EventLog in this process. */
const readLog = (url: string) =>
  Effect.runPromise(
    Effect.flatMap(EventLog, (log) => log.read(0n, 10_000)).pipe(
      Effect.provide(StoreLive.pipe(Layer.provide(configLayer({ DATABASE_URL: url })))),
      Effect.scoped
    )
  )

const received = (events: ReadonlyArray<StoredEvent>) =>
  events.flatMap((event) => event.data._tag === "EmailReceived" ? [{ event, data: event.data }] : [])

const encodeData = Schema.encodeSync(EventData)

layer(Suite.layer, { excludeTestServices: true })((it) => {
  describe(`upgrading a database written by ${OLD_COMMIT}`, () => {
    it.effect(`${OLD_COMMIT} recorded the mailbox the way it did before sealing`, () => withSuite(async ({ oldRun, snapshot, old }) => {
      expect(oldRun.code, oldRun.stderr).toBe(0)
      console.info(old.buildMs === null ? `old bundle from ${cacheDir}` : `old bundle built in ${old.buildMs} ms`)
      expect(snapshot.columns).not.toContain("key_id")
      expect(snapshot.columns).not.toContain("sealed")
      const types = snapshot.events.map((row) => row.type)
      expect(types.filter((type) => type === "EmailReceived")).toHaveLength(4)
      expect(types.filter((type) => type === "EmailDuplicate")).toHaveLength(1)
      expect(types.filter((type) => type === "EmailQuarantined")).toHaveLength(1)
      // Plain-hash ids (version 5), every field readable in `data`.
      expect(snapshot.customers).toEqual(
        ["ada@customer.test", "bob@other.test", "carol@customer.test"].map((email) => ({ id: plainCustomerId(email), email }))
      )
      expect(snapshot.events.some((row) => row.data.includes("ADA-OLD-BODY"))).toBe(true)
      // Ada's thread (Bob answering as her Cc) is one ticket, Carol's another.
      expect(snapshot.tickets).toHaveLength(2)
    }))

    it.effect("today's version migrates it at its start, not at another command, and leaves every old event row as it was", () => withSuite(async ({ db, snapshot, start, today }) => {
      const ledger = async () => (await query<{ name: string }>(db.url, "SELECT name FROM mailroom_migrations ORDER BY name")).map((row) => row.name)
      const before = await ledger()
      const refused = await today(["status"])
      expect(refused.code, refused.stdout + refused.stderr).toBe(2)
      expect(refused.stderr).toMatch(/^mailroom: the database has not had this version's migrations \(.*customer_keys.*\): stop every instance of the older version, then start this one/)
      expect(await ledger()).toEqual(before)
      const started = await start()
      expect(started.code, started.stdout + started.stderr).toBe(0)
      expect(started.stdout).toContain("Summary: 0 received")
      const status = await today(["status"])
      expect(status.code, status.stdout + status.stderr).toBe(0)
      const migrations = await ledger()
      expect(migrations).toContain("customer_keys")
      expect(migrations).toEqual(ordered.map((migration) => migration.name).sort())
      expect(await eventRows(db.url)).toEqual(snapshot.events)
      expect(await count(db.url, "SELECT count(*) AS n FROM events WHERE key_id IS NOT NULL OR sealed IS NOT NULL")).toBe(0)
      expect(await customerRows(db.url)).toEqual(snapshot.customers)

      const check = await today(["replay", "--check"])
      expect(check.code, check.stdout + check.stderr).toBe(0)
      expect(check.stdout).toContain("The projections match the log")
    }))

    it.effect("today's EventLog reads every old event as it was written", () => withSuite(async ({ db, snapshot }) => {
      const events = await readLog(db.url)
      expect(events.map((event) => event.seq.toString())).toEqual(snapshot.events.map((row) => row.seq))
      for (const [i, event] of events.entries()) {
        const row = snapshot.events[i]!
        expect(event.erased, row.seq).toBeUndefined()
        expect(event.id).toBe(row.id)
        expect(event.type).toBe(row.type)
        // Decoded and encoded again, the data is what the old version wrote.
        expect(encodeData(event.data), `seq ${row.seq} ${row.type}`).toEqual(JSON.parse(row.data))
      }
      expect(received(events).map(({ data }) => [data.from.address, data.customerId, data.subject])).toEqual([
        ["ada@customer.test", plainCustomerId("ada@customer.test"), "ADA-OLD-SUBJECT: my card was charged twice"],
        ["bob@other.test", plainCustomerId("bob@other.test"), "Re: ADA-OLD-SUBJECT: my card was charged twice"],
        ["ada@customer.test", plainCustomerId("ada@customer.test"), "Re: ADA-OLD-SUBJECT: my card was charged twice"],
        ["carol@customer.test", plainCustomerId("carol@customer.test"), "CAROL-OLD-SUBJECT"]
      ])
    }))

    it.effect("an old customer writing again keeps its id and its ticket, sealed; a new one gets a keyed id", () => withSuite(async ({ db, dovecot, snapshot, today, lastOldSeq }) => {
      const adaId = plainCustomerId("ada@customer.test")
      const [adaTicket] = await query<{ id: string }>(db.url, `SELECT id::text FROM tickets WHERE customer_id = '${adaId}'`)
      await dovecot.append([
        mail({
          authenticated: true,
          from: ADA,
          messageId: "<ada-3@customer.test>",
          inReplyTo: "<ada-2@customer.test>",
          references: ["<ada-1@customer.test>", "<ada-2@customer.test>"],
          subject: "Re: ADA-NEW-SUBJECT",
          text: "ADA-NEW-BODY: still waiting for the refund."
        }),
        mail({ authenticated: true, from: "Erin New <erin@customer.test>", messageId: "<erin-1@customer.test>", subject: "ERIN-NEW-SUBJECT", text: "ERIN-NEW-BODY" })
      ])
      const once = await today(["--once"])
      expect(once.code, once.stderr).toBe(0)

      // Appended after the old rows, which stay as they were.
      expect(await eventRows(db.url, `seq <= ${lastOldSeq}`)).toEqual(snapshot.events)
      const fresh = received((await readLog(db.url)).filter((event) => event.seq > BigInt(lastOldSeq)))
      expect(fresh.map(({ data }) => data.from.address)).toEqual(["ada@customer.test", "erin@customer.test"])
      const [ada, erin] = fresh
      expect(ada!.data).toMatchObject({ customerId: adaId, ticketId: adaTicket!.id, newTicket: false, subject: "Re: ADA-NEW-SUBJECT" })
      expect(await query(db.url, "SELECT id::text FROM customers WHERE email = 'ada@customer.test'")).toEqual([{ id: adaId }])
      expect(await count(db.url, `SELECT count(*) AS n FROM tickets WHERE customer_id = '${adaId}'`)).toBe(1)

      const [adaRow] = await query<{ key_id: string | null; sealed: boolean; data: string }>(
        db.url,
        `SELECT key_id::text, sealed IS NOT NULL AS sealed, data::text FROM events WHERE id = '${ada!.event.id}'`
      )
      expect(adaRow!.key_id).not.toBeNull()
      expect(adaRow!.sealed).toBe(true)
      expect(adaRow!.data).not.toMatch(/ADA-NEW|ada@customer\.test|Lovelace/)
      expect(adaRow!.data).toContain(adaId)
      expect(await count(db.url, `SELECT count(*) AS n FROM customer_keys WHERE customer_id = '${adaId}' AND key IS NOT NULL`)).toBe(1)

      // Erin is new: keyed (version 8), not the plain hash the old version would have given her.
      const erinId = erin!.data.customerId
      expect(erinId).not.toBe(plainCustomerId("erin@customer.test"))
      expect(erinId.split("-")[2]![0]).toBe("8")
      expect(adaId.split("-")[2]![0]).toBe("5")
      expect(erin!.data.newTicket).toBe(true)
      expect(await query(db.url, "SELECT id::text FROM customers WHERE email = 'erin@customer.test'")).toEqual([{ id: erinId }])
      expect(await count(db.url, "SELECT count(*) AS n FROM customers")).toBe(snapshot.customers.length + 1)

      const check = await today(["replay", "--check"])
      expect(check.code, check.stdout + check.stderr).toBe(0)
      expect(check.stdout).toContain("The projections match the log")
    }))

    it.effect("erasing an old customer says how many of their events predate sealing, and the projections still match", () => withSuite(async ({ db, today }) => {
      const adaId = plainCustomerId("ada@customer.test")
      const erase = await today(["erase", "--customer", "ada@customer.test"])
      expect(erase.code, erase.stdout + erase.stderr).toBe(0)
      expect(erase.stdout).toContain(`Erased ada@customer.test (customer ${adaId})`)
      expect(erase.stdout).toMatch(/1 key\(s\) destroyed/)
      // Her two mails recorded by 9c54926 keep their data: the documented limit of erasure over an old log.
      const unsealed = /(\d+) event\(s\) recorded before this version sealed personal data still hold theirs/.exec(erase.stdout)
      expect(unsealed, erase.stdout).not.toBeNull()
      expect(Number(unsealed![1])).toBe(2)
      expect(await count(db.url, "SELECT count(*) AS n FROM customers WHERE email = 'ada@customer.test'")).toBe(0)

      const events = await readLog(db.url)
      const ada = received(events).filter(({ data }) => data.customerId === adaId)
      expect(ada.map(({ event }) => event.erased ?? false)).toEqual([false, false, true])
      expect(events.at(-1)!.data).toMatchObject({ _tag: "CustomerErased", customerId: adaId, unsealedEvents: 2, keysDestroyed: 1 })

      const check = await today(["replay", "--check"])
      expect(check.code, check.stdout + check.stderr).toBe(0)
      expect(check.stdout).toContain("The projections match the log")
    }))
  })
})
