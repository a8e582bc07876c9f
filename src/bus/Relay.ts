import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Metric, Ref } from "effect"
import { outboxLag } from "../telemetry/Metrics.js"
import { EventBus, publishRetry, relayConsumer } from "./EventBus.js"
import type { PublishFailed } from "./EventBus.js"
import type { Handler } from "../log/EventLog.js"
import { EventLog } from "../log/EventLog.js"
import { supervise } from "../lib/Supervise.js"
import { databaseRetry } from "../log/Sql.js"

// Events carry each mail's text and HTML: a page's size is memory held at once (docs/performance.md).
const PAGE = 200

export interface RelayShape {
  /** Publishes everything committed so far; returns how many events went out. */
  readonly drain: Effect.Effect<number, SqlError>
  /** Drains, then again as the log grows, until interrupted. */
  readonly run: Effect.Effect<void>
  /** Events not yet published (up to a page). */
  readonly pending: Effect.Effect<number, SqlError>
  /** The relay's stored position's name; none for a bus that needs no relay. */
  readonly consumer: string | undefined
}

/** The relay of a bus that needs none: nothing is read back, nothing is pending. */
const idle: RelayShape = { drain: Effect.succeed(0), run: Effect.never, pending: Effect.succeed(0), consumer: undefined }

/**
 * The event log is the outbox: the relay publishes committed events in `seq` order and moves its
 * stored position only after the bus acknowledged them (at-least-once; consumers dedupe by event id).
 */
export class Relay extends Effect.Service<Relay>()("mailroom/Relay", {
  effect: Effect.gen(function*(): Effect.fn.Return<RelayShape, never, EventLog | EventBus> {
    const log = yield* EventLog
    const bus = yield* EventBus
    if (!bus.relayed) return idle
    const consumer = relayConsumer(bus.name)
    const down = yield* Ref.make<PublishFailed | undefined>(undefined)

    /** One state-change line per outage, not one per retry. */
    const noteFailure = (error: PublishFailed) =>
      Ref.getAndSet(down, error).pipe(
        Effect.flatMap((before) => before ? Effect.void : Effect.logWarning(`${error.message}; ingest goes on, retrying`))
      )
    const noteSuccess = Ref.getAndSet(down, undefined).pipe(
      Effect.flatMap((before) => before ? Effect.logInfo(`${bus.name} is reachable again; catching up`) : Effect.void)
    )

    /** What the bus took before it failed is not sent again: the position moves past it, the retry sends the rest. */
    const publish: Handler<never, never> = Effect.fn("Relay.publish")(function*(events, advance) {
      yield* Effect.annotateCurrentSpan({ "messaging.batch.message_count": events.length })
      const rest = yield* Ref.make(events)
      yield* Ref.get(rest).pipe(
        Effect.flatMap((pending) => bus.publish(pending)),
        Effect.tapError((error) =>
          Effect.zipRight(
            noteFailure(error),
            error.deliveredUpTo === undefined ? Effect.void : Ref.update(rest, (left) => left.filter((e) => e.seq > error.deliveredUpTo!)).pipe(
              Effect.zipRight(advance(error.deliveredUpTo).pipe(Effect.ignore))
            )
          )
        ),
        Effect.retry({ schedule: publishRetry, while: (error) => error._tag === "PublishFailed" }),
        Effect.orDie
      )
      yield* noteSuccess
      yield* Metric.set(outboxLag, events.length)
    })

    const drain = log.drain(consumer, publish, { page: PAGE })

    const pending = Effect.gen(function*() {
      return (yield* log.read(yield* log.position(consumer), PAGE)).length
    })

    /** Drains, then again as the log grows; picks up events written by this and any other instance. */
    const run = supervise({
      work: (healthy) => log.consume(consumer, publish, { page: PAGE, onDrained: healthy }),
      scheduleFor: () => databaseRetry,
      recoveredLine: (was) => `The relay reads the event log again (recovered from ${was})`
    })

    return { drain, run, pending, consumer }
  })
}) {}
