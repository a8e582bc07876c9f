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

/**
 * Whether a received mail gets an automatic answer at all: loops and automatic mail first (they say
 * most about the mail), then the sender's authentication, then the caps. The global cap is a
 * circuit breaker: once open it skips without counting, and says so once.
 */
export const makePolicy = (config: ReplyConfig, own: OwnAddresses, store: ReplyStoreShape) =>
  Effect.gen(function*() {
    const openUntil = yield* Ref.make(0)

    const breaker = Effect.gen(function*() {
      const now = Date.now()
      const until = yield* Ref.get(openUntil)
      if (until > now) {
        return { reason: "global_limit", detail: `the circuit breaker is open until ${new Date(until).toISOString()} (REPLY_GLOBAL_LIMIT=${config.globalLimit})` } satisfies Skip
      }
      const skip = globalGuard(yield* store.answersSince({}, new Date(now - HOUR)), config.globalLimit)
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

    const skip = (email: EmailReceived): Effect.Effect<Skip | undefined, SqlError> =>
      Effect.gen(function*() {
        const early = loopGuard(email, own) ?? authGuard(email, config.requireAuth)
        if (early !== undefined) return early
        const sender = rateGuard(
          yield* store.sentSince(email.customerId, recipient(email).address, new Date(Date.now() - HOUR)),
          config.rateLimit
        )
        if (sender !== undefined) return sender
        const ticket = ticketGuard(yield* store.answersSince({ ticketId: email.ticketId }, new Date(Date.now() - DAY)), config.ticketLimit)
        return ticket ?? (yield* breaker)
      })

    return { skip } as const
  })
