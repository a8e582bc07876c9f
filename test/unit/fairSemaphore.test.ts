import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Option } from "effect"
import { makeFairSemaphore } from "../../src/lib/FairSemaphore.js"

const within = <A>(effect: Effect.Effect<A>) => effect.pipe(Effect.timeout("1 second"), Effect.option)

describe("a fair semaphore", () => {
  it.live("hands a freed permit to the longest waiter", () =>
    Effect.gen(function*() {
      const lock = yield* makeFairSemaphore(1)
      const order: Array<number> = []
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(lock.withPermit(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const waiters = []
      for (let i = 0; i < 20; i++) {
        waiters.push(yield* Effect.fork(lock.withPermit(Effect.sync(() => void order.push(i)))))
        yield* Effect.yieldNow()
      }
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      yield* Fiber.joinAll(waiters)
      expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i))
    }))

  it.live("never lets more than its permits in at once", () =>
    Effect.gen(function*() {
      const lock = yield* makeFairSemaphore(3)
      let inside = 0
      let most = 0
      yield* Effect.forEach(Array.from({ length: 200 }), () =>
        lock.withPermit(Effect.gen(function*() {
          inside += 1
          most = Math.max(most, inside)
          yield* Effect.yieldNow()
          inside -= 1
        })), { concurrency: "unbounded", discard: true })
      expect(most).toBe(3)
    }))

  it.live("loses no permit to waiters interrupted while queued or just as a permit reaches them", () =>
    Effect.gen(function*() {
      const lock = yield* makeFairSemaphore(2)
      for (let round = 0; round < 200; round++) {
        const gate = yield* Deferred.make<void>()
        const holders = [yield* Effect.fork(lock.withPermit(Deferred.await(gate))), yield* Effect.fork(lock.withPermit(Deferred.await(gate)))]
        yield* Effect.yieldNow()
        const doomed = yield* Effect.forEach(Array.from({ length: 3 }), () => Effect.fork(lock.withPermit(Effect.never)))
        yield* Effect.yieldNow()
        // The holders leave and the queued are interrupted in every order the scheduler makes of it.
        yield* Deferred.succeed(gate, undefined)
        if (round % 2 === 0) yield* Effect.yieldNow()
        yield* Effect.forEach(doomed, Fiber.interruptFork, { discard: true })
        yield* Fiber.joinAll(holders)
        yield* Effect.forEach(doomed, Fiber.await, { discard: true })
        // Both permits are free again: two can hold at once.
        const both = yield* Deferred.make<void>()
        let inside = 0
        const pair = yield* Effect.forEach(Array.from({ length: 2 }), () =>
          Effect.fork(lock.withPermit(Effect.suspend(() => ++inside === 2 ? Deferred.succeed(both, undefined) : Deferred.await(both)))))
        expect(Option.isSome(yield* within(Fiber.joinAll(pair)))).toBe(true)
      }
    }))
})
