import { Effect } from "effect"

/**
 * Permits handed to the longest waiter, one at a time.
 *
 * Effect 3's Semaphore wakes every waiter whenever a permit frees; all but one find it taken and
 * queue again inside their previous wait, so each lost wake-up deepens the waiter's stack. With a
 * thousand mailboxes queued on one lock session at start-up that was a million wake-ups and half a
 * gigabyte of stacks (docs/performance.md, "Many mailboxes"). Here a release wakes exactly one.
 */
export interface FairSemaphore {
  /** Runs `self` holding one permit, after those who asked before. */
  readonly withPermit: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export const makeFairSemaphore = (permits: number): Effect.Effect<FairSemaphore> =>
  Effect.sync(() => {
    let free = permits
    const waiters: Array<() => void> = []

    const release = () => {
      const next = waiters.shift()
      if (next === undefined) free += 1
      else next()
    }

    const take = Effect.async<void>((resume) => {
      if (free > 0) {
        free -= 1
        return resume(Effect.void)
      }
      let granted = false
      const wake = () => {
        granted = true
        resume(Effect.void)
      }
      waiters.push(wake)
      // Interrupted while queued: leave the queue, or pass on the permit handed over meanwhile.
      return Effect.sync(() => {
        if (granted) return release()
        const at = waiters.indexOf(wake)
        if (at >= 0) waiters.splice(at, 1)
      })
    })

    return {
      withPermit: (self) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.zipRight(restore(take), Effect.ensuring(restore(self), Effect.sync(release)))
        )
    }
  })
