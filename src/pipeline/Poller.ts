import type { SqlError } from "@effect/sql/SqlError"
import { Chunk, Duration, Effect, Schedule, Stream } from "effect"
import { instanceId } from "../Instance.js"
import type { ImapSession } from "../services/Imap.js"
import { Imap } from "../services/Imap.js"
import type { ImapError } from "../services/ImapErrors.js"
import { authenticationRetry, connectionRetry, protocolRetry, throttledRetry } from "../services/ImapErrors.js"
import type { LeadershipLost } from "../services/Leadership.js"
import { Leadership } from "../services/Leadership.js"
import { StateStore } from "../services/StateStore.js"
import type { CursorMoved } from "../services/TicketRepo.js"
import { Intake } from "./Intake.js"

type PassError = ImapError | SqlError | CursorMoved | LeadershipLost

/** PostgreSQL away: pause intake and retry; every batch is one transaction, so nothing is half-written. */
export const databaseRetry = Schedule.exponential("1 second", 2).pipe(Schedule.union(Schedule.spaced("30 seconds")))

const scheduleFor = (error: PassError): Schedule.Schedule<unknown, unknown> => {
  switch (error._tag) {
    case "AuthenticationFailed":
      return authenticationRetry
    case "Throttled":
      return error.retryAfter ? Schedule.spaced(Duration.max(error.retryAfter, "5 seconds")).pipe(Schedule.jittered) : throttledRetry
    case "ConnectionLost":
      return connectionRetry
    case "SqlError":
    case "LeadershipLost":
      return databaseRetry
    case "CursorMoved":
      return Schedule.spaced("1 second")
    case "MailboxNotFound":
    case "ImapProtocolError":
      return protocolRetry
  }
}

/** Watches the mailbox: a pass at start, on every interval, and whenever the server announces new mail. */
export class Poller extends Effect.Service<Poller>()("mailroom/Poller", {
  effect: Effect.gen(function*() {
    const imap = yield* Imap
    const intake = yield* Intake
    const leadership = yield* Leadership
    const state = yield* StateStore
    const mailbox = intake.mailbox
    const report = (health: Parameters<typeof state.reportHealth>[2]) =>
      state.reportHealth(mailbox, instanceId, health).pipe(Effect.ignore)

    const connect = Effect.gen(function*() {
      const session = yield* imap.connect
      yield* report({ _tag: "Login" })
      yield* Effect.logInfo(`Connected to IMAP: ${session.user}`)
      return session
    })

    /** A single pass on a fresh connection, then logout: `--once`. None when another instance leads. */
    const once = leadership.lead(mailbox, Effect.scoped(Effect.flatMap(connect, intake.pass)), { wait: false })

    const watch = (session: ImapSession, interval: Duration.Duration) =>
      Stream.fromSchedule(Schedule.spaced(interval)).pipe(
        Stream.as("interval" as const),
        Stream.merge(session.newMail.pipe(Stream.as("new mail" as const))),
        Stream.prepend(Chunk.of("start" as const)),
        Stream.mapEffect((trigger) => intake.pass(session).pipe(Effect.annotateLogs("trigger", trigger))),
        Stream.runDrain
      )

    /**
     * Runs until interrupted. Each kind of failure waits by its own Schedule; a success resets them
     * all, and each change of state is logged once rather than on every retry.
     */
    const forever = (interval: Duration.Duration) =>
      Effect.gen(function*() {
        let failing: string | undefined
        const drivers = new Map<string, Schedule.ScheduleDriver<unknown, unknown, never>>()
        const recovered = Effect.suspend(() => {
          if (!failing) return Effect.void
          const was = failing
          failing = undefined
          drivers.clear()
          return Effect.logInfo(`Recovered from ${was}`)
        })
        while (true) {
          yield* report({ _tag: "State", state: "standby" })
          const exit = yield* leadership.lead(
            mailbox,
            Effect.scoped(Effect.gen(function*() {
              const session = yield* connect
              yield* recovered
              yield* watch(session, interval)
            }))
          ).pipe(Effect.either)
          if (exit._tag === "Right") return
          const error = exit.left
          if (failing !== error._tag) yield* Effect.logError(error.message)
          failing = error._tag
          yield* report({ _tag: "Error", state: `backing off (${error._tag})`, error: error.message })
          const driver = drivers.get(error._tag) ?? (yield* Schedule.driver(scheduleFor(error)))
          drivers.set(error._tag, driver)
          yield* driver.next(error).pipe(Effect.ignore)
        }
      }).pipe(Effect.ensuring(report({ _tag: "State", state: "stopped" })))

    return { once, forever, mailbox } as const
  })
}) {}

