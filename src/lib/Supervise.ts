import { Effect, Schedule } from "effect"

export interface Supervised<E, R> {
  /** Runs until it fails; calls `healthy` once it has shown that things work again. */
  readonly work: (healthy: Effect.Effect<void>) => Effect.Effect<void, E, R>
  /** How long each kind of failure waits before the next try. */
  readonly scheduleFor: (error: E) => Schedule.Schedule<unknown, unknown>
  /** Told of every failure, e.g. to record it for `status`. */
  readonly onFailure?: (error: E) => Effect.Effect<void>
  /** Told once things work again after a failure. */
  readonly onRecovered?: Effect.Effect<void>
  readonly recoveredLine?: (was: string) => string
}

/**
 * Keeps a long-running part of mailroom alive. Each kind of failure backs off by its own Schedule; a
 * recovery resets them all; each change of state is logged once, never once per retry.
 */
export const supervise = <E extends { readonly _tag: string; readonly message: string }, R>(
  options: Supervised<E, R>
): Effect.Effect<void, never, R> =>
  Effect.gen(function*() {
    let failing: string | undefined
    const drivers = new Map<string, Schedule.ScheduleDriver<unknown, unknown, never>>()
    const healthy = Effect.suspend(() => {
      if (!failing) return Effect.void
      const was = failing
      failing = undefined
      drivers.clear()
      const line = Effect.logInfo(options.recoveredLine?.(was) ?? `Recovered from ${was}`)
      return options.onRecovered ? Effect.zipRight(line, options.onRecovered) : line
    })
    while (true) {
      const exit = yield* Effect.either(options.work(healthy))
      if (exit._tag === "Right") return
      const error = exit.left
      if (failing !== error._tag) yield* Effect.logError(error.message)
      failing = error._tag
      if (options.onFailure) yield* options.onFailure(error)
      const driver = drivers.get(error._tag) ?? (yield* Schedule.driver(options.scheduleFor(error)))
      drivers.set(error._tag, driver)
      yield* driver.next(error).pipe(Effect.ignore)
    }
  })
