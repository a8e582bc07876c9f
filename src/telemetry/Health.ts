import { SqlClient } from "@effect/sql"
import { Clock, Data, Deferred, Duration, Effect, Fiber, Metric, Option, Schedule } from "effect"
import { HealthConfig } from "../config/Telemetry.js"
import type { ImapSession } from "../mailbox/Imap.js"
import { mailboxRoles, mailboxStalls } from "./Metrics.js"

/** The mailbox connection is open but dead: IDLE delivers nothing and no command comes back, yet no error says so. */
export class MailboxStalled extends Data.TaggedError("MailboxStalled")<{
  readonly mailbox: string
  readonly after: Duration.Duration
}> {
  override get message() {
    return `the IMAP connection for ${this.mailbox} delivered nothing for ${Duration.format(this.after)} (no pass completed, no IDLE news): dropping it and connecting again; if this repeats, check the network path to the IMAP server or raise IMAP_STALL_TIMEOUT`
  }
}

/** A stalled connection is replaced at once, then ever more slowly while the server keeps stalling. */
export const stallRetry = Schedule.exponential("1 second", 2).pipe(
  Schedule.union(Schedule.spaced("5 minutes")),
  Schedule.jittered
)

const heartbeat = Schedule.spaced("1 second")

/** Leadership takes a free lock at once; waiting longer than this means another instance holds it. */
const lockGrace = Duration.seconds(1)

/** A loop that has not ticked for this long, or a stall not cleared up for this long, is not alive. */
export const livenessBound = Duration.seconds(30)

const databaseTimeout = Duration.seconds(2)

export interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
}

export interface HealthSnapshot {
  readonly now: number
  readonly loops: ReadonlyArray<{ readonly name: string; readonly lastTick: number }>
  readonly mailboxes: ReadonlyArray<{
    readonly mailbox: string
    readonly role: "leading" | "standby"
    readonly interval: number
    /** When this instance took the mailbox on; a pass is due within 2× the interval from then. */
    readonly since: number
    readonly lastPass: number | undefined
  }>
  /** Stalls detected whose connection has not been dropped yet. */
  readonly stalls: ReadonlyArray<{ readonly mailbox: string; readonly since: number }>
}

const ago = (millis: number) => Duration.format(Duration.millis(Math.max(0, Math.round(millis / 100) * 100)))

/** /healthz: every loop ticked lately, and no stalled connection is stuck being dropped. */
export const livenessChecks = (snapshot: HealthSnapshot): ReadonlyArray<Check> => [
  ...snapshot.loops.map((loop) => {
    const quiet = snapshot.now - loop.lastTick
    return { name: loop.name, ok: quiet <= Duration.toMillis(livenessBound), detail: `ticked ${ago(quiet)} ago` }
  }),
  ...snapshot.stalls.map((stall) => {
    const stuck = snapshot.now - stall.since
    return {
      name: `stall:${stall.mailbox}`,
      ok: stuck <= Duration.toMillis(livenessBound),
      detail: `stalled connection not dropped for ${ago(stuck)}`
    }
  })
]

/** The mailboxes this instance leads each completed a pass within 2× their interval; a standby counts for nothing. */
export const mailboxChecks = (snapshot: HealthSnapshot): ReadonlyArray<Check> =>
  snapshot.mailboxes.filter((m) => m.role === "leading").map((m) => {
    const quiet = snapshot.now - (m.lastPass ?? m.since)
    return {
      name: `mailbox:${m.mailbox}`,
      ok: quiet <= 2 * m.interval,
      detail: m.lastPass === undefined
        ? `no pass completed yet, ${ago(quiet)} after taking it on (due within ${ago(2 * m.interval)})`
        : `last pass completed ${ago(quiet)} ago (due within ${ago(2 * m.interval)})`
    }
  })

interface Held {
  role: "leading" | "standby"
  interval: number
  since: number
  lastPass: number | undefined
  lastActivity: number
  ledAt: number | undefined
}

/** What the poller did lately, in memory, for /healthz, /readyz and stall detection. */
export class HealthState extends Effect.Service<HealthState>()("mailroom/HealthState", {
  scoped: Effect.gen(function*() {
    const loops = new Map<string, number>()
    /** Loops running now, by name (how many of each): the one sweep ticks them all. */
    const running = new Map<string, number>()
    /** Connections watched for a stall, by mailbox: the one sweep fails the stalled one's work. */
    const guarded = new Map<string, { readonly limit: number; readonly bound: Duration.Duration; readonly stalled: Deferred.Deferred<never, MailboxStalled> }>()
    const held = new Map<string, Held>()
    const stalls = new Map<string, number>()
    const now = Clock.currentTimeMillis

    const entry = (mailbox: string, at: number): Held => {
      const known = held.get(mailbox)
      if (known) return known
      const made: Held = { role: "standby", interval: 0, since: at, lastPass: undefined, lastActivity: at, ledAt: undefined }
      held.set(mailbox, made)
      return made
    }

    const tick = (loop: string) => Effect.map(now, (at) => void loops.set(loop, at))

    const activity = (mailbox: string) => Effect.map(now, (at) => void (entry(mailbox, at).lastActivity = at))

    /** Runs `loop`, ticked by the sweep while it runs: once it ends or the process hangs, /healthz notices. */
    const alive = (loop: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.acquireUseRelease(
        Effect.zipRight(tick(loop), Effect.sync(() => void running.set(loop, (running.get(loop) ?? 0) + 1))),
        () => effect,
        () => Effect.sync(() => (running.get(loop) ?? 1) > 1 ? void running.set(loop, running.get(loop)! - 1) : void running.delete(loop))
      )

    /**
     * Runs `lead`, which waits for the mailbox's lock. Not holding it a moment later means another
     * instance does: this one stands by and is not to blame for the mailbox. A retry that takes the
     * lock back at once stays the leader, its last pass still counting against it.
     */
    const contend = (mailbox: string) => <A, E, R>(lead: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.gen(function*() {
        const started = yield* now
        const standBy = Effect.map(now, (at) => {
          const m = entry(mailbox, at)
          if (m.ledAt === undefined || m.ledAt < started) m.role = "standby"
        })
        const fiber = yield* Effect.fork(Effect.sleep(lockGrace).pipe(Effect.zipRight(standBy)))
        return yield* Effect.ensuring(lead, Fiber.interrupt(fiber))
      })

    /** This instance holds the mailbox; taken over from a standby, a pass is due within 2× the interval from now. */
    const leading = (mailbox: string, interval: Duration.Duration) =>
      Effect.map(now, (at) => {
        const m = entry(mailbox, at)
        if (m.role === "standby") {
          m.since = at
          m.lastPass = undefined
        }
        m.role = "leading"
        m.ledAt = at
        m.interval = Duration.toMillis(interval)
      })

    const passCompleted = (mailbox: string) =>
      Effect.map(now, (at) => {
        const m = entry(mailbox, at)
        m.lastPass = at
        m.lastActivity = at
      })

    /** The session, noting every answered command and every IDLE announcement as a sign of life. */
    const observe = (mailbox: string, session: ImapSession): ImapSession => {
      const noted = <A, E>(effect: Effect.Effect<A, E>) => Effect.tap(effect, () => activity(mailbox))
      return {
        ...session,
        open: (box) => noted(session.open(box)),
        search: (range, options) => noted(session.search(range, options)),
        sizes: (uids) => noted(session.sizes(uids)),
        sizesFrom: (from) => noted(session.sizesFrom(from)),
        fetch: (uids, options) => noted(session.fetch(uids, options)),
        markSeen: (uids) => noted(session.markSeen(uids)),
        findByMessageId: (box, messageId) => noted(session.findByMessageId(box, messageId)),
        findAnswersTo: (box, messageId) => noted(session.findAnswersTo(box, messageId)),
        append: (box, source, flags) => noted(session.append(box, source, flags)),
        nextNews: noted(session.nextNews)
      }
    }

    /**
     * Runs `work` on a fresh connection and fails it with MailboxStalled once nothing came over the
     * connection for `bound`. The stall stays on record until `work` has let go of the connection.
     */
    const guard = (mailbox: string, bound: Duration.Duration) =>
    <A, E, R>(work: Effect.Effect<A, E, R>): Effect.Effect<A, E | MailboxStalled, R> =>
      Effect.gen(function*() {
        yield* activity(mailbox)
        const stalled = yield* Deferred.make<never, MailboxStalled>()
        guarded.set(mailbox, { limit: Duration.toMillis(bound), bound, stalled })
        return yield* Effect.raceFirst(work, Deferred.await(stalled))
      }).pipe(Effect.ensuring(Effect.sync(() => {
        guarded.delete(mailbox)
        stalls.delete(mailbox)
      })))

    // One fiber for every loop and connection: a thousand mailboxes must not cost a thousand timers.
    const sweep = Effect.gen(function*() {
      const at = yield* now
      for (const loop of running.keys()) loops.set(loop, at)
      for (const [mailbox, watched] of guarded) {
        if (at - entry(mailbox, at).lastActivity <= watched.limit) continue
        guarded.delete(mailbox)
        stalls.set(mailbox, at)
        yield* Metric.increment(mailboxStalls)
        yield* Deferred.fail(watched.stalled, new MailboxStalled({ mailbox, after: watched.bound }))
      }
      let leading = 0
      for (const m of held.values()) if (m.role === "leading") leading += 1
      yield* Metric.set(Metric.tagged(mailboxRoles, "role", "leading"), leading)
      yield* Metric.set(Metric.tagged(mailboxRoles, "role", "standby"), held.size - leading)
    })
    yield* sweep.pipe(Effect.repeat(heartbeat), Effect.withTracerEnabled(false), Effect.forkScoped)

    const snapshot: Effect.Effect<HealthSnapshot> = Effect.map(now, (at) => ({
      now: at,
      loops: [...loops].map(([name, lastTick]) => ({ name, lastTick })),
      mailboxes: [...held].map(([mailbox, m]) => ({ mailbox, role: m.role, interval: m.interval, since: m.since, lastPass: m.lastPass })),
      stalls: [...stalls].map(([mailbox, since]) => ({ mailbox, since }))
    }))

    return { tick, alive, contend, leading, passCompleted, activity, observe, guard, snapshot } as const
  })
}) {}

/** Events committed but not yet acknowledged by the bus: max(seq) against the relay's stored position. */
const outboxLag = (sql: SqlClient.SqlClient, consumer: string) =>
  sql<{ lag: string }>`
    SELECT coalesce((SELECT max(seq) FROM events), 0) - coalesce((SELECT last_seq FROM positions WHERE consumer = ${consumer}), 0) AS lag
  `.pipe(Effect.map((rows) => Number(rows[0]?.lag ?? 0)))

/**
 * The readiness checks: the database answers, every mailbox this instance leads had a pass lately,
 * and the relay keeps up with the log.
 */
export const readinessChecks = (relayConsumer: string | undefined, maxOutboxLag: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const state = yield* HealthState
    const within = <A, E>(effect: Effect.Effect<A, E>) =>
      effect.pipe(Effect.timeout(databaseTimeout), Effect.either, Effect.withTracerEnabled(false))
    const database = yield* within(sql`SELECT 1`)
    const lag = database._tag === "Right" && relayConsumer !== undefined ? yield* within(outboxLag(sql, relayConsumer)) : undefined
    const checks: Array<Check> = [
      {
        name: "database",
        ok: database._tag === "Right",
        detail: database._tag === "Right" ? "answers" : `no answer to SELECT 1 within ${Duration.format(databaseTimeout)}`
      },
      ...mailboxChecks(yield* state.snapshot),
      relayConsumer === undefined
        ? { name: "outbox", ok: true, detail: "no broker (KAFKA_BROKERS unset): nothing to publish" }
        : lag === undefined || lag._tag === "Left"
        ? { name: "outbox", ok: false, detail: "the outbox lag could not be read" }
        : { name: "outbox", ok: lag.right <= maxOutboxLag, detail: `${lag.right} event(s) not yet published (bound ${maxOutboxLag})` }
    ]
    return checks
  })

/**
 * Serves /healthz, /readyz and /metrics on HEALTH_HOST:HEALTH_PORT until interrupted; returns at
 * once when HEALTH_PORT is unset. The HTTP server is loaded only then: its packages (a router, a
 * WebSocket server, MIME tables) cost every other start a tenth of a second.
 */
export const serveHealth = (options: { readonly relayConsumer: string | undefined }) =>
  Effect.gen(function*() {
    const config = yield* HealthConfig
    if (Option.isNone(config.port)) return
    const { serve } = yield* Effect.promise(() => import("./HealthServer.js"))
    return yield* serve({ host: config.host, port: config.port.value, maxOutboxLag: config.maxOutboxLag, relayConsumer: options.relayConsumer })
  })
