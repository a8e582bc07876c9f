import { EventLog } from "../../src/log/EventLog.js"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Ref, TestClock } from "effect"
import { Intake } from "../../src/tickets/Intake.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { Relay } from "../../src/bus/Relay.js"
import { EventBus, EventBusInProcess, MemoryEventBus } from "../../src/bus/EventBus.js"
import { Imap, MemoryMailbox } from "../../src/mailbox/Imap.js"
import { Leadership } from "../../src/mailbox/Leadership.js"
import { Parser } from "../../src/mail/Parser.js"
import { SenderAuthenticator } from "../../src/mail/SenderAuth.js"
import { configLayer, mail, storeLayer } from "./layers.js"

const setup = (mailbox: MemoryMailbox, busLayer?: Layer.Layer<EventBus>) =>
  Effect.sync(() => {
    const bus = new MemoryEventBus()
    const layer = Layer.mergeAll(Poller.Default, Relay.Default).pipe(
      Layer.provide(Intake.Default),
      Layer.provide(
        Layer.mergeAll(Imap.Test(mailbox), Parser.Default, SenderAuthenticator.Default, busLayer ?? EventBus.Test(bus), Leadership.Test)
      ),
      Layer.provideMerge(storeLayer),
      Layer.provide(configLayer({ AGENT: "off" }))
    )
    return { bus, layer }
  })

describe("Relay", () => {
  it.scoped("without a broker reads nothing back: the log's own consumers are all there is", () =>
    Effect.gen(function*() {
      const mailbox = new MemoryMailbox()
      for (let i = 0; i < 3; i++) mailbox.append(mail())
      const { layer } = yield* setup(mailbox, EventBusInProcess)
      yield* Effect.gen(function*() {
        const relay = yield* Relay
        const log = yield* EventLog
        yield* (yield* Poller).once.pipe(Effect.map(Option.getOrThrow))
        expect((yield* log.read(0n, 10)).length).toBe(3)
        expect(yield* relay.drain).toBe(0)
        expect(yield* relay.pending).toBe(0)
        expect(relay.consumer).toBeUndefined()
        expect(yield* log.position("relay:in-process")).toBe(0n)
      }).pipe(Effect.provide(layer))
    }))

  it.scoped("publishes committed events in order and keeps its position behind an outage, then catches up", () =>
    Effect.gen(function*() {
      const mailbox = new MemoryMailbox()
      for (let i = 0; i < 3; i++) mailbox.append(mail())
      const { bus, layer } = yield* setup(mailbox)
      yield* Effect.gen(function*() {
        const poller = yield* Poller
        const relay = yield* Relay
        const log = yield* EventLog
        yield* poller.once.pipe(Effect.map(Option.getOrThrow))
        expect(yield* relay.drain).toBe(3)
        expect((yield* Ref.get(bus.published)).map((e) => e.seq)).toEqual([1n, 2n, 3n])

        yield* Ref.set(bus.failing, true)
        for (let i = 0; i < 2; i++) mailbox.append(mail())
        yield* poller.once
        const draining = yield* Effect.fork(relay.drain)
        yield* TestClock.adjust("10 seconds")
        expect(yield* log.position("relay:test")).toBe(3n)
        expect(yield* relay.pending).toBe(2)

        yield* Ref.set(bus.failing, false)
        yield* TestClock.adjust("1 minute")
        expect(yield* Fiber.join(draining)).toBe(2)
        expect((yield* Ref.get(bus.published)).map((e) => e.seq)).toEqual([1n, 2n, 3n, 4n, 5n])
        expect(yield* log.position("relay:test")).toBe(5n)
      }).pipe(Effect.provide(layer))
    }))

  it.scoped("keeps what the bus took before it failed: the position moves past it and the retry sends only the rest", () =>
    Effect.gen(function*() {
      const mailbox = new MemoryMailbox()
      for (let i = 0; i < 5; i++) mailbox.append(mail())
      const { bus, layer } = yield* setup(mailbox)
      yield* Effect.gen(function*() {
        const poller = yield* Poller
        const relay = yield* Relay
        const log = yield* EventLog
        yield* poller.once.pipe(Effect.map(Option.getOrThrow))
        yield* Ref.set(bus.takes, 2)
        const draining = yield* Effect.fork(relay.drain)
        yield* TestClock.adjust("10 seconds")
        expect(yield* log.position("relay:test")).toBe(2n)
        expect(yield* relay.pending).toBe(3)

        yield* Ref.set(bus.failing, false)
        yield* TestClock.adjust("1 minute")
        expect(yield* Fiber.join(draining)).toBe(5)
        expect((yield* Ref.get(bus.published)).map((e) => e.seq)).toEqual([1n, 2n, 3n, 4n, 5n])
        expect(yield* log.position("relay:test")).toBe(5n)
      }).pipe(Effect.provide(layer))
    }))

  it.scoped("publishes what this process commits at once, without waiting for its poll", () =>
    Effect.gen(function*() {
      const mailbox = new MemoryMailbox()
      const { bus, layer } = yield* setup(mailbox)
      yield* Effect.gen(function*() {
        const poller = yield* Poller
        const relay = yield* Relay
        yield* Effect.forkScoped(relay.run)
        yield* TestClock.adjust("10 seconds")
        for (let i = 0; i < 2; i++) mailbox.append(mail())
        yield* poller.once
        // The test clock stands still: only the commit itself can have woken the relay.
        for (let i = 0; i < 50 && (yield* Ref.get(bus.published)).length < 2; i++) yield* Effect.yieldNow()
        expect((yield* Ref.get(bus.published)).map((e) => e.seq)).toEqual([1n, 2n])
      }).pipe(Effect.provide(layer))
    }))
})
