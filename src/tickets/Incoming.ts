import { Effect } from "effect"
import type { RawMail } from "../mail/Email.js"
import type { Parser } from "../mail/Parser.js"
import type { SenderAuthenticator } from "../mail/SenderAuth.js"
import type { Incoming, IntakeDecision } from "./Decide.js"

/** A mail on its way into the log, with the bytes the commit stores. */
export type IncomingMail = Incoming & { readonly source: Buffer }

/**
 * What every way in (a pass, reconcile, import, reprocess) makes of a mail's bytes: parsed, and its
 * sender checked when there is a sender to check.
 */
export const readIncoming = (parser: Parser, senders: SenderAuthenticator) =>
(raw: RawMail, trace: string | null = null): Effect.Effect<IncomingMail> =>
  Effect.gen(function*() {
    const { parsed, rawSha256 } = yield* parser.parse(raw)
    return {
      uid: raw.uid,
      size: raw.size,
      rawSha256,
      headersOnly: raw.headersOnly,
      parsed,
      source: raw.source,
      trace,
      ...(parsed._tag === "Accepted" ? { senderAuth: yield* senders.check(raw.source, parsed.email) } : {})
    }
  })

/** What a batch's decisions came to, for summaries and the outcome counter. */
export const countDecisions = (decisions: ReadonlyArray<IntakeDecision>) => ({
  received: decisions.filter((d) => d.data._tag === "EmailReceived").length,
  ticketsCreated: decisions.filter((d) => d.data._tag === "EmailReceived" && d.data.newTicket).length,
  duplicates: decisions.filter((d) => d.data._tag === "EmailDuplicate").length,
  quarantined: decisions.filter((d) => d.data._tag === "EmailQuarantined").length
})
