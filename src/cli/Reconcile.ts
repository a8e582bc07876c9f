import { Console, Data, Duration, Effect, Option } from "effect"
import { Relay } from "../bus/Relay.js"
import { Fleet } from "../mailbox/Fleet.js"
import { Poller } from "../mailbox/Poller.js"
import type { Reconciled } from "../mailbox/Reconcile.js"
import { describeUids } from "../mailbox/Reconcile.js"

/** `reconcile --check` found mail the cursor passed without recording it: exit code 1. */
export class GapsFound extends Data.TaggedError("GapsFound")<{ readonly mailbox: string; readonly uids: ReadonlyArray<number> }> {
  override get message() {
    return `${this.uids.length} mail(s) in ${this.mailbox} have no event in the log (UIDs ${
      describeUids(this.uids)
    }); run \`mailroom reconcile\` to take them in`
  }
}

const relayWait = Duration.seconds(30)

const age = (seconds: number) => seconds === 0 ? "none" : Duration.format(Duration.seconds(seconds))

export const formatReconcile = (result: Reconciled, options: { readonly check: boolean }): string =>
  Option.match(result.cursor, {
    onNone: () => [`${result.mailbox}: no cursor for the server's UIDVALIDITY yet; the next pass starts the mailbox, nothing to reconcile`],
    onSome: (cursor) => [
      `${result.mailbox} (UIDVALIDITY ${cursor.uidValidity}): ${result.checked} mail(s) on the server in UIDs ${cursor.backfillTo + 1}-${cursor.lastUid}, which the cursor has passed`,
      result.gaps.length === 0
        ? "  gaps: none"
        : `  gaps: ${result.gaps.length} without an event in the log: UIDs ${describeUids(result.gaps)}`,
      ...(result.gaps.length > 0 && !options.check
        ? [
          `  backfilled: ${result.backfilled.received} received (${result.backfilled.ticketsCreated} new ticket(s)), ${result.backfilled.duplicates} duplicate(s), ${result.backfilled.quarantined} quarantined` +
          (result.backfilled.alreadyRecorded > 0 ? `, ${result.backfilled.alreadyRecorded} recorded meanwhile by another instance` : "")
        ]
        : []),
      `  waiting for the next pass: ${result.pending} mail(s)`,
      `  oldest unprocessed mail: ${age(result.oldestUnprocessedAge)}${result.gaps.length > 0 && !options.check ? " (before the backfill)" : ""}`
    ]
  }).join("\n")

/**
 * `mailroom reconcile [--check]`: finds the mail the cursor passed without an event and (unless
 * --check) takes it in, then hands the new events to the bus. --check fails with GapsFound (exit
 * code 1) when there are gaps.
 */
export const reconcileCommand = (options: { readonly check: boolean }) =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const results = yield* Effect.forEach(fleet, (mailbox) => mailbox.run(Effect.flatMap(Poller, (poller) => poller.reconcile({ backfill: !options.check }))))
    yield* Console.log(results.map((result) => formatReconcile(result, options)).join("\n"))
    const gaps = results.filter((result) => result.gaps.length > 0)
    if (options.check && gaps.length > 0) return yield* new GapsFound({ mailbox: gaps[0]!.mailbox, uids: gaps[0]!.gaps })
    if (results.some((result) => result.backfilled.found > 0)) {
      const relay = yield* Relay
      const relayed = yield* relay.drain.pipe(Effect.timeout(relayWait), Effect.option)
      if (Option.isNone(relayed)) {
        yield* Effect.logWarning(`The event bus did not take every event within ${Duration.format(relayWait)}; the rest go out on the next run`)
      }
    }
    return results
  })
