import { SqlClient } from "@effect/sql"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import type { Scope } from "effect"
import { Deferred, Effect, Exit, Option, Schedule } from "effect"
import { makeFairSemaphore } from "../lib/FairSemaphore.js"

const standbyPoll = Schedule.spaced("2 seconds")
const heartbeat = Schedule.spaced("3 seconds")

/**
 * The one PostgreSQL session holding every lock of this process: a connection per mailbox would
 * need a thousand connections for a thousand mailboxes.
 */
export interface LockSession {
  /** Completes when the session is gone: PostgreSQL released its locks with it. */
  readonly lost: Deferred.Deferred<void>
}

interface Session extends LockSession {
  readonly connection: Connection
  /** A connection runs one statement at a time; this says so, and keeps a try and its bookkeeping together. */
  readonly permit: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Keys this session holds. pg_try_advisory_lock on one of them would succeed again and count
   * twice, so they are never tried until unlocked.
   */
  readonly held: Set<string>
}

interface Waiter {
  readonly done: Deferred.Deferred<Session, SqlError>
  granted: Session | undefined
}

export interface AdvisoryLocks {
  /** The key's lock, held until the scope closes; None when another session holds it (or this one already does). */
  readonly tryHold: (key: string) => Effect.Effect<Option.Option<LockSession>, SqlError, Scope.Scope>
  /** Stands by until the key's lock is taken, then holds it until the scope closes. */
  readonly awaitHold: (key: string) => Effect.Effect<LockSession, SqlError, Scope.Scope>
}

/** Session-level advisory locks on one reserved connection, opened on first use within the caller's scope. */
export const makeAdvisoryLocks: Effect.Effect<AdvisoryLocks, never, SqlClient.SqlClient | Scope.Scope> = Effect.gen(
  function*() {
    const sql = yield* SqlClient.SqlClient
    const scope = yield* Effect.scope
    const opening = yield* makeFairSemaphore(1)
    let current: Session | undefined
    /** Standbys by key, first come first served when this process has several for one mailbox. */
    const waiting = new Map<string, Array<Waiter>>()

    /**
     * Uninterruptible once it has the connection: an interrupted pg_try_advisory_lock may have taken
     * the lock without anyone knowing. Any failure means the session can no longer be trusted with
     * its locks, so its holders are told.
     */
    const exclusive = <A>(session: Session, effect: Effect.Effect<A, SqlError>) =>
      session.permit(Effect.uninterruptible(effect)).pipe(Effect.tapError(() => Deferred.succeed(session.lost, undefined)))

    const command = (session: Session, statement: string, params: ReadonlyArray<unknown> = []) =>
      exclusive(session, session.connection.execute(statement, params, undefined))

    /** The session's fiber owns the reserved connection, so that it goes when the session is lost, and not before. */
    const open = Effect.gen(function*() {
      const ready = yield* Deferred.make<Session, SqlError>()
      yield* Effect.scoped(Effect.gen(function*() {
        const session: Session = {
          connection: yield* sql.reserve,
          permit: (yield* makeFairSemaphore(1)).withPermit,
          held: new Set(),
          lost: yield* Deferred.make<void>()
        }
        // Back to the pool without locks (a dead connection fails this, and the pool drops it).
        yield* Effect.addFinalizer(() =>
          Deferred.succeed(session.lost, undefined).pipe(
            Effect.zipRight(command(session, "SELECT pg_advisory_unlock_all()")),
            Effect.ignore
          )
        )
        yield* Effect.forkScoped(command(session, "SELECT 1").pipe(Effect.repeat(heartbeat), Effect.withTracerEnabled(false)))
        current = session
        yield* Deferred.succeed(ready, session)
        yield* Deferred.await(session.lost)
      })).pipe(
        Effect.onExit((exit) => Exit.isFailure(exit) ? Deferred.failCause(ready, exit.cause) : Effect.void),
        Effect.interruptible, Effect.forkIn(scope)
      )
      return yield* Deferred.await(ready)
    })

    /** The live session, or a new one: the old one's locks went with it. */
    const session = opening.withPermit(Effect.suspend(() => {
      const live = current
      return live === undefined
        ? open
        : Effect.flatMap(Deferred.isDone(live.lost), (lost) => lost ? open : Effect.succeed(live))
    }))

    /** Tries, in one statement, the keys this session does not hold yet; those taken are held from then on. */
    const tryKeys = (session: Session, keys: Iterable<string>) =>
      exclusive(
        session,
        Effect.suspend(() => {
          const fresh = [...new Set(keys)].filter((key) => !session.held.has(key))
          if (fresh.length === 0) return Effect.succeed<ReadonlyArray<string>>([])
          return session.connection.execute(
            "SELECT k::text AS key, pg_try_advisory_lock(k) AS locked FROM unnest($1::bigint[]) AS k",
            [fresh],
            undefined
          ).pipe(Effect.map((rows) => {
            const taken = rows.filter((row) => row.locked === true).map((row) => String(row.key))
            for (const key of taken) session.held.add(key)
            return taken
          }))
        })
      )

    /** Exactly one unlock per lock taken, or the session would keep holding it. */
    const release = (session: Session, key: string) =>
      command(session, "SELECT pg_advisory_unlock($1::bigint)", [key]).pipe(
        Effect.ensuring(Effect.sync(() => session.held.delete(key))),
        Effect.ignore
      )

    const grant = (session: Session, taken: ReadonlyArray<string>) =>
      Effect.forEach(taken, (key) => {
        const queue = waiting.get(key)
        const waiter = queue?.shift()
        if (queue?.length === 0) waiting.delete(key)
        // Its standby gave up while the statement ran.
        if (waiter === undefined) return release(session, key)
        waiter.granted = session
        return Deferred.succeed(waiter.done, session)
      }, { discard: true })

    const failAll = (error: SqlError) =>
      Effect.suspend(() => {
        const all = [...waiting.values()].flat()
        waiting.clear()
        return Effect.forEach(all, (waiter) => Deferred.fail(waiter.done, error), { discard: true })
      })

    /** One statement per tick for all standbys, however many mailboxes they wait for. */
    const poll = Effect.suspend(() =>
      waiting.size === 0 ? Effect.void : Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(session), (live) =>
          Effect.flatMap(tryKeys(live, waiting.keys()), (taken) => grant(live, taken))
        )
      )
    ).pipe(Effect.catchAll(failAll))
    yield* poll.pipe(Effect.repeat(standbyPoll), Effect.withTracerEnabled(false), Effect.interruptible, Effect.forkIn(scope))

    return {
      tryHold: (key) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const live = yield* restore(session)
            if ((yield* tryKeys(live, [key])).length === 0) return Option.none()
            yield* Effect.addFinalizer(() => release(live, key))
            return Option.some<LockSession>(live)
          })
        ),
      awaitHold: (key) =>
        Effect.gen(function*() {
          const waiter: Waiter = { done: yield* Deferred.make<Session, SqlError>(), granted: undefined }
          // Queued and given its release in one step: a lock granted to a standby that then gives up is unlocked.
          yield* Effect.acquireRelease(
            Effect.sync(() => waiting.set(key, [...(waiting.get(key) ?? []), waiter])),
            () =>
              Effect.suspend(() => {
                if (waiter.granted !== undefined) return release(waiter.granted, key)
                const rest = (waiting.get(key) ?? []).filter((other) => other !== waiter)
                if (rest.length === 0) waiting.delete(key)
                else waiting.set(key, rest)
                return Effect.void
              })
          )
          return yield* Deferred.await(waiter.done)
        })
    }
  }
)
