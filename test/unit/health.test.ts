import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Metric, MetricBoundaries, TestClock } from "effect"
import { HealthState, livenessChecks, mailboxChecks } from "../../src/telemetry/Health.js"
import { mailboxRoles, mailboxStalls } from "../../src/telemetry/Metrics.js"
import { renderPrometheus } from "../../src/telemetry/Prometheus.js"

/** mailroom_mailboxes by role, as the sweep last set it. */
const roles = Effect.all({
  leading: Effect.map(Metric.value(Metric.tagged(mailboxRoles, "role", "leading")), (state) => state.value),
  standby: Effect.map(Metric.value(Metric.tagged(mailboxRoles, "role", "standby")), (state) => state.value)
})

let unique = 0
const named = (base: string) => `test_${base}_${++unique}`

/** The lines of the rendering that belong to the metric named `name` (and its _bucket/_sum/_count/_total). */
const linesOf = (text: string, name: string) =>
  text.split("\n").filter((line) => line.replace(/^# (HELP|TYPE) /, "").startsWith(name))

describe("Prometheus text", () => {
  it.effect("a counter is a `_total` family with HELP and TYPE once, one series per tag set", () =>
    Effect.gen(function*() {
      const name = named("emails")
      const counter = Metric.counter(name, { description: "Emails recorded, by outcome." })
      yield* Metric.incrementBy(Metric.tagged(counter, "outcome", "received"), 3)
      yield* Metric.increment(Metric.tagged(counter, "outcome", "duplicate"))
      const text = renderPrometheus(yield* Metric.snapshot)
      expect(linesOf(text, name)).toEqual([
        `# HELP ${name}_total Emails recorded, by outcome.`,
        `# TYPE ${name}_total counter`,
        `${name}_total{outcome="duplicate"} 1`,
        `${name}_total{outcome="received"} 3`
      ])
      expect(text.endsWith("\n")).toBe(true)
    }))

  it.effect("a bigint counter and a gauge", () =>
    Effect.gen(function*() {
      const big = named("bytes")
      const gauge = named("lag")
      yield* Metric.incrementBy(Metric.counter(big, { bigint: true }), 12345678901234567890n)
      yield* Metric.set(Metric.gauge(gauge, { description: "Events behind." }), 7)
      const text = renderPrometheus(yield* Metric.snapshot)
      expect(linesOf(text, big)).toEqual([`# TYPE ${big}_total counter`, `${big}_total 12345678901234567890`])
      expect(linesOf(text, gauge)).toEqual([`# HELP ${gauge} Events behind.`, `# TYPE ${gauge} gauge`, `${gauge} 7`])
    }))

  it.effect("a histogram: cumulative buckets in order up to +Inf, then _sum and _count", () =>
    Effect.gen(function*() {
      const name = named("duration")
      const histogram = Metric.histogram(name, MetricBoundaries.fromIterable([5, 10, 50]), "Batch time.")
      for (const value of [3, 7, 7, 20, 100]) yield* Metric.update(Metric.tagged(histogram, "kind", "batch"), value)
      const text = renderPrometheus(yield* Metric.snapshot)
      expect(linesOf(text, name)).toEqual([
        `# HELP ${name} Batch time.`,
        `# TYPE ${name} histogram`,
        `${name}_bucket{kind="batch",le="5"} 1`,
        `${name}_bucket{kind="batch",le="10"} 3`,
        `${name}_bucket{kind="batch",le="50"} 4`,
        `${name}_bucket{kind="batch",le="+Inf"} 5`,
        `${name}_sum{kind="batch"} 137`,
        `${name}_count{kind="batch"} 5`
      ])
    }))

  it.effect("names and label values are escaped; a frequency counts each value", () =>
    Effect.gen(function*() {
      const name = named("odd")
      const counter = Metric.counter(`${name}.with-dots`, { description: "Line one\nline two \\ end" })
      yield* Metric.increment(Metric.tagged(counter, "reason", "said \"no\"\nthen \\ left"))
      const frequency = named("states")
      yield* Metric.update(Metric.frequency(frequency), "connected")
      yield* Metric.update(Metric.frequency(frequency), "connected")
      const text = renderPrometheus(yield* Metric.snapshot)
      expect(linesOf(text, name)).toEqual([
        `# HELP ${name}_with_dots_total Line one\\nline two \\\\ end`,
        `# TYPE ${name}_with_dots_total counter`,
        `${name}_with_dots_total{reason="said \\"no\\"\\nthen \\\\ left"} 1`
      ])
      expect(linesOf(text, frequency)).toEqual([`# TYPE ${frequency}_total counter`, `${frequency}_total{key="connected"} 2`])
    }))
})

const interval = Duration.seconds(10)

describe("HealthState", () => {
  it.scoped("readiness: a mailbox this instance leads must complete a pass within 2× its interval", () =>
    Effect.gen(function*() {
      const health = yield* HealthState
      const checks = Effect.map(health.snapshot, mailboxChecks)
      expect(yield* checks).toEqual([])
      yield* health.leading("INBOX", interval)
      yield* TestClock.adjust("15 seconds")
      expect((yield* checks).map((c) => c.ok)).toEqual([true])
      yield* TestClock.adjust("6 seconds")
      expect(yield* checks).toMatchObject([{ name: "mailbox:INBOX", ok: false }])
      yield* health.passCompleted("INBOX")
      yield* TestClock.adjust("20 seconds")
      expect((yield* checks).map((c) => c.ok)).toEqual([true])
      // A failed pass and a retry that takes the lock back at once: the old pass still counts.
      yield* health.leading("INBOX", interval).pipe(health.contend("INBOX"))
      yield* TestClock.adjust("1 second")
      expect((yield* checks).map((c) => c.ok)).toEqual([false])
    }).pipe(Effect.provide(HealthState.Default)))

  it.scoped("readiness: a mailbox whose lock another instance holds does not count", () =>
    Effect.gen(function*() {
      const health = yield* HealthState
      yield* health.leading("INBOX", interval)
      yield* TestClock.adjust("1 minute")
      expect((yield* Effect.map(health.snapshot, mailboxChecks)).map((c) => c.ok)).toEqual([false])
      // The lock is taken by another instance: lead waits and never gets to `leading`.
      const waiting = yield* Effect.fork(Effect.never.pipe(health.contend("INBOX")))
      yield* TestClock.adjust("2 seconds")
      expect(yield* Effect.map(health.snapshot, mailboxChecks)).toEqual([])
      expect(yield* roles).toEqual({ leading: 0, standby: 1 })
      yield* Fiber.interrupt(waiting)
      // Taken over later: a pass is due within 2× the interval from then, not from long ago.
      yield* health.leading("INBOX", interval).pipe(health.contend("INBOX"))
      yield* TestClock.adjust("5 seconds")
      expect((yield* Effect.map(health.snapshot, mailboxChecks)).map((c) => c.ok)).toEqual([true])
      expect(yield* roles).toEqual({ leading: 1, standby: 0 })
    }).pipe(Effect.provide(HealthState.Default)))

  it.scoped("liveness: ticks while the loop runs, fails once it has ended", () =>
    Effect.gen(function*() {
      const health = yield* HealthState
      const alive = Effect.map(health.snapshot, (s) => livenessChecks(s).every((c) => c.ok))
      const loop = yield* Effect.fork(Effect.never.pipe(health.alive("poller")))
      yield* TestClock.adjust("1 minute")
      expect(yield* alive).toBe(true)
      expect((yield* health.snapshot).loops.map((l) => l.name)).toEqual(["poller"])
      yield* Fiber.interrupt(loop)
      yield* TestClock.adjust("20 seconds")
      expect(yield* alive).toBe(true)
      yield* TestClock.adjust("15 seconds")
      expect(yield* Effect.map(health.snapshot, livenessChecks)).toMatchObject([{ name: "poller", ok: false }])
    }).pipe(Effect.provide(HealthState.Default)))

  it.scoped("a connection that delivers nothing for the bound fails with MailboxStalled and is counted", () =>
    Effect.gen(function*() {
      const health = yield* HealthState
      const stallsBefore = (yield* Metric.value(mailboxStalls)).count
      const work = yield* Effect.fork(Effect.never.pipe(health.guard("INBOX", Duration.seconds(30))))
      // Activity keeps it alive past the bound.
      for (let i = 0; i < 4; i++) {
        yield* TestClock.adjust("20 seconds")
        yield* health.activity("INBOX")
      }
      expect(work.unsafePoll()).toBeNull()
      yield* TestClock.adjust("35 seconds")
      const exit = yield* Fiber.await(work)
      expect(exit).toMatchObject(Exit.fail({ _tag: "MailboxStalled", mailbox: "INBOX" }))
      expect(Exit.isFailure(exit) && String(exit.cause)).toContain("IMAP_STALL_TIMEOUT")
      expect((yield* Metric.value(mailboxStalls)).count).toBe(stallsBefore + 1)
      // The stalled connection was let go: nothing is left on record for liveness.
      expect((yield* health.snapshot).stalls).toEqual([])
    }).pipe(Effect.provide(HealthState.Default)))

  it.scoped("a stall whose work cannot be interrupted keeps /healthz failing", () =>
    Effect.gen(function*() {
      const health = yield* HealthState
      const release = yield* Deferred.make<void>()
      const stuck = yield* Effect.fork(Effect.uninterruptible(Deferred.await(release)).pipe(health.guard("INBOX", Duration.seconds(10))))
      yield* TestClock.adjust("15 seconds")
      expect((yield* health.snapshot).stalls.map((s) => s.mailbox)).toEqual(["INBOX"])
      expect(yield* Effect.map(health.snapshot, livenessChecks)).toMatchObject([{ name: "stall:INBOX", ok: true }])
      yield* TestClock.adjust("31 seconds")
      expect(yield* Effect.map(health.snapshot, livenessChecks)).toMatchObject([{ name: "stall:INBOX", ok: false }])
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.await(stuck)
      expect((yield* health.snapshot).stalls).toEqual([])
    }).pipe(Effect.provide(HealthState.Default)))
})
