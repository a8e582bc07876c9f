import type { SqlError } from "@effect/sql/SqlError"
import { Chunk, Duration, Effect, Schedule, Stream } from "effect"
import type { ImapSession } from "../services/Imap.js"
import { Imap } from "../services/Imap.js"
import type { ImapError } from "../services/ImapErrors.js"
import { authenticationRetry, connectionRetry, protocolRetry, throttledRetry } from "../services/ImapErrors.js"
import type { CursorMoved } from "../services/TicketRepo.js"
import { Intake } from "./Intake.js"

type PassError = ImapError | SqlError | CursorMoved

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

    const connect = Effect.gen(function*() {
      const session = yield* imap.connect
      yield* Effect.logInfo(`Connected to IMAP: ${session.user}`)
      return session
    })

    /** A single pass on a fresh connection, then logout: `--once`. */
    const once = Effect.scoped(Effect.flatMap(connect, intake.pass))

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
        while (true) {
          const exit = yield* Effect.scoped(
            Effect.gen(function*() {
              const session = yield* connect
              if (failing) {
                yield* Effect.logInfo(`Recovered from ${failing}`)
                failing = undefined
                drivers.clear()
              }
              yield* watch(session, interval)
            })
          ).pipe(Effect.either)
          if (exit._tag === "Right") return
          const error = exit.left
          if (failing !== error._tag) yield* Effect.logError(error.message)
          failing = error._tag
          const driver = drivers.get(error._tag) ?? (yield* Schedule.driver(scheduleFor(error)))
          drivers.set(error._tag, driver)
          yield* driver.next(error).pipe(Effect.ignore)
        }
      })

    return { once, forever } as const
  })
}) {}
