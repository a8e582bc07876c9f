import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option, TestClock } from "effect"
import { StateStore } from "../../src/log/StateStore.js"
import { MemoryMailbox } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { arrivedAt, describeUids } from "../../src/mailbox/Reconcile.js"
import { intakeUids, mail, pipelineLayer, settle, untilUids } from "./layers.js"

describe("reconcile", () => {
  it("dates a mail by the nearest server's Received: header, else by its Date:", () => {
    const received = "Received: from a by b;\r\n Tue, 1 Dec 2026 10:00:00 +0000\r\nReceived: from c by a; Mon, 30 Nov 2026 10:00:00 +0000\r\nDate: Sun, 1 Nov 2026 10:00:00 +0000\r\n"
    expect(Option.getOrThrow(arrivedAt(received)).toISOString()).toBe("2026-12-01T10:00:00.000Z")
    expect(Option.getOrThrow(arrivedAt("Date: Sun, 1 Nov 2026 10:00:00 +0000\r\n")).toISOString()).toBe("2026-11-01T10:00:00.000Z")
    expect(Option.isNone(arrivedAt("Date: the day after tomorrow\r\n"))).toBe(true)
  })

  it("shortens runs of UIDs", () => {
    expect(describeUids([3, 7, 8, 9, 12])).toBe("3, 7-9, 12")
  })

  it.scoped("the running poller takes in gaps every RECONCILE_INTERVAL, on its own session", () => {
    const mailbox = new MemoryMailbox()
    mailbox.append(mail({ subject: "first" }))
    return Effect.gen(function*() {
      const poller = yield* Poller
      const state = yield* StateStore
      yield* Effect.forkScoped(poller.forever({ idle: Duration.hours(1), poll: Duration.hours(1) }))
      expect(yield* untilUids([1])).toEqual([1])
      const cursor = Option.getOrThrow(yield* state.cursor("INBOX"))
      yield* state.reset({ ...cursor, lastUid: 3, seenUid: 3 })
      mailbox.append(mail({ subject: "missed 1" }))
      mailbox.append(mail({ subject: "missed 2" }))
      yield* settle
      expect(yield* intakeUids).toEqual([1])
      yield* TestClock.adjust("299 seconds")
      yield* settle
      expect(yield* intakeUids).toEqual([1])
      yield* TestClock.adjust("1 second")
      expect(yield* untilUids([1, 2, 3])).toEqual([1, 2, 3])
      expect(mailbox.unheld).toEqual([])
      expect(Option.getOrThrow(yield* state.cursor("INBOX")).lastUid).toBe(3)
    }).pipe(Effect.provide(pipelineLayer(mailbox, { RECONCILE_INTERVAL: "300" })))
  })
})
