import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, TestClock } from "effect"
import { MemoryMailbox } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { intakeUids, mail, pipelineLayer, settle, untilUids } from "./layers.js"

const intervals = { idle: Duration.minutes(10), poll: Duration.minutes(1) }

describe("poller", () => {
  it.scoped("a server without IDLE gets a pass every IMAP_POLL_INTERVAL", () => {
    const mailbox = new MemoryMailbox()
    mailbox.idle = false
    return Effect.gen(function*() {
      const poller = yield* Poller
      yield* Effect.forkScoped(poller.forever(intervals))
      yield* settle
      mailbox.append(mail({ subject: "not announced" }))
      yield* TestClock.adjust("59 seconds")
      yield* settle
      expect(yield* intakeUids).toEqual([])
      yield* TestClock.adjust("1 second")
      expect(yield* untilUids([1])).toEqual([1])
    }).pipe(Effect.provide(pipelineLayer(mailbox)))
  })

  it.scoped("with IDLE, announced mail is taken at once and the backstop pass waits IMAP_IDLE_POLL_INTERVAL", () => {
    const mailbox = new MemoryMailbox()
    return Effect.gen(function*() {
      const poller = yield* Poller
      yield* Effect.forkScoped(poller.forever(intervals))
      yield* settle
      mailbox.append(mail({ subject: "announced" }))
      expect(yield* untilUids([1])).toEqual([1])
      // An announcement lost: only the backstop pass finds this one.
      mailbox.idle = false
      mailbox.append(mail({ subject: "lost announcement" }))
      yield* TestClock.adjust("5 minutes")
      yield* settle
      expect(yield* intakeUids).toEqual([1])
      yield* TestClock.adjust("5 minutes")
      expect(yield* untilUids([1, 2])).toEqual([1, 2])
    }).pipe(Effect.provide(pipelineLayer(mailbox)))
  })
})
