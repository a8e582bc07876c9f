import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import { makeNews } from "../../src/mailbox/News.js"

const within = (effect: Effect.Effect<void, string>) => effect.pipe(Effect.timeout("1 second"), Effect.option)

describe("news of a connection", () => {
  it.live("an announcement made before anyone waits is kept until a pass takes it", () =>
    Effect.gen(function*() {
      const news = makeNews<string>()
      news.announce()
      expect(Option.isSome(yield* within(news.next))).toBe(true)
      // Waiting again does not forget it: only the pass does.
      expect(Option.isSome(yield* within(news.next))).toBe(true)
      yield* news.take
      expect(Option.isNone(yield* within(news.next))).toBe(true)
    }))

  it.live("a wait that loses a race to a timer does not swallow the announcement that woke it", () =>
    Effect.gen(function*() {
      const news = makeNews<string>()
      const waiter = yield* Effect.fork(news.next)
      yield* Effect.yieldNow()
      // The announcement comes, and the waiter is interrupted before it could run on.
      news.announce()
      yield* Fiber.interrupt(waiter)
      expect(Option.isSome(yield* within(news.next))).toBe(true)
    }))

  it.live("wakes a waiter, and fails every wait once the connection is gone", () =>
    Effect.gen(function*() {
      const news = makeNews<string>()
      const waiter = yield* Effect.fork(news.next)
      yield* Effect.yieldNow()
      news.announce()
      expect(Exit.isSuccess(yield* Fiber.await(waiter))).toBe(true)
      yield* news.take
      const dropped = yield* Effect.fork(news.next)
      yield* Effect.yieldNow()
      news.close("closed by the server")
      expect(yield* Fiber.join(dropped).pipe(Effect.flip)).toBe("closed by the server")
      expect(yield* news.next.pipe(Effect.flip)).toBe("closed by the server")
    }))
})
