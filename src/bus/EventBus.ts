import { Context, Data, Effect, Layer, PubSub, Ref, Schedule } from "effect"
import type { StoredEvent } from "../log/Event.js"

/**
 * The broker did not take the events; the relay keeps its position and tries again. When some were
 * acknowledged (or dead-lettered) before the failure, `deliveredUpTo` is the last of them.
 */
export class PublishFailed extends Data.TaggedError("PublishFailed")<{
  readonly bus: string
  readonly reason: string
  readonly cause?: unknown
  readonly deliveredUpTo?: bigint
}> {
  override get message() {
    return `publishing to ${this.bus} failed: ${this.reason}`
  }
}

/** The consumer name under which the relay keeps its position for a bus, and dead letters are counted. */
export const relayConsumer = (bus: string) => `relay:${bus}`

/** A broker outage is waited out: from a second doubling to half a minute, for as long as it takes. */
export const publishRetry = Schedule.exponential("1 second", 2).pipe(
  Schedule.union(Schedule.spaced("30 seconds")),
  Schedule.jittered
)

export interface EventBusShape {
  /** Names the relay's stored position, so that each bus keeps its own. */
  readonly name: string
  /**
   * Delivers in order; resolves only once the bus has acknowledged every event, or set aside as a
   * dead letter one it refuses for its size or content.
   */
  readonly publish: (events: ReadonlyArray<StoredEvent>) => Effect.Effect<void, PublishFailed>
}

export class EventBus extends Context.Tag("mailroom/EventBus")<EventBus, EventBusShape>() {
  /** For tests: publishes into `bus`, whose `published` the test reads. */
  static readonly Test = (bus: MemoryEventBus): Layer.Layer<EventBus> =>
    Layer.succeed(EventBus, EventBus.of({ name: "test", publish: (events) => bus.publish(events) }))
}

/** Committed events for consumers in this process (the default without KAFKA_BROKERS). */
export class InProcessEvents extends Context.Tag("mailroom/InProcessEvents")<InProcessEvents, PubSub.PubSub<StoredEvent>>() {}

export const InProcessEventsLive = Layer.scoped(
  InProcessEvents,
  Effect.acquireRelease(PubSub.sliding<StoredEvent>(4096), PubSub.shutdown)
)

export const EventBusInProcess = Layer.effect(
  EventBus,
  Effect.gen(function*() {
    const pubsub = yield* InProcessEvents
    return EventBus.of({
      name: "in-process",
      publish: (events) => PubSub.publishAll(pubsub, events).pipe(Effect.asVoid)
    })
  })
).pipe(Layer.provideMerge(InProcessEventsLive))

/**
 * A broker in memory, for tests (`EventBus.Test(bus)`): records what was published; `failing` makes
 * the next publishes fail, as a broker outage would; `takes`, when set, is how many events the next
 * publish delivers before the broker goes down.
 */
export class MemoryEventBus {
  readonly published = Ref.unsafeMake<ReadonlyArray<StoredEvent>>([])
  readonly failing = Ref.unsafeMake(false)
  readonly takes = Ref.unsafeMake<number | undefined>(undefined)

  publish(events: ReadonlyArray<StoredEvent>): Effect.Effect<void, PublishFailed> {
    const { failing, published, takes } = this
    return Effect.gen(function*() {
      if (yield* Ref.get(failing)) return yield* Effect.fail(down())
      const count = yield* Ref.getAndSet(takes, undefined)
      const taken = count === undefined ? events : events.slice(0, count)
      yield* Ref.update(published, (all) => [...all, ...taken])
      if (taken.length < events.length) {
        yield* Ref.set(failing, true)
        return yield* Effect.fail(down(taken.at(-1)))
      }
    })
  }
}

const down = (delivered?: StoredEvent) =>
  new PublishFailed({ bus: "test", reason: "broker down", ...(delivered ? { deliveredUpTo: delivered.seq } : {}) })
