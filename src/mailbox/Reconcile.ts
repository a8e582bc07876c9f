import { Effect, Metric, Option } from "effect"
import { markSeenPolicy } from "../config/Config.js"
import { IntakeConfig } from "../config/Config.js"
import type { WatchedMailbox } from "../config/Mailboxes.js"
import { Watched } from "./Watched.js"
import { StateStore } from "../log/StateStore.js"
import type { Cursor } from "../log/StateStore.js"
import { Parser } from "../mail/Parser.js"
import { SenderAuthenticator } from "../mail/SenderAuth.js"
import { oldestUnprocessedAge } from "../telemetry/Metrics.js"
import type { PassSummary } from "../tickets/Intake.js"
import { addSummaries, countOutcomes, emptySummary } from "../tickets/Intake.js"
import { countDecisions, readIncoming } from "../tickets/Incoming.js"
import { TicketRepo } from "../tickets/TicketRepo.js"
import { planBatches } from "./Batches.js"
import type { ImapSession } from "./Imap.js"

export interface Gaps {
  readonly mailbox: string
  /** None before the first pass, or when the server's UIDVALIDITY is no longer the cursor's (the next pass rescans). */
  readonly cursor: Option.Option<Cursor>
  /** Mails on the server in (backfillTo, lastUid]: every one of them must have an intake event. */
  readonly checked: number
  /** UIDs the cursor has passed that have no intake event, in order. */
  readonly gaps: ReadonlyArray<number>
  /** Mails the next pass takes: above the cursor, and unread ones in a backfill still under way. */
  readonly pending: number
  /** Seconds since the oldest mail in gaps or pending arrived (its topmost Received: header, else Date:); 0 when none. */
  readonly oldestUnprocessedAge: number
}

/** When the nearest server received a mail: its topmost Received: header, else the sender's Date:. */
export const arrivedAt = (headers: string): Option.Option<Date> => {
  const unfolded = headers.replace(/\r?\n[ \t]+/g, " ")
  const received = /^received:[^\n]*;\s*([^\n]+)$/im.exec(unfolded)?.[1]
  const date = /^date:\s*([^\n]+)$/im.exec(unfolded)?.[1]
  return Option.fromNullable([received, date].map((value) => value === undefined ? NaN : Date.parse(value.trim()))
    .find((ms) => !Number.isNaN(ms))).pipe(Option.map((ms) => new Date(ms)))
}

/**
 * The UIDs the cursor has passed without an intake event. UIDs up to `backfillTo` were on the server
 * before mailroom's first look: read ones were skipped by design (IMAP_BACKFILL), so none of them
 * counts as a gap. `open`s the mailbox; the caller holds it.
 */
export const findGaps = Effect.fn("Reconcile.findGaps")(function*(session: ImapSession, watched: WatchedMailbox) {
  const mailbox = watched.key
  const state = yield* StateStore
  const repo = yield* TicketRepo
  const status = yield* session.open(watched.folder)
  const cursor = Option.filter(yield* state.cursor(mailbox), (c) => c.uidValidity === status.uidValidity)
  if (Option.isNone(cursor)) return { mailbox, cursor, checked: 0, gaps: [], pending: 0, oldestUnprocessedAge: 0 } satisfies Gaps
  const { backfillTo, lastUid, uidValidity } = cursor.value
  const passed = lastUid > backfillTo ? yield* session.search({ from: backfillTo + 1, to: lastUid }, { unseenOnly: false }) : []
  const recorded = new Set(passed.length === 0 ? [] : yield* repo.recordedUids(mailbox, uidValidity, backfillTo, lastUid))
  const gaps = passed.filter((uid) => !recorded.has(uid))
  const backfilling = lastUid < backfillTo ? yield* session.search({ from: lastUid + 1, to: backfillTo }, { unseenOnly: true }) : []
  const above = status.uidNext > 0 && Math.max(lastUid, backfillTo) + 1 >= status.uidNext
    ? []
    : yield* session.search({ from: Math.max(lastUid, backfillTo) + 1 }, { unseenOnly: false })
  const oldest = [...gaps, ...backfilling, ...above].sort((a, b) => a - b)[0]
  const arrived = oldest === undefined
    ? Option.none<Date>()
    : Option.flatMap(
      Option.fromNullable((yield* session.fetch([oldest], { headersOnly: true }))[0]),
      (raw) => arrivedAt(raw.source.toString("latin1"))
    )
  const age = Option.match(arrived, {
    onNone: () => 0,
    onSome: (at) => Math.max(0, Math.round((Date.now() - at.getTime()) / 1000))
  })
  yield* Effect.annotateCurrentSpan({ "mailroom.mailbox": mailbox, "mailroom.gaps": gaps.length, "mailroom.pending": backfilling.length + above.length })
  return { mailbox, cursor, checked: passed.length, gaps, pending: backfilling.length + above.length, oldestUnprocessedAge: age } satisfies Gaps
})

export interface Reconciled extends Gaps {
  /** What the gaps became; empty when there were none or only a check was asked for. */
  readonly backfilled: PassSummary
}

/**
 * Finds the mails the cursor passed without recording them and takes them in through intake's own
 * parse → decide → commit: the commit skips any UID already recorded, and moves the cursor only
 * forward, so a gap below it leaves the cursor where it is.
 */
export class Reconciler extends Effect.Service<Reconciler>()("mailroom/Reconciler", {
  effect: Effect.gen(function*() {
    const config = yield* IntakeConfig
    const watched = yield* Watched
    const read = readIncoming(yield* Parser, yield* SenderAuthenticator)
    const repo = yield* TicketRepo
    const state = yield* StateStore
    const afterReply = (yield* markSeenPolicy) === "after-reply"
    const withStores = <A, E>(effect: Effect.Effect<A, E, StateStore | TicketRepo>) =>
      effect.pipe(Effect.provideService(StateStore, state), Effect.provideService(TicketRepo, repo))

    const backfill = Effect.fn("Reconcile.backfill")(function*(session: ImapSession, cursor: Cursor, gaps: ReadonlyArray<number>) {
      let summary = emptySummary
      for (const batch of planBatches(yield* session.sizes(gaps), config)) {
        const raws = yield* session.fetch(batch.uids, { headersOnly: batch.headersOnly, bytes: batch.bytes })
        const mails = yield* Effect.forEach(raws, (raw) => read(raw), { concurrency: 16 })
        const committed = yield* repo.commit({
          mailbox: watched.key,
          uidValidity: cursor.uidValidity,
          items: mails,
          cursorTo: Math.max(...batch.uids)
        })
        const part: PassSummary = {
          found: committed.decisions.length + committed.alreadyRecorded.length,
          ...countDecisions(committed.decisions),
          alreadyRecorded: committed.alreadyRecorded.length
        }
        yield* countOutcomes(part)
        // MARK_SEEN=after-reply: received mail is flagged by the responder once answered.
        yield* session.markSeen(afterReply ? committed.decisions.flatMap((d) => d.data._tag === "EmailReceived" ? [] : [d.uid]) : mails.map((m) => m.uid))
        summary = addSummaries(summary, part)
      }
      return summary
    })

    /** One check, and with `backfill` the gaps taken in; the caller's session, held for the duration. */
    const run = Effect.fn("Reconcile.run")(function*(session: ImapSession, options: { readonly backfill: boolean }) {
      yield* session.hold(watched.folder)
      const found = yield* withStores(findGaps(session, watched))
      yield* Metric.set(oldestUnprocessedAge, found.oldestUnprocessedAge)
      const backfilled = options.backfill && found.gaps.length > 0 && Option.isSome(found.cursor)
        ? yield* backfill(session, found.cursor.value, found.gaps)
        : emptySummary
      return { ...found, backfilled } satisfies Reconciled
    }, Effect.scoped)

    /** The poller's scheduled check: silent unless it finds a gap. */
    const scheduled = (session: ImapSession) =>
      run(session, { backfill: true }).pipe(
        Effect.tap((result) =>
          result.gaps.length === 0 ? Effect.void : Effect.logWarning(
            `Reconcile found ${result.gaps.length} mail(s) in ${result.mailbox} that the cursor passed without recording (UIDs ${
              describeUids(result.gaps)
            }); took them in: ${result.backfilled.received} received, ${result.backfilled.duplicates} duplicate(s), ${result.backfilled.quarantined} quarantined`
          )
        ),
        Effect.annotateLogs({ service: "Reconciler" }),
        Effect.asVoid
      )

    return { run, scheduled } as const
  })
}) {}

/** `3, 7-9, 12`: runs of consecutive UIDs shortened. */
export const describeUids = (uids: ReadonlyArray<number>): string => {
  const runs: Array<[number, number]> = []
  for (const uid of uids) {
    const last = runs.at(-1)
    if (last !== undefined && uid === last[1] + 1) last[1] = uid
    else runs.push([uid, uid])
  }
  return runs.map(([from, to]) => from === to ? `${from}` : `${from}-${to}`).join(", ")
}
