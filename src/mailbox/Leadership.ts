import { createHash } from "node:crypto"
import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Deferred, Effect, Layer, Option } from "effect"
import { DatabaseConfig, maxMailboxesPerProcess } from "../config/Config.js"
import { type FairSemaphore, makeFairSemaphore } from "../lib/FairSemaphore.js"
import { makeAdvisoryLocks } from "./AdvisoryLocks.js"

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

/**
 * Session-level advisory locks, all on one connection of the process's own: they end with the
 * process, even on kill -9, and a thousand mailboxes still take one connection.
 */
const advisory = Effect.map(makeAdvisoryLocks, (locks) =>
  Leadership.of({
    lead: <A, E, R>(mailbox: string, work: Effect.Effect<A, E, R>, options = { wait: true }) =>
      Effect.scoped(Effect.gen(function*() {
        const key = lockKey(mailbox)
        const taken = yield* locks.tryHold(key)
        if (Option.isNone(taken) && !options.wait) return Option.none<A>()
        if (Option.isNone(taken)) yield* Effect.logInfo(`Another instance holds ${mailbox}: standing by`)
        const held = Option.isSome(taken) ? taken.value : yield* locks.awaitHold(key)
        yield* Effect.logInfo(`This instance leads ${mailbox}`)
        const lost = Deferred.await(held.lost).pipe(Effect.zipRight(Effect.fail(new LeadershipLost({ mailbox }))))
        return Option.some(yield* Effect.raceFirst(work, lost))
      }))
  }))

/** One process per data folder is already enforced for the embedded database: no lock needed. */
const single = Leadership.of({ lead: (_mailbox, work) => Effect.map(work, Option.some) })

/** The locks on the SqlClient's server, for a process (or a test) that brings its own client. */
export const LeadershipAdvisory: Layer.Layer<Leadership, never, SqlClient.SqlClient> = Layer.scoped(Leadership, advisory)

export const LeadershipLive = Layer.unwrapEffect(
  Effect.map(DatabaseConfig, (config) =>
    Option.isSome(config.url) ? LeadershipAdvisory : Layer.succeed(Leadership, single)
  )
)

/**
 * MAX_MAILBOXES_PER_PROCESS as permits: a poller takes one before it tries its mailbox's lock and
 * keeps it while it leads. A process at its bound tries no more locks, so the other instances take
 * the rest; when one of them dies, whoever has a free permit takes its mailboxes over.
 */
export class Slots extends Context.Tag("mailroom/Slots")<Slots, FairSemaphore>() {
  static readonly Live = Layer.unwrapEffect(
    Effect.map(maxMailboxesPerProcess, Option.match({
      onNone: () => Layer.empty as Layer.Layer<never>,
      onSome: (n) => Layer.effect(Slots, makeFairSemaphore(n))
    }))
  )
}
