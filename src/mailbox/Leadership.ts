import { createHash } from "node:crypto"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer, Option, Schedule } from "effect"
import { DatabaseConfig } from "../config/Config.js"

/** The session holding the mailbox lock died (PostgreSQL restarted, network cut): stop ingesting. */
export class LeadershipLost extends Data.TaggedError("LeadershipLost")<{ readonly mailbox: string }> {
  override get message() {
    return `lost the lock on ${this.mailbox} (its database session ended); standing by until it can be taken again`
  }
}

export interface LeadershipShape {
  /**
   * Runs `work` while this instance holds the mailbox's lock, waiting as a standby until it can take
   * it. With `wait: false`, returns None at once when another instance holds it.
   */
  readonly lead: <A, E, R>(
    mailbox: string,
    work: Effect.Effect<A, E, R>,
    options?: { readonly wait: boolean }
  ) => Effect.Effect<Option.Option<A>, E | SqlError | LeadershipLost, R>
}

export class Leadership extends Context.Tag("mailroom/Leadership")<Leadership, LeadershipShape>() {
  /** For tests: one instance, always the leader. */
  static readonly Test: Layer.Layer<Leadership> = Layer.sync(Leadership, () => single)
}

/** A stable 63-bit key per mailbox for pg_advisory_lock. */
export const lockKey = (mailbox: string): string =>
  BigInt.asIntN(64, BigInt(`0x${createHash("sha256").update(`mailroom:${mailbox}`).digest("hex").slice(0, 16)}`)).toString()

const standbyPoll = Schedule.spaced("2 seconds")
const heartbeat = Schedule.spaced("3 seconds")

/** A session-level advisory lock on a connection of its own: it ends with the process, even on kill -9. */
const advisory = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return Leadership.of({
    lead: (mailbox, work, options = { wait: true }) =>
      Effect.scoped(Effect.gen(function*() {
        const key = lockKey(mailbox)
        const connection = yield* sql.reserve
        const tryLock = connection.execute("SELECT pg_try_advisory_lock($1::bigint) AS locked", [key], undefined).pipe(
          Effect.map((rows) => rows[0]?.locked === true)
        )
        let locked = yield* tryLock
        if (!locked && !options.wait) return Option.none()
        if (!locked) {
          yield* Effect.logInfo(`Another instance holds ${mailbox}: standing by`)
          yield* tryLock.pipe(Effect.repeat({ schedule: standbyPoll, until: (ok) => ok }), Effect.withTracerEnabled(false))
          locked = true
        }
        yield* Effect.addFinalizer(() =>
          connection.execute("SELECT pg_advisory_unlock($1::bigint)", [key], undefined).pipe(Effect.ignore)
        )
        yield* Effect.logInfo(`This instance leads ${mailbox}`)
        const alive = connection.execute("SELECT 1", [], undefined).pipe(
          Effect.withTracerEnabled(false),
          Effect.repeat(heartbeat),
          Effect.catchAll(() => Effect.void),
          Effect.zipRight(Effect.fail(new LeadershipLost({ mailbox })))
        )
        return Option.some(yield* Effect.raceFirst(work, alive))
      }))
  })
})

/** One process per data folder is already enforced for the embedded database: no lock needed. */
const single = Leadership.of({ lead: (_mailbox, work) => Effect.map(work, Option.some) })

export const LeadershipLive = Layer.unwrapEffect(
  Effect.map(DatabaseConfig, (config) =>
    Option.isSome(config.url) ? Layer.effect(Leadership, advisory) : Layer.succeed(Leadership, single)
  )
)
