import { Effect } from "effect"

/** A connection's announcements of new mail (IDLE or an unsolicited EXISTS), as the poller waits for them. */
export interface News<E> {
  /** The server announced new mail. */
  readonly announce: () => void
  /** The connection is gone: the wait, and every later one, fails with `error`. */
  readonly close: (error: E) => void
  /** Waits until mail was announced since the last `take`: at once if it was. One waiter at a time. */
  readonly next: Effect.Effect<void, E>
  /** Forgets what was announced so far: the pass about to start takes all of that mail. */
  readonly take: Effect.Effect<void>
}

/**
 * A latch rather than a Stream: a stream costs each of a thousand idle connections its own channel
 * executors and fibers for as long as it waits; this costs a callback. Only a pass forgets an
 * announcement, never a wait: a wait that loses a race to a timer cannot swallow one.
 */
export const makeNews = <E>(): News<E> => {
  let heard = false
  let closed: { readonly error: E } | undefined
  let waiting: ((result: Effect.Effect<void, E>) => void) | undefined
  const wake = (result: Effect.Effect<void, E>) => {
    const resume = waiting
    waiting = undefined
    resume?.(result)
  }
  return {
    announce: () => {
      heard = true
      wake(Effect.void)
    },
    close: (error) => {
      closed ??= { error }
      wake(Effect.fail(closed.error))
    },
    next: Effect.async<void, E>((resume) => {
      if (closed) return resume(Effect.fail(closed.error))
      if (heard) return resume(Effect.void)
      waiting = resume
      return Effect.sync(() => {
        if (waiting === resume) waiting = undefined
      })
    }),
    take: Effect.sync(() => void (heard = false))
  }
}
