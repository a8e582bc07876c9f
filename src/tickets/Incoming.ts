import { Effect } from "effect"
import type { RawMail } from "../mail/Email.js"
import type { Parser } from "../mail/Parser.js"
import type { ParseResult } from "../mail/ParseMail.js"
import type { SenderAuth } from "../log/Event.js"
import type { SenderAuthenticator } from "../mail/SenderAuth.js"
import type { Incoming, IntakeDecision } from "./Decide.js"

/** A mail on its way into the log, with the bytes the commit stores. */
export type IncomingMail = Incoming & { readonly source: Buffer }

const incoming = (raw: RawMail, { parsed, rawSha256 }: ParseResult, trace: string | null, senderAuth: SenderAuth | undefined): IncomingMail => ({
  uid: raw.uid,
  size: raw.size,
  rawSha256,
  headersOnly: raw.headersOnly,
  parsed,
  source: raw.source,
  trace,
  ...(senderAuth === undefined ? {} : { senderAuth })
})

/**
 * What every way in (a pass, reconcile, import, reprocess) makes of a mail's bytes: parsed, and its
 * sender checked when there is a sender to check.
 */
export const readIncoming = (parser: Parser, senders: SenderAuthenticator) =>
(raw: RawMail, trace: string | null = null, parsed?: ParseResult): Effect.Effect<IncomingMail> =>
  Effect.gen(function*() {
    const result = parsed ?? (yield* parser.parse(raw))
    const senderAuth = result.parsed._tag === "Accepted" ? yield* senders.check(raw.source, result.parsed.email) : undefined
    return incoming(raw, result, trace, senderAuth)
  })

/** Bytes read on the spot (a few milliseconds) before I/O gets the event loop back. */
const SLICE_BYTES = 256 * 1024

/**
 * Back to the event loop, so that I/O waiting for it (the commit's query results, other mailboxes'
 * IDLE) is handled before more mail is read. Effect.yieldNow resumes in a microtask, before any I/O.
 */
const yieldToIo: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/**
 * A batch's mails read as readIncoming reads them: those the parser and the sender check can
 * answer on the spot in a plain loop (SLICE_BYTES at a time), the rest (mailparser, DKIM lookups)
 * as effects, 16 at a time. For mail with no trace of its own; a traced mail goes through readIncoming
 * inside its span.
 */
export const readIncomingBatch = (parser: Parser, senders: SenderAuthenticator) => {
  const read = readIncoming(parser, senders)
  return (raws: ReadonlyArray<RawMail>): Effect.Effect<Array<IncomingMail>> =>
    parser.parseMany === undefined ? readWith(raws, undefined) : Effect.flatMap(parser.parseMany(raws), (parsed) => readWith(raws, parsed))

  function readWith(raws: ReadonlyArray<RawMail>, parsed: ReadonlyArray<ParseResult> | undefined): Effect.Effect<Array<IncomingMail>> {
    return Effect.suspend(() => {
      const mails: Array<IncomingMail | undefined> = []
      const later: Array<{ readonly at: number; readonly raw: RawMail; readonly parsed: ParseResult | undefined }> = []
      const readSlice = () => {
        let bytes = 0
        while (mails.length < raws.length && bytes < SLICE_BYTES) {
          const raw = raws[mails.length]!
          bytes += raw.source.length
          const result = parsed === undefined ? parser.parseNow(raw) : parsed[mails.length]
          const senderAuth = result?.parsed._tag === "Accepted" ? senders.checkNow(result.parsed.email) : undefined
          if (result === undefined || (result.parsed._tag === "Accepted" && senderAuth === undefined)) {
            later.push({ at: mails.length, raw, parsed: result })
            mails.push(undefined)
          } else {
            mails.push(incoming(raw, result, null, senderAuth))
          }
        }
      }
      const readNow: Effect.Effect<void> = Effect.suspend(() => {
        readSlice()
        return mails.length < raws.length ? Effect.zipRight(yieldToIo, readNow) : Effect.void
      })
      return readNow.pipe(
        Effect.zipRight(Effect.suspend(() =>
          Effect.forEach(later, ({ at, raw, parsed }) => Effect.map(read(raw, null, parsed), (mail) => void (mails[at] = mail)), {
            concurrency: 16,
            discard: true
          })
        )),
        Effect.as(mails as Array<IncomingMail>)
      )
    })
  }
}

/** What a batch's decisions came to, for summaries and the outcome counter. */
export const countDecisions = (decisions: ReadonlyArray<IntakeDecision>) => ({
  received: decisions.filter((d) => d.data._tag === "EmailReceived").length,
  ticketsCreated: decisions.filter((d) => d.data._tag === "EmailReceived" && d.data.newTicket).length,
  duplicates: decisions.filter((d) => d.data._tag === "EmailDuplicate").length,
  quarantined: decisions.filter((d) => d.data._tag === "EmailQuarantined").length
})
