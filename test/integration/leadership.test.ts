import { PgClient } from "@effect/sql-pg"
import { describe, expect, layer } from "@effect/vitest"
import { Cause, Context, Duration, Effect, Exit, Fiber, Layer, Logger, Option, Redacted, Schedule } from "effect"
import { Leadership, LeadershipAdvisory, LeadershipLost, lockKey } from "../../src/mailbox/Leadership.js"
import { PostgresServer, query } from "../support/postgres.js"

const mailboxes = Array.from({ length: 200 }, (_, i) => `customer-${i}/INBOX`)

/** One mailroom process as far as locks go: its own pool on the database, and its own Leadership. */
const processOn = (url: string, name: string) =>
  Effect.map(
    Layer.build(LeadershipAdvisory.pipe(Layer.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 4, applicationName: name })))),
    (context) => Context.get(context, Leadership)
  )

/** Granted advisory locks in this database, per backend. */
const locksByPid = (url: string) =>
  Effect.promise(() =>
    query<{ pid: number; n: number }>(url, `
      SELECT pid, count(*)::int AS n FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      GROUP BY pid`)
  )

const holdersOf = (url: string, mailbox: string) =>
  Effect.promise(() =>
    query<{ pid: number }>(url, `
      SELECT pid FROM pg_locks
      WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND ((classid::bigint << 32) | objid::bigint) = ${lockKey(mailbox)}::bigint`)
  )

const backendsOf = (url: string, name: string) =>
  Effect.promise(() =>
    query<{ n: number }>(url, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = '${name}'`)
  ).pipe(Effect.map((rows) => rows[0]!.n))

/** Polls until `check` holds, failing the test after `within`. */
const eventually = <A>(what: string, effect: Effect.Effect<A>, check: (a: A) => boolean, within: Duration.DurationInput = "15 seconds") =>
  effect.pipe(
    Effect.filterOrFail(check, () => "not yet"),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`timed out waiting for ${what}`) }),
    Effect.orDie
  )

/** Log lines, to see what a standby says. */
const captured = () => {
  const lines: Array<string> = []
  const logger = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => {
    lines.push(Array.isArray(message) ? message.join(" ") : String(message))
  }))
  return { lines, logger }
}

/** Without the hundreds of "This instance leads" lines; a test that reads the log captures it. */
const quietly = Effect.provide(Logger.remove(Logger.defaultLogger))

layer(PostgresServer.layer, { excludeTestServices: true })((it) => {
  describe("Leadership on PostgreSQL advisory locks", () => {
    it.scoped("200 mailboxes led at once hold their locks on one connection, released when the work ends", () =>
      Effect.gen(function*() {
        const db = yield* (yield* PostgresServer).freshDatabase("leadership_one")
        const a = yield* processOn(db.url, "leader-a")
        const fibers = yield* Effect.forEach(mailboxes, (mailbox) => Effect.fork(a.lead(mailbox, Effect.never)))

        const locks = yield* eventually("200 locks", locksByPid(db.url), (rows) => rows[0]?.n === 200)
        expect(locks).toHaveLength(1)
        expect(yield* backendsOf(db.url, "leader-a")).toBe(1)

        yield* Effect.forEach(fibers, Fiber.interrupt, { discard: true })
        expect(yield* locksByPid(db.url)).toEqual([])
      }).pipe(quietly))

    it.scoped("a standby process takes all 200 over once the leader's lock connection is terminated; the leader's holders fail with LeadershipLost", () =>
      Effect.gen(function*() {
        const db = yield* (yield* PostgresServer).freshDatabase("leadership_takeover")
        const a = yield* processOn(db.url, "leader-a")
        const b = yield* processOn(db.url, "leader-b")
        const leaders = yield* Effect.forEach(mailboxes, (mailbox) => Effect.fork(a.lead(mailbox, Effect.never)))
        const [aPid] = (yield* eventually("A's 200 locks", locksByPid(db.url), (rows) => rows[0]?.n === 200)).map((row) => row.pid)

        const log = captured()
        let started = 0
        const standbys = yield* Effect.forEach(mailboxes, (mailbox) =>
          Effect.fork(b.lead(mailbox, Effect.zipRight(Effect.sync(() => started++), Effect.never)).pipe(Effect.provide(log.logger))))
        yield* eventually("200 standbys", Effect.sync(() => log.lines.filter((line) => line.includes("standing by")).length), (n) => n === 200)
        // Standing by on 200 mailboxes takes one connection, and takes none of them
        expect(yield* backendsOf(db.url, "leader-b")).toBe(1)
        expect(yield* locksByPid(db.url)).toEqual([{ pid: aPid, n: 200 }])
        expect(started).toBe(0)

        const killed = Date.now()
        yield* Effect.promise(() => query(db.url, `SELECT pg_terminate_backend(${aPid})`))

        const exits = yield* Effect.forEach(leaders, (fiber) => Fiber.await(fiber).pipe(Effect.timeout("10 seconds"), Effect.orDie))
        for (const exit of exits) {
          expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toBeInstanceOf(LeadershipLost)
        }
        const taken = yield* eventually("B's 200 locks", locksByPid(db.url), (rows) => rows.length === 1 && rows[0]!.n === 200, "10 seconds")
        expect(taken[0]!.pid).not.toBe(aPid)
        yield* eventually("200 started", Effect.sync(() => started), (n) => n === 200, "2 seconds")
        // heartbeat every 3 s, standby polls every 2 s
        expect(Date.now() - killed).toBeLessThan(8_000)
        expect(log.lines.filter((line) => line.includes("This instance leads")).length).toBe(200)

        // A is a standby now, on a new connection of its own
        expect(yield* a.lead(mailboxes[0]!, Effect.succeed("led"), { wait: false })).toEqual(Option.none())
        expect(yield* a.lead("someone-else/INBOX", Effect.succeed("led"), { wait: false })).toEqual(Option.some("led"))
        yield* Effect.forEach(standbys, Fiber.interrupt, { discard: true })
      }).pipe(quietly))

    it.scoped("wait: false returns None at once for a mailbox held elsewhere, or already held by this process", () =>
      Effect.gen(function*() {
        const db = yield* (yield* PostgresServer).freshDatabase("leadership_nowait")
        const a = yield* processOn(db.url, "leader-a")
        const b = yield* processOn(db.url, "leader-b")
        const holder = yield* Effect.fork(a.lead("INBOX", Effect.never))
        yield* eventually("A's lock", holdersOf(db.url, "INBOX"), (rows) => rows.length === 1)

        let ran = false
        const started = Date.now()
        expect(yield* b.lead("INBOX", Effect.sync(() => (ran = true)), { wait: false })).toEqual(Option.none())
        expect(yield* a.lead("INBOX", Effect.sync(() => (ran = true)), { wait: false })).toEqual(Option.none())
        expect(Date.now() - started).toBeLessThan(1_000)
        expect(ran).toBe(false)

        // the try in A did not count the lock twice: one unlock frees it
        yield* Fiber.interrupt(holder)
        expect(yield* holdersOf(db.url, "INBOX")).toEqual([])
      }).pipe(quietly))

    it.scoped("a lock is released when the work ends, and taken again cleanly afterwards", () =>
      Effect.gen(function*() {
        const db = yield* (yield* PostgresServer).freshDatabase("leadership_release")
        const a = yield* processOn(db.url, "leader-a")
        const b = yield* processOn(db.url, "leader-b")

        expect(yield* a.lead("INBOX", Effect.succeed(1))).toEqual(Option.some(1))
        expect(yield* holdersOf(db.url, "INBOX")).toEqual([])
        expect(yield* a.lead("INBOX", Effect.succeed(2), { wait: false })).toEqual(Option.some(2))
        expect(yield* holdersOf(db.url, "INBOX")).toEqual([])

        // a second holder in the same process waits for the first, then gets the lock once, not twice
        const first = yield* Effect.fork(a.lead("INBOX", Effect.sleep("500 millis")))
        yield* eventually("A's lock", holdersOf(db.url, "INBOX"), (rows) => rows.length === 1)
        expect(yield* a.lead("INBOX", holdersOf(db.url, "INBOX"))).toEqual(Option.some([expect.anything()]))
        yield* Fiber.join(first)
        expect(yield* holdersOf(db.url, "INBOX")).toEqual([])

        // and another process takes it afterwards
        expect(yield* b.lead("INBOX", Effect.succeed(3), { wait: false })).toEqual(Option.some(3))
        expect(yield* holdersOf(db.url, "INBOX")).toEqual([])
      }).pipe(quietly))
  })
})
