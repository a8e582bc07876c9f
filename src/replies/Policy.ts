import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option, Ref } from "effect"
import { ReplyConfig } from "../config/Replies.js"
import { mailboxUser } from "../config/Config.js"
import type { EmailReceived } from "../log/Event.js"

import type { ReplyStoreShape } from "./ReplyStore.js"
import type { OwnAddresses, Skip } from "./Reply.js"
import { globalGuard, loopGuard, rateGuard, recipient, ticketGuard } from "./Reply.js"

/** Answers come from REPLY_FROM, or else the login; the login is one of mailroom's addresses either way. */
export const ownAddressesOf = Effect.gen(function*() {
  const { from, ownAddresses } = yield* ReplyConfig
  const login = (yield* mailboxUser).toLowerCase()
  const address = Option.getOrElse(from, () => login)
  return { address, aliases: address === login ? ownAddresses : [login, ...ownAddresses] } satisfies OwnAddresses
})

const HOUR = 60 * 60 * 1000
const DAY = 24 * HOUR

/** Sender authentication, as REPLY_REQUIRE_AUTH asks for it. */
export const authGuard = (email: Pick<EmailReceived, "senderAuth">, required: boolean): Skip | undefined =>
  required && !email.senderAuth.authenticated
    ? { reason: "unauthenticated", detail: `the sender is not authenticated: ${email.senderAuth.reason}` }
    : undefined

/** Records an admitted answer's intent (its effect) and frees the answer's place under the caps. */
export type Recorder = <X, E, R>(intend: Effect.Effect<X, E, R>) => Effect.Effect<X, E, R>

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
export const makePolicy = (
  config: ReplyConfig,
  own: OwnAddresses,
  store: ReplyStoreShape,
  /** The keyed id an address has as a customer (Vault): the recipient's, for REPLY_RATE_LIMIT. */
  keyedId: (address: string) => string
) =>
  Effect.gen(function*() {
    const openUntil = yield* Ref.make(0)
    const inFlight = yield* Ref.make<ReadonlyArray<Reservation>>([])
    const oneAtATime = yield* Effect.makeSemaphore(1)

    const breaker = (answeredLastHour: number) =>
      Effect.gen(function*() {
        const now = Date.now()
        const until = yield* Ref.get(openUntil)
        if (until > now) {
          return { reason: "global_limit", detail: `the circuit breaker is open until ${new Date(until).toISOString()} (REPLY_GLOBAL_LIMIT=${config.globalLimit})` } satisfies Skip
        }
        const skip = globalGuard(answeredLastHour, config.globalLimit)
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

    const caps = (mailId: string, email: EmailReceived, to: string, pending: ReadonlyArray<Reservation>) =>
      Effect.gen(function*() {
        const now = Date.now()
        const counts = yield* store.answerCounts(
          { mailId, customerId: email.customerId, recipient: { id: keyedId(to), address: to }, ticketId: email.ticketId },
          { sender: new Date(now - HOUR), ticket: new Date(now - DAY), all: new Date(now - HOUR) }
        )
        const sender = rateGuard(
          counts.sender + pending.filter((r) => r.customerId === email.customerId || r.to === to).length,
          config.rateLimit
        )
        if (sender !== undefined) return sender
        const ticket = ticketGuard(counts.ticket + pending.filter((r) => r.ticketId === email.ticketId).length, config.ticketLimit)
        return ticket ?? (yield* breaker(counts.all + pending.length))
      })

    /**
     * Runs `answer` for a mail the policy admits, holding its place under the caps until `answer`
     * records its ReplyIntended through `record` (from then on the caps count it in the log) or
     * ends; a mail it does not admit gets `skipped` with the reason.
     */
    const admit = <A, E, R>(
      mail: { readonly id: string; readonly email: EmailReceived },
      answer: (record: Recorder) => Effect.Effect<A, E, R>,
      skipped: (skip: Skip) => Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | SqlError, R> =>
      Effect.gen(function*() {
        const { email } = mail
        const early = loopGuard(email, own) ?? authGuard(email, config.requireAuth)
        if (early !== undefined) return yield* skipped(early)
        const reservation: Reservation = { ticketId: email.ticketId, customerId: email.customerId, to: recipient(email).address }
        const skip = yield* oneAtATime.withPermits(1)(
          Effect.flatMap(Ref.get(inFlight), (pending) =>
            Effect.tap(caps(mail.id, email, reservation.to, pending), (skip) =>
              skip === undefined ? Ref.update(inFlight, (all) => [...all, reservation]) : Effect.void))
        )
        if (skip !== undefined) return yield* skipped(skip)
        const release = Ref.update(inFlight, (all) => all.filter((r) => r !== reservation))
        // The intent goes into the log and the place is freed in one step, under admission's permit:
        // an admission between the two would count this answer twice (in the log and in flight) and
        // skip a mail the caps allow.
        const record: Recorder = (intend) => oneAtATime.withPermits(1)(Effect.zipLeft(intend, release))
        return yield* answer(record).pipe(Effect.ensuring(release))
      })

    return { admit } as const
  })
