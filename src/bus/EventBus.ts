import { Context, Data, Effect, Layer, Ref, Schedule } from "effect"
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
   * False for the in-process bus: every consumer in this process reads the log itself, so there is
   * nothing to relay, and the relay neither reads events back nor keeps a position.
   */
  readonly relayed: boolean
  /**
   * Delivers in order; resolves only once the bus has acknowledged every event, or set aside as a
   * dead letter one it refuses for its size or content.
   */
  readonly publish: (events: ReadonlyArray<StoredEvent>) => Effect.Effect<void, PublishFailed>
}

export class EventBus extends Context.Tag("mailroom/EventBus")<EventBus, EventBusShape>() {
  /** For tests: publishes into `bus`, whose `published` the test reads. */
  static readonly Test = (bus: MemoryEventBus): Layer.Layer<EventBus> =>
    Layer.succeed(EventBus, EventBus.of({ name: "test", relayed: true, publish: (events) => bus.publish(events) }))
}

/**
 * The default without KAFKA_BROKERS. The projections and the responder are this process's consumers
 * and read the log directly; a relay reading every event back (and opening its sealed fields) to
 * hand it to nobody cost about a tenth of a small-mail run (docs/performance.md). Set KAFKA_BROKERS later
 * and the Kafka relay starts from its own position: it publishes the whole log.
 */
export const EventBusInProcess = Layer.succeed(EventBus, EventBus.of({ name: "in-process", relayed: false, publish: () => Effect.void }))

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
