import { Effect, Metric, Ref } from "effect"
import type { StoredEvent } from "../log/Event.js"
import { outboxLag } from "../telemetry/Metrics.js"
import { EventBus, publishRetry, relayConsumer } from "./EventBus.js"
import type { PublishFailed } from "./EventBus.js"
import { StateStore } from "../log/StateStore.js"
import { TicketRepo } from "../tickets/TicketRepo.js"
import { supervise } from "../lib/Supervise.js"
import { databaseRetry } from "../log/Sql.js"

// Events carry each mail's text and HTML: pages of 500 took 10–15 MB more at the end of a 10,000-mail pass.
const PAGE = 200

/**
 * The event log is the outbox: the relay publishes committed events in `seq` order and moves its
 * stored position only after the bus acknowledged them (at-least-once; consumers dedupe by event id).
 */
export class Relay extends Effect.Service<Relay>()("mailroom/Relay", {
  effect: Effect.gen(function*() {
    const repo = yield* TicketRepo
    const state = yield* StateStore
    const bus = yield* EventBus
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
    const keepProgress = (rest: Ref.Ref<ReadonlyArray<StoredEvent>>, error: PublishFailed) => {
      const delivered = error.deliveredUpTo
      if (delivered === undefined) return Effect.void
      return Ref.update(rest, (events) => events.filter((e) => e.seq > delivered)).pipe(
        Effect.zipRight(state.savePosition(consumer, delivered))
      )
    }

    const publishPage = Effect.fn("Relay.publish")(function*(after: bigint) {
      // Polling an empty log every 250 ms would flood the tracer with empty traces.
      const events = yield* repo.eventsAfter(after, PAGE).pipe(Effect.withTracerEnabled(false))
      if (events.length === 0) return 0
      yield* Effect.annotateCurrentSpan({ "messaging.batch.message_count": events.length })
      const rest = yield* Ref.make(events)
      yield* Ref.get(rest).pipe(
        Effect.flatMap((pending) => bus.publish(pending)),
        Effect.tapError((error) => Effect.zipRight(noteFailure(error), keepProgress(rest, error))),
        Effect.retry({ schedule: publishRetry, while: (error) => error._tag === "PublishFailed" })
      )
      yield* noteSuccess
      yield* state.savePosition(consumer, events.at(-1)!.seq)
      return events.length
    })

    /** Publishes everything committed so far; returns how many events went out. */
    const drain = Effect.gen(function*() {
      let total = 0
      while (true) {
        const sent = yield* publishPage(yield* state.position(consumer).pipe(Effect.withTracerEnabled(false)))
        yield* Metric.set(outboxLag, sent)
        if (sent === 0) return total
        total += sent
      }
    })

    const pending = Effect.gen(function*() {
      const position = yield* state.position(consumer)
      return (yield* repo.eventsAfter(position, PAGE)).length
    })

    /** Drains, then again as the log grows; picks up events written by this and any other instance. */
    const run = supervise({
      work: (healthy) => repo.appends.follow(drain.pipe(Effect.zipRight(healthy)), "250 millis"),
      scheduleFor: () => databaseRetry,
      recoveredLine: (was) => `The relay reads the event log again (recovered from ${was})`
    })

    return { drain, run, pending, consumer } as const
  })
}) {}
