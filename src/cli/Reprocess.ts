import { Command, Options } from "@effect/cli"
import { Config, Console, Data, Effect, Layer, Option } from "effect"
import { mailboxUser } from "../config/Config.js"
import { CommandStoreLive, statusFleetOn } from "../Layers.js"
import { mailboxesFile } from "../config/Mailboxes.js"
import type { QuarantineReason } from "../mail/Email.js"
import { Parser } from "../mail/Parser.js"
import { SenderAuthenticator } from "../mail/SenderAuth.js"
import { ImapLive } from "../mailbox/Imap.js"
import { visible } from "../lib/Visible.js"
import type { ReprocessOptions, ReprocessOutcome } from "../tickets/Reprocess.js"
import { Reprocessor } from "../tickets/Reprocess.js"

export class NotAnEventId extends Data.TaggedError("NotAnEventId")<{ readonly id: string }> {
  override get message() {
    return `--id ${this.id} is not an event id: give the id of an EmailQuarantined event (a UUID, as \`mailroom status\` and the events table show it)`
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const bytesFrom = { stored: "from the stored bytes", imap: "fetched again from the mailbox", source: "read again from the imported file" }

export const describeOutcome = (o: ReprocessOutcome): string => {
  const head = `  ${o.quarantineEventId} (${o.reason}): `
  switch (o._tag) {
    case "Reprocessed":
      return head + (o.outcome === "EmailDuplicate"
        ? `a duplicate of mail on ticket ${o.ticketId ?? "?"}`
        : `received on ${o.newTicket ? "new " : ""}ticket ${o.ticketId}`) + `, ${bytesFrom[o.bytesFrom]}`
    case "QuarantinedAgain":
      return head + `quarantined again (${visible(o.detail)}); left as it was`
    case "Skipped":
      return head + `skipped: ${o.why}`
  }
}

export const describeReprocess = (outcomes: ReadonlyArray<ReprocessOutcome>): string => {
  if (outcomes.length === 0) return "No quarantined mail to reprocess (mail reprocessed before is left out)"
  const count = (f: (o: ReprocessOutcome) => boolean) => outcomes.filter(f).length
  const received = count((o) => o._tag === "Reprocessed" && o.outcome === "EmailReceived")
  const duplicates = count((o) => o._tag === "Reprocessed" && o.outcome === "EmailDuplicate")
  return [
    ...outcomes.map(describeOutcome),
    `Reprocessed ${outcomes.length}: ${received} received, ${duplicates} duplicates, ` +
    `${count((o) => o._tag === "QuarantinedAgain")} quarantined again, ${count((o) => o._tag === "Skipped")} skipped`
  ].join("\n")
}

/** `mailroom reprocess`: one line per quarantined mail, then a summary, on stdout. */
export const reprocessCommandHandler = (options: ReprocessOptions) =>
  Effect.gen(function*() {
    const bad = options.ids.find((id) => !UUID.test(id))
    if (bad !== undefined) return yield* new NotAnEventId({ id: bad })
    const outcomes = yield* (yield* Reprocessor).run(options)
    yield* Console.log(describeReprocess(outcomes))
    return outcomes
  })

/** Each watched mailbox's connection, when mailboxes are configured: mail stored in full needs none. */
export const reprocessFleet = statusFleetOn(ImapLive)

const FleetWhenConfigured = Layer.unwrapEffect(
  Effect.map(
    Effect.all([Config.option(mailboxUser), mailboxesFile]),
    ([user, file]): Layer.Layer<never, Layer.Layer.Error<typeof reprocessFleet>, Layer.Layer.Context<typeof reprocessFleet>> =>
      Option.isSome(user) || Option.isSome(file) ? reprocessFleet : Layer.empty
  )
)

export const ReprocessLive = Reprocessor.Default.pipe(
  Layer.provide(Layer.mergeAll(Parser.Live, SenderAuthenticator.Default)),
  Layer.provide(FleetWhenConfigured),
  Layer.provideMerge(CommandStoreLive)
)

const reasons: ReadonlyArray<QuarantineReason> = ["too_large", "unparseable", "no_sender"]

export const reprocessCommand = Command.make(
  "reprocess",
  {
    reason: Options.choice("reason", reasons).pipe(
      Options.repeated,
      Options.withDescription("Only mail quarantined for this reason (repeatable); every reason when absent.")
    ),
    id: Options.text("id").pipe(Options.repeated, Options.withDescription("Only this EmailQuarantined event (repeatable)."))
  },
  ({ id, reason }) => reprocessCommandHandler({ reasons: reason, ids: id }).pipe(Effect.provide(ReprocessLive))
).pipe(
  Command.withDescription(
    "Parses quarantined mail again under today's settings (raise MAX_MESSAGE_BYTES first for too_large mail, which is fetched again from the mailbox since only its headers were kept). " +
      "Each success appends EmailReprocessed and the EmailReceived or EmailDuplicate it became; quarantine events stay as they were, and mail reprocessed once is not taken again."
  )
)
