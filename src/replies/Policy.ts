import type { SqlError } from "@effect/sql/SqlError"
import { Config, Effect, Ref } from "effect"
import { mailboxUser } from "../config/Config.js"
import { setting } from "../config/Settings.js"
import type { EmailReceived } from "../log/Event.js"
import { markSeenPolicy } from "../mailbox/Imap.js"
import type { ReplyStoreShape } from "./ReplyStore.js"
import type { OwnAddresses, Skip } from "./Reply.js"
import { globalGuard, loopGuard, rateGuard, recipient, ticketGuard } from "./Reply.js"

const positive = (name: string) =>
  Config.integer(name).pipe(Config.validate({ message: "Expected a whole number above 0", validation: (n) => n > 0 }))

const addressList = (name: string) =>
  Config.string(name).pipe(
    Config.map((value) => value.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0)),
    Config.validate({ message: "Expected comma-separated email addresses", validation: (list) => list.every((a) => a.includes("@")) })
  )

export type ReplyMode = "send" | "draft"

export const ReplyConfig = Config.all({
  sentMailbox: setting(
    "SENT_MAILBOX",
    "Folder where the SMTP server files what it sent; after a crash a reply's Message-ID is looked up there before it is sent again.",
    Config.nonEmptyString,
    { value: "[Gmail]/Sent Mail" }
  ),
  mode: setting(
    "REPLY_MODE",
    "send: answers go out over SMTP; draft: every answer is left in DRAFTS_MAILBOX for a person to check and send.",
    (name) => Config.literal("send", "draft")(name),
    { value: "send" as ReplyMode }
  ),
  requireAuth: setting(
    "REPLY_REQUIRE_AUTH",
    "Answer only senders whose From address a trusted server authenticated (see TRUSTED_AUTHSERV_IDS); others are recorded as skipped (unauthenticated).",
    Config.boolean,
    { value: true }
  ),
  ownAddresses: setting(
    "OWN_ADDRESSES",
    "Comma-separated aliases of this mailbox (besides GMAIL_SENDER_EMAIL): mail from or to them, with any +tag, is never answered.",
    addressList,
    { value: [] as ReadonlyArray<string>, shown: "(none)" }
  ),
  rateLimit: setting(
    "REPLY_RATE_LIMIT",
    "Answers per sender per hour; mail beyond it is recorded as skipped (rate_limited).",
    positive,
    { value: 5 }
  ),
  ticketLimit: setting(
    "REPLY_TICKET_LIMIT",
    "Automatic answers per ticket per 24 hours; mail beyond it is recorded as skipped (ticket_limit).",
    positive,
    { value: 3 }
  ),
  globalLimit: setting(
    "REPLY_GLOBAL_LIMIT",
    "Answers per hour across the mailbox: past it a circuit breaker opens (one warning) and mail is recorded as skipped (global_limit) until the hour has passed.",
    positive,
    { value: 100 }
  ),
  maxChars: setting(
    "REPLY_MAX_CHARS",
    "Longest answer sent without a person: a longer one is left as a draft.",
    positive,
    { value: 4000 }
  ),
  markSeen: markSeenPolicy
})
export type ReplyConfig = Config.Config.Success<typeof ReplyConfig>

export const ownAddressesOf = Effect.gen(function*() {
  const { ownAddresses } = yield* ReplyConfig
  return { address: (yield* mailboxUser).toLowerCase(), aliases: ownAddresses } satisfies OwnAddresses
})

const HOUR = 60 * 60 * 1000
const DAY = 24 * HOUR

/** Sender authentication, as REPLY_REQUIRE_AUTH asks for it. */
export const authGuard = (email: Pick<EmailReceived, "senderAuth">, required: boolean): Skip | undefined =>
  required && !email.senderAuth.authenticated
    ? { reason: "unauthenticated", detail: `the sender is not authenticated: ${email.senderAuth.reason}` }
    : undefined

/** An answer admitted but not yet recorded as ReplyIntended: it counts against the caps meanwhile. */
interface Reservation {
  readonly ticketId: string
  readonly customerId: string
  readonly to: string
}

/**
 * Whether a received mail gets an automatic answer at all: loops and automatic mail first (they say
 * most about the mail), then the sender's authentication, then the caps. The caps count answers
 * decided (ReplyIntended) plus those admitted and still on their way to being recorded, and
 * admission is one at a time, so answers sent side by side cannot overshoot them. The global cap
 * is a circuit breaker: once open it skips without counting, and says so once.
 */
export const makePolicy = (config: ReplyConfig, own: OwnAddresses, store: ReplyStoreShape) =>
  Effect.gen(function*() {
    const openUntil = yield* Ref.make(0)
    const inFlight = yield* Ref.make<ReadonlyArray<Reservation>>([])
    const oneAtATime = yield* Effect.makeSemaphore(1)

    const breaker = (pending: number) =>
      Effect.gen(function*() {
        const now = Date.now()
        const until = yield* Ref.get(openUntil)
        if (until > now) {
          return { reason: "global_limit", detail: `the circuit breaker is open until ${new Date(until).toISOString()} (REPLY_GLOBAL_LIMIT=${config.globalLimit})` } satisfies Skip
        }
        const skip = globalGuard((yield* store.answersSince({}, new Date(now - HOUR))) + pending, config.globalLimit)
        if (skip === undefined) {
          if (until > 0) {
            yield* Ref.set(openUntil, 0)
            yield* Effect.logInfo("Automatic answers resume: the last hour is under REPLY_GLOBAL_LIMIT again")
          }
          return undefined
        }
        yield* Ref.set(openUntil, now + HOUR)
        yield* Effect.logWarning(`${skip.detail}; mail is still recorded, answers wait for a person`)
        return skip
      })

    const caps = (email: EmailReceived, to: string, pending: ReadonlyArray<Reservation>) =>
      Effect.gen(function*() {
        const now = Date.now()
        const sender = rateGuard(
          (yield* store.sentSince(email.customerId, to, new Date(now - HOUR))) +
            pending.filter((r) => r.customerId === email.customerId || r.to === to).length,
          config.rateLimit
        )
        if (sender !== undefined) return sender
        const ticket = ticketGuard(
          (yield* store.answersSince({ ticketId: email.ticketId }, new Date(now - DAY))) +
            pending.filter((r) => r.ticketId === email.ticketId).length,
          config.ticketLimit
        )
        return ticket ?? (yield* breaker(pending.length))
      })

    /**
     * Runs `answer` for a mail the policy admits, holding its place under the caps until `answer`
     * has recorded what it decided; a mail it does not admit gets `skipped` with the reason.
     */
    const admit = <A, E, R>(
      email: EmailReceived,
      answer: Effect.Effect<A, E, R>,
      skipped: (skip: Skip) => Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | SqlError, R> =>
      Effect.gen(function*() {
        const early = loopGuard(email, own) ?? authGuard(email, config.requireAuth)
        if (early !== undefined) return yield* skipped(early)
        const reservation: Reservation = { ticketId: email.ticketId, customerId: email.customerId, to: recipient(email).address }
        const skip = yield* oneAtATime.withPermits(1)(
          Effect.flatMap(Ref.get(inFlight), (pending) =>
            Effect.tap(caps(email, reservation.to, pending), (skip) =>
              skip === undefined ? Ref.update(inFlight, (all) => [...all, reservation]) : Effect.void))
        )
        if (skip !== undefined) return yield* skipped(skip)
        return yield* answer.pipe(Effect.ensuring(Ref.update(inFlight, (all) => all.filter((r) => r !== reservation))))
      })

    return { admit } as const
  })
