import { EventLog } from "../../src/log/EventLog.js"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import type { StoredEvent } from "../../src/log/Event.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { MemoryMailbox } from "../../src/mailbox/Imap.js"
import { ConnectionLost } from "../../src/mailbox/ImapErrors.js"
import { StateStore } from "../../src/log/StateStore.js"
import { TicketRepo } from "../../src/tickets/TicketRepo.js"
import { mail, pipelineLayer } from "./layers.js"

const events = Effect.flatMap(EventLog, (log) => log.read(0n, 10_000))
const ofType = <T extends StoredEvent["type"]>(all: ReadonlyArray<StoredEvent>, type: T) =>
  all.filter((e) => e.type === type).map((e) => e.data as Extract<StoredEvent["data"], { _tag: T }>)

const once = Effect.flatMap(Poller, (poller) => poller.once).pipe(Effect.map(Option.getOrThrow))

const withMailbox = <A, E>(
  mailbox: MemoryMailbox,
  env: Record<string, string>,
  body: Effect.Effect<A, E, Poller | TicketRepo | StateStore | EventLog>
) => body.pipe(Effect.provide(pipelineLayer(mailbox, env)))

describe("Intake", () => {
  it.effect("takes only the unread mail on a first start, and every mail after it", () => {
    const mailbox = new MemoryMailbox()
    mailbox.append(mail({ subject: "old and read" }), { seen: true })
    const unread = mailbox.append(mail({ subject: "old but unread" }))
    mailbox.append(mail({ subject: "also read" }), { seen: true })
    return withMailbox(mailbox, {}, Effect.gen(function*() {
      const first = yield* once
      expect(first.received).toBe(1)
      expect(ofType(yield* events, "EmailReceived").map((e) => e.subject)).toEqual(["old but unread"])
      expect(mailbox.isSeen(unread)).toBe(true)
      const later = mailbox.append(mail({ subject: "new, read elsewhere already" }), { seen: true })
      const second = yield* once
      expect(second.received).toBe(1)
      expect(ofType(yield* events, "EmailReceived").map((e) => e.subject)).toContain("new, read elsewhere already")
      expect(mailbox.isSeen(later)).toBe(true)
    }))
  })

  it.effect("IMAP_BACKFILL=none ignores existing mail; =all takes it", () => {
    const make = () => {
      const mailbox = new MemoryMailbox()
      mailbox.append(mail(), { seen: true })
      mailbox.append(mail())
      return mailbox
    }
    return Effect.gen(function*() {
      const none = yield* withMailbox(make(), { IMAP_BACKFILL: "none" }, once)
      const all = yield* withMailbox(make(), { IMAP_BACKFILL: "all" }, once)
      expect(none.found).toBe(0)
      expect(all.received).toBe(2)
    })
  })

  it.effect("joins replies to their ticket by In-Reply-To or References, within one batch too", () => {
    const mailbox = new MemoryMailbox()
    mailbox.append(mail({ messageId: "<root@c.test>", subject: "Login broken" }))
    mailbox.append(mail({ messageId: "<r1@c.test>", inReplyTo: "<root@c.test>", subject: "Re: Login broken" }))
    mailbox.append(mail({ messageId: "<r2@c.test>", references: ["<root@c.test>", "<unknown@x.test>"], subject: "Re: Re: Login broken" }))
    mailbox.append(mail({ messageId: "<other@c.test>", subject: "Invoice" }))
    return withMailbox(mailbox, {}, Effect.gen(function*() {
      const summary = yield* once
      const received = ofType(yield* events, "EmailReceived")
      expect(summary.ticketsCreated).toBe(2)
      const root = received.find((e) => e.messageId === "<root@c.test>")!
      expect(received.filter((e) => e.ticketId === root.ticketId).map((e) => e.messageId)).toEqual([
        "<root@c.test>",
        "<r1@c.test>",
        "<r2@c.test>"
      ])
      expect(received.find((e) => e.messageId === "<other@c.test>")!.ticketId).not.toBe(root.ticketId)
      const late = mailbox.append(mail({ messageId: "<r3@c.test>", inReplyTo: "<r2@c.test>" }))
      yield* once
      const reply = (yield* events).find((e) => e.uid === late)!
      expect(reply.ticketId).toBe(root.ticketId)
    }))
  })

  it.effect("records a second delivery of a Message-ID as a duplicate without a second ticket", () => {
    const mailbox = new MemoryMailbox()
    const copy = mail({ messageId: "<same@c.test>" })
    mailbox.append(copy)
    mailbox.append(copy)
    return withMailbox(mailbox, {}, Effect.gen(function*() {
      const summary = yield* once
      expect(summary).toMatchObject({ received: 1, ticketsCreated: 1, duplicates: 1 })
      const all = yield* events
      const [original] = all.filter((e) => e.type === "EmailReceived")
      const [duplicate] = ofType(all, "EmailDuplicate")
      expect(duplicate!.duplicateOf).toBe(original!.id)
    }))
  })

  it.effect("quarantines what it cannot accept, with a reason, and goes on with the mail behind it", () => {
    const mailbox = new MemoryMailbox()
    const noSender = mailbox.append(mail({ from: null }))
    const empty = mailbox.append("")
    const huge = mailbox.append(mail({ text: "x".repeat(5_000) }))
    const fine = mailbox.append(mail({ subject: "after the bad ones" }))
    return withMailbox(mailbox, { MAX_MESSAGE_BYTES: "2000" }, Effect.gen(function*() {
      const summary = yield* once
      expect(summary).toMatchObject({ quarantined: 3, received: 1 })
      const all = yield* events
      const reasonOf = (uid: number) => {
        const event = all.find((e) => e.uid === uid)!
        return event.data._tag === "EmailQuarantined" ? event.data.reason : event.data._tag
      }
      expect([reasonOf(noSender), reasonOf(empty), reasonOf(huge), reasonOf(fine)]).toEqual([
        "no_sender",
        "unparseable",
        "too_large",
        "EmailReceived"
      ])
      const tooLarge = ofType(all, "EmailQuarantined").find((q) => q.reason === "too_large")!
      expect(tooLarge.headersOnly).toBe(true)
      expect(tooLarge.size).toBeGreaterThan(5_000)
      expect([noSender, empty, huge, fine].every((uid) => mailbox.isSeen(uid))).toBe(true)
    }))
  })

  it.effect("over a thousand new mails, asks the size only of those a SEARCH finds larger than a batch's share", () => {
    const env = { MAX_MESSAGE_BYTES: "20000", IMAP_BATCH_SIZE: "250", IMAP_BATCH_BYTES: "500000" }
    const fill = (mailbox: MemoryMailbox, seen: boolean) => {
      for (let i = 0; i < 1_200; i++) mailbox.append(mail({ subject: `small ${i}` }), { seen })
    }
    const run = (backfill: "all" | "unseen") => {
      const mailbox = new MemoryMailbox()
      fill(mailbox, false)
      const large = mailbox.append(mail({ subject: "larger than 2,000 bytes", text: "y".repeat(3_000) }))
      const huge = mailbox.append(mail({ subject: "over MAX_MESSAGE_BYTES", text: "x".repeat(30_000) }))
      return withMailbox(mailbox, { ...env, IMAP_BACKFILL: backfill }, Effect.gen(function*() {
        const summary = yield* once
        const all = yield* events
        const kind = (uid: number) => all.find((e) => e.uid === uid)?.data._tag
        expect(summary).toMatchObject({ found: 1_202, received: 1_201, quarantined: 1 })
        expect([kind(large), kind(huge)]).toEqual(["EmailReceived", "EmailQuarantined"])
        expect(ofType(all, "EmailQuarantined")[0]).toMatchObject({ reason: "too_large", headersOnly: true })
        expect(mailbox.sized).toBe(2)
        expect(mailbox.messages.every((m) => m.seen)).toBe(true)
      }))
    }
    return Effect.gen(function*() {
      yield* run("all")
      yield* run("unseen")
      // A server that refuses SEARCH LARGER: every size is asked, and the large mail is still kept out.
      const refusing = new MemoryMailbox()
      refusing.refusesLarger = true
      fill(refusing, false)
      const huge = refusing.append(mail({ subject: "over MAX_MESSAGE_BYTES", text: "x".repeat(30_000) }))
      const summary = yield* withMailbox(refusing, { ...env, IMAP_BACKFILL: "all" }, once)
      expect(summary).toMatchObject({ found: 1_201, received: 1_200, quarantined: 1 })
      expect(refusing.sized).toBe(1_201)
      expect(refusing.isSeen(huge)).toBe(true)
      // Below the threshold, one FETCH of sizes still answers for every mail.
      const few = new MemoryMailbox()
      few.append(mail())
      few.append(mail({ text: "z".repeat(3_000) }))
      yield* withMailbox(few, { ...env, IMAP_BACKFILL: "all" }, once)
      expect(few.sized).toBe(2)
    })
  })

  it.effect("a second pass adds nothing; after a pass of several batches the cursor's seen_uid is its last mail", () => {
    const mailbox = new MemoryMailbox()
    for (let i = 0; i < 30; i++) mailbox.append(mail())
    return withMailbox(mailbox, { IMAP_BATCH_SIZE: "7" }, Effect.gen(function*() {
      expect((yield* once).received).toBe(30)
      const before = (yield* events).length
      expect((yield* once).found).toBe(0)
      expect((yield* events).length).toBe(before)
      const cursor = yield* Effect.flatMap(StateStore, (s) => s.cursor("INBOX"))
      expect(cursor._tag === "Some" && cursor.value.lastUid).toBe(30)
      // Five more batches, past the first start's backfill: the last \Seen is written down after them, not by a commit.
      for (let i = 0; i < 30; i++) mailbox.append(mail())
      expect((yield* once).received).toBe(30)
      const after = yield* Effect.flatMap(StateStore, (s) => s.cursor("INBOX"))
      expect(after._tag === "Some" && after.value.seenUid).toBe(60)
    }))
  })

  it.effect("holds the mailbox for the whole pass, so that the connection does not IDLE between its commands", () => {
    const mailbox = new MemoryMailbox()
    for (let i = 0; i < 20; i++) mailbox.append(mail())
    return withMailbox(mailbox, { IMAP_BATCH_SIZE: "3" }, Effect.gen(function*() {
      expect((yield* once).received).toBe(20)
      expect(mailbox.fetches).toBe(7)
      expect(mailbox.unheld).toEqual([])
      expect(mailbox.holds).toBe(0)
    }))
  })

  it.effect("a crash between commit and \\Seen loses and doubles nothing; the flags are set on the next pass", () => {
    const mailbox = new MemoryMailbox()
    const uids = [mailbox.append(mail()), mailbox.append(mail())]
    mailbox.failNext("markSeen", new ConnectionLost({ host: "test", reason: "cut" }))
    return withMailbox(mailbox, {}, Effect.gen(function*() {
      const failed = yield* Effect.either(once)
      expect(failed._tag).toBe("Left")
      expect(uids.some((uid) => mailbox.isSeen(uid))).toBe(false)
      expect((yield* events).length).toBe(2)
      const retry = yield* once
      expect(retry.found).toBe(0)
      expect((yield* events).length).toBe(2)
      expect(uids.every((uid) => mailbox.isSeen(uid))).toBe(true)
    }))
  })

  it.effect("over several batches, the cursor's seen_uid follows the \\Seen stored, never ahead of it, and a pass cut short is made good by the next", () => {
    const mailbox = new MemoryMailbox()
    const uids = Array.from({ length: 30 }, () => mailbox.append(mail()))
    // The third batch's \Seen fails: the first two batches' mail is flagged, the rest is recorded only.
    mailbox.failNext("markSeen", new ConnectionLost({ host: "test", reason: "cut" }), { after: 2 })
    const seenUid = Effect.flatMap(StateStore, (s) => s.cursor("INBOX")).pipe(Effect.map((c) => Option.getOrThrow(c).seenUid))
    return withMailbox(mailbox, { IMAP_BATCH_SIZE: "7" }, Effect.gen(function*() {
      expect((yield* Effect.either(once))._tag).toBe("Left")
      const cut = yield* seenUid
      expect(cut).toBe(14)
      expect(uids.filter((uid) => mailbox.isSeen(uid))).toEqual(uids.slice(0, 14))
      // Recorded beyond what is flagged: the next pass stores the rest, and seen_uid reaches the end.
      const recorded = (yield* events).length
      expect(recorded).toBeGreaterThan(14)
      expect((yield* once).found).toBe(30 - recorded)
      expect(uids.every((uid) => mailbox.isSeen(uid))).toBe(true)
      expect(yield* seenUid).toBe(30)
    }))
  })

  it.effect("a UIDVALIDITY change appends MailboxReset and doubles nothing", () => {
    const mailbox = new MemoryMailbox()
    for (let i = 0; i < 5; i++) mailbox.append(mail())
    return withMailbox(mailbox, { IMAP_BACKFILL: "all" }, Effect.gen(function*() {
      yield* once
      mailbox.resetUidValidity()
      mailbox.append(mail({ subject: "arrived after the reset" }))
      const after = yield* once
      const all = yield* events
      expect(all.filter((e) => e.type === "MailboxReset")).toHaveLength(1)
      expect(after).toMatchObject({ received: 1, duplicates: 5 })
      expect(ofType(all, "EmailReceived")).toHaveLength(6)
    }))
  })
})

describe("Poller", () => {
  it.effect("fails a --once pass with the typed error of the connection", () => {
    const mailbox = new MemoryMailbox()
    mailbox.failNext("connect", new ConnectionLost({ host: "imap.test", reason: "ECONNREFUSED" }))
    return withMailbox(mailbox, {}, Effect.gen(function*() {
      const error = yield* Effect.flip(once)
      expect(error._tag).toBe("ConnectionLost")
      expect(error.message).toContain("ECONNREFUSED")
    }))
  })
})

