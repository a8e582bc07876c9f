import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Duration, Effect, Metric, Option, Schedule } from "effect"
import { stallTimeout } from "../config/Telemetry.js"
import { reconcileInterval } from "../config/Config.js"
import { ImapConfig } from "../config/Config.js"
import { logins, reconnects } from "../telemetry/Metrics.js"
import { databaseRetry } from "../log/Sql.js"
import { instanceId } from "../lib/Instance.js"
import type { ImapSession } from "./Imap.js"
import { Imap } from "./Imap.js"
import type { ImapError } from "./ImapErrors.js"
import { imapRetry } from "./ImapErrors.js"
import type { LeadershipLost } from "./Leadership.js"
import { Leadership, Slots } from "./Leadership.js"
import { StateStore } from "../log/StateStore.js"
import type { CursorMoved } from "../tickets/TicketRepo.js"
import { Intake } from "../tickets/Intake.js"
import { Reconciler } from "./Reconcile.js"
import { supervise } from "../lib/Supervise.js"
import type { MailboxStalled } from "../telemetry/Health.js"
import { HealthState, stallRetry } from "../telemetry/Health.js"

/** Between passes: where the server announces new mail (IDLE), and where it cannot. */
export interface PassIntervals {
  readonly idle: Duration.Duration
  readonly poll: Duration.Duration
}

/** How often a process under MAX_MAILBOXES_PER_PROCESS tries a held lock again. */
const standby = Duration.seconds(2)

type PassError = ImapError | SqlError | CursorMoved | LeadershipLost | MailboxStalled

const scheduleFor = (error: PassError): Schedule.Schedule<unknown, unknown> => {
  switch (error._tag) {
    case "SqlError":
    case "LeadershipLost":
      return databaseRetry
    case "CursorMoved":
      return Schedule.spaced("1 second")
    case "MailboxStalled":
      return stallRetry
    default:
      return imapRetry(error)
  }
}

/** Watches the mailbox: a pass at start, on every interval, and whenever the server announces new mail. */
export class Poller extends Effect.Service<Poller>()("mailroom/Poller", {
  dependencies: [HealthState.Default, Reconciler.Default],
  effect: Effect.gen(function*() {
    const imap = yield* Imap
    const intake = yield* Intake
    const leadership = yield* Leadership
    const state = yield* StateStore
    const health = yield* HealthState
    const stallAfter = yield* stallTimeout
    const { commandTimeout } = yield* ImapConfig
    const reconciler = yield* Reconciler
    const reconcileEvery = yield* reconcileInterval
    const slots = yield* Effect.serviceOption(Slots)
    const mailbox = intake.mailbox
    const report = (health: Parameters<typeof state.reportHealth>[2]) =>
      state.reportHealth(mailbox, instanceId, health).pipe(Effect.ignore, Effect.withTracerEnabled(false))

    const connect = Effect.gen(function*() {
      const session = yield* imap.connect
      yield* Metric.increment(logins)
      yield* report({ _tag: "Login" })
      yield* Effect.logInfo(`Connected to IMAP: ${session.user}`)
      return session
    })

    /** A single pass on a fresh connection, then logout: `--once`. None when another instance leads. */
    const once = leadership.lead(mailbox, Effect.scoped(Effect.flatMap(connect, intake.pass)), { wait: false })

    /**
     * `reconcile`, on a fresh connection. No lock: a gap's commit skips whatever another instance
     * has recorded meanwhile, and leaves the cursor where it is.
     */
    const reconcile = (options: { readonly backfill: boolean }) =>
      Effect.scoped(Effect.flatMap(connect, (session) => reconciler.run(session, options)))

    /**
     * One loop per mailbox: a pass at start and on every IDLE announcement; a tick every interval
     * (or RECONCILE_INTERVAL, if shorter) runs the backstop pass when no pass ran for an interval and
     * the reconcile check when it is due. On the session of the passes, so a check never runs beside one.
     * A loop over a latch rather than a merged Stream: a thousand idle mailboxes each wait with two
     * fibers instead of a stream's executors (docs/performance.md, "Many mailboxes").
     */
    const watch = (session: ImapSession, interval: Duration.Duration) =>
      Effect.gen(function*() {
        const tickEvery = Duration.toMillis(Duration.min(interval, reconcileEvery))
        const since = { pass: yield* Clock.currentTimeMillis, reconcile: yield* Clock.currentTimeMillis }
        const due = (last: number, every: Duration.Duration) => Effect.map(Clock.currentTimeMillis, (now) => now - last >= Duration.toMillis(every))
        const pass = (trigger: string) =>
          Effect.zipRight(session.takeNews, intake.pass(session)).pipe(
            Effect.annotateLogs("trigger", trigger),
            Effect.zipLeft(health.passCompleted(mailbox)),
            Effect.zipLeft(Effect.map(Clock.currentTimeMillis, (now) => (since.pass = now)))
          )
        const tick = Effect.gen(function*() {
          if (yield* due(since.reconcile, reconcileEvery)) {
            yield* reconciler.scheduled(session)
            since.reconcile = yield* Clock.currentTimeMillis
          }
          if (yield* due(since.pass, interval)) yield* pass("interval")
        })
        let nextTick = since.pass + tickEvery
        yield* pass("start")
        for (;;) {
          const wait = Math.max(0, nextTick - (yield* Clock.currentTimeMillis))
          const woken = yield* Effect.raceFirst(Effect.as(session.nextNews, "new mail" as const), Effect.as(Effect.sleep(wait), "tick" as const))
          if (woken === "new mail") {
            yield* pass(woken)
            continue
          }
          yield* tick
          nextTick = (yield* Clock.currentTimeMillis) + tickEvery
        }
      })

    /** Leads the mailbox once its lock is free and, under MAX_MAILBOXES_PER_PROCESS, a permit too. */
    const lead = <A, E, R>(work: Effect.Effect<A, E, R>): Effect.Effect<Option.Option<A>, E | SqlError | LeadershipLost, R> =>
      Option.match(slots, {
        onNone: () => leadership.lead(mailbox, work),
        // Neither held while waiting: a permit waits for the lock only as long as one try takes.
        onSome: (permits) => {
          const attempt: Effect.Effect<Option.Option<A>, E | SqlError | LeadershipLost, R> = permits.withPermit(
            leadership.lead(mailbox, work, { wait: false })
          ).pipe(Effect.flatMap((led) => Option.isSome(led) ? Effect.succeed(led) : Effect.zipRight(Effect.sleep(standby), Effect.suspend(() => attempt))))
          return attempt
        }
      })

    /**
     * Runs until interrupted, leading the mailbox while this instance holds its lock. A server that
     * announces new mail (IDLE) gets its backstop pass every `idle`; one that cannot, every `poll`.
     */
    const forever = (intervals: PassIntervals) => {
      // A live but slow command is IMAP_COMMAND_TIMEOUT's to judge, not taken for a stall.
      const stallBound = (interval: Duration.Duration) => Option.getOrElse(stallAfter, () => Duration.max(Duration.times(interval, 3), commandTimeout))
      return supervise<PassError, never>({
        work: (healthy) =>
          report({ _tag: "State", state: "standby" }).pipe(
            Effect.zipRight(lead(
              Effect.scoped(Effect.gen(function*() {
                // Until connected, the first pass is due as on a server without IDLE.
                yield* health.leading(mailbox, intervals.poll)
                const session = yield* connect
                const interval = session.supportsIdle ? intervals.idle : intervals.poll
                yield* health.leading(mailbox, interval)
                const watched = health.observe(mailbox, session)
                yield* healthy
                yield* watch(watched, interval).pipe(health.guard(mailbox, stallBound(interval)))
              }))
            ).pipe(health.contend(mailbox))),
            Effect.asVoid
          ),
        scheduleFor,
        onFailure: (error) =>
          report({ _tag: "Error", state: `backing off (${error._tag})`, error: error.message }).pipe(
            Effect.zipRight(error._tag === "ConnectionLost" ? Metric.increment(reconnects) : Effect.void)
          )
      }).pipe(health.alive(`poller:${mailbox}`), Effect.ensuring(report({ _tag: "State", state: "stopped" })))
    }

    return { once, forever, reconcile, mailbox } as const
  })
}) {}
