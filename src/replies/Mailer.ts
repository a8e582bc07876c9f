import { Cause, Context, Data, Duration, Effect, Exit, Layer, Redacted, Runtime, Schedule, Scope } from "effect"
import type Nodemailer from "nodemailer"
import { SmtpConfig } from "../config/Replies.js"
import type { TlsMode } from "../config/Config.js"
import type { OAuth2Refused, TlsFailed } from "../mailbox/ImapErrors.js"
import { OAuth2, OAuth2Live } from "../mailbox/OAuth2.js"
import type { AccessToken } from "../mailbox/OAuth2.js"
import { tlsProblem } from "../mailbox/ImapErrors.js"
import type { Address } from "../mail/Email.js"
import { messageOptions } from "./Compose.js"
import { autoReplyHeaders, safeHeader } from "./Reply.js"

/** One answer, every header value already free of line breaks. */
export interface OutboundMail {
  readonly messageId: string
  readonly from: string
  readonly to: Address
  readonly subject: string
  readonly text: string
  readonly inReplyTo: string | null
  readonly references: ReadonlyArray<string>
}

export interface Delivery {
  /** The server's final response, e.g. "250 2.0.0 OK". */
  readonly response: string
  readonly attempts: number
}

/** What to do about a refused SMTP login, where the server's words say more than a wrong password. */
const loginFix = (user: string, serverText: string, oauth2: boolean) =>
  /^530\b/.test(serverText)
    ? "the server takes mail only after TLS and a login: check SMTP_TLS (starttls on port 587, true on 465) and SMTP_PORT"
    : /basic authentication is disabled/i.test(serverText)
    ? "Microsoft takes no password for SMTP here (basic authentication is off): set MAILBOX_AUTH=oauth2 and run `mailroom auth microsoft`"
    : /\b5\.7\.139\b|SmtpClientAuthentication is disabled/i.test(serverText)
    ? "Microsoft 365 has SMTP AUTH turned off for this mailbox or its tenant: an administrator turns on Authenticated SMTP for the mailbox (https://aka.ms/smtp_auth_disabled)"
    : oauth2
    ? `the server refused the OAuth2 token: run \`mailroom auth\` again signed in as ${user}, with the app allowed SMTP (Google: the https://mail.google.com/ scope; Microsoft 365: SMTP.Send)`
    : /\b5\.7\.9\b|Application-specific password required/i.test(serverText)
    ? "Gmail wants an app password for this account (2-Step Verification is on): create one and set it as GMAIL_SENDER_PASSWORD"
    : "check GMAIL_SENDER_PASSWORD (for Gmail an app password) and SMTP_HOST, SMTP_PORT, SMTP_TLS"

/** What becomes of an answer held back too long (Delivery.sendOrHandOver). */
const handedOverAfter = " (one still held SMTP_OUTAGE_WAIT after its mail arrived is left as a draft for a person)"

/** Wrong password or revoked app password: every reply would fail the same way, so replies wait. */
export class SmtpAuthenticationFailed extends Data.TaggedError("SmtpAuthenticationFailed")<{
  readonly user: string
  readonly host: string
  readonly serverText: string
  /** Logged in with an OAuth2 token (MAILBOX_AUTH=oauth2), not a password. */
  readonly oauth2?: boolean
}> {
  /** What is wrong and what to change, without what becomes of the answers meanwhile. */
  get problem() {
    return `SMTP login failed for ${this.user} at ${this.host} (${this.serverText}): ${loginFix(this.user, this.serverText, this.oauth2 ?? false)}`
  }

  override get message() {
    return `${this.problem}; replies wait until it works${handedOverAfter}`
  }
}

/** Connection refused, timed out, or a temporary (4xx) answer: the reply waits and is tried again. */
export class SmtpUnavailable extends Data.TaggedError("SmtpUnavailable")<{
  readonly host: string
  readonly reason: string
}> {
  get problem() {
    return `the SMTP server ${this.host} is unavailable (${this.reason}): check SMTP_HOST, SMTP_PORT, SMTP_TLS and the network`
  }

  override get message() {
    return `${this.problem}; replies wait and are tried again${handedOverAfter}`
  }
}

/** A permanent (5xx) refusal of this one message: retrying cannot help, the reply is recorded as failed. */
export class SmtpRejected extends Data.TaggedError("SmtpRejected")<{
  readonly to: string
  readonly serverText: string
}> {
  override get message() {
    return `the SMTP server refused the reply to ${this.to}: ${this.serverText}`
  }
}

/**
 * The server takes no mail for this one recipient for now: a 4xx at RCPT TO about the customer's
 * mailbox or domain (4.1.x, 4.2.x, "Recipient address rejected": a domain whose DNS fails, an address
 * the relay cannot verify, a mailbox that takes no more mail, greylisting). The address is the
 * customer's, whoever sent the mail, so it must not hold every other answer back as an outage would:
 * after the send's own retries the answer is ReplyFailed, which the responder asks for again by
 * itself (ReplyFailed.autoRetry) and `mailroom replies retry` at any time.
 */
export class SmtpRecipientDeferred extends Data.TaggedError("SmtpRecipientDeferred")<{
  readonly to: string
  readonly serverText: string
  /** How many times it was offered, the send's own retries included. */
  readonly attempts: number
}> {
  override get message() {
    return `the SMTP server takes no mail for ${this.to} for now (${this.serverText}), so the reply was not sent; the other answers went on`
  }
}

/** A refusal of one answer (of the message, or of its recipient for now), as against one that holds every answer back. */
export type OneAnswerRefused = SmtpRejected | SmtpRecipientDeferred

export const refusesOneAnswer = <E extends { readonly _tag: string }>(error: E): error is Extract<E, OneAnswerRefused> =>
  error._tag === "SmtpRejected" || error._tag === "SmtpRecipientDeferred"

/**
 * The account may send no more for now: Gmail's daily limit, Microsoft 365's submission quota, a
 * relay's. The refusal is permanent (5xx) for this message, but every answer would meet it until the
 * limit resets, so answers wait instead of each being recorded as failed.
 */
export class SmtpLimitReached extends Data.TaggedError("SmtpLimitReached")<{
  readonly user: string
  readonly host: string
  readonly serverText: string
}> {
  get problem() {
    return `the SMTP server ${this.host} sends no more mail from ${this.user} for now (${this.serverText}): its sending limit is reached (Gmail and Microsoft 365 count a rolling 24 hours)`
  }

  override get message() {
    return `${this.problem}; answers wait and are tried again, at most half an hour apart${handedOverAfter}, and a lower REPLY_GLOBAL_LIMIT keeps mailroom under the limit`
  }
}

/**
 * The server refuses the From of answers (REPLY_FROM, or the login's address): Microsoft 365's
 * SendAsDenied, Postfix's "not owned by user", any refusal of MAIL FROM. Every answer would meet it,
 * so answers wait for the setting or the right to send as that address.
 */
export class SmtpSenderRefused extends Data.TaggedError("SmtpSenderRefused")<{
  readonly from: string
  readonly host: string
  readonly serverText: string
}> {
  get problem() {
    return `the SMTP server ${this.host} refuses ${this.from} as the sender of answers (${this.serverText}): set REPLY_FROM to an address the login may send as, or give the login that right (Microsoft 365: Send As)`
  }

  override get message() {
    return `${this.problem}; answers wait until it is accepted${handedOverAfter}`
  }
}

/** What is wrong and what to change, without what becomes of waiting answers: for `mailroom check`, where none wait. */
export const smtpProblem = (error: MailerError): string => "problem" in error ? error.problem : error.message

export type MailerError =
  | SmtpAuthenticationFailed
  | SmtpUnavailable
  | SmtpRejected
  | SmtpRecipientDeferred
  | SmtpLimitReached
  | SmtpSenderRefused
  | TlsFailed
  | OAuth2Refused

/** A blip is retried within the send: from a second, three times. */
export const smtpRetry = Schedule.exponential("1 second", 2).pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(3)))

/** After that, the responder pauses: from 10 s doubling to 5 minutes. */
export const smtpOutageRetry = Schedule.exponential("10 seconds", 2).pipe(Schedule.union(Schedule.spaced("5 minutes")), Schedule.jittered)

/** Minutes, doubling, up to an hour: a wrong password must not lock the account. */
export const smtpAuthenticationRetry = Schedule.exponential("2 minutes", 2).pipe(Schedule.union(Schedule.spaced("1 hour")))

/** A sending limit resets in hours: from 5 minutes, doubling to every half hour (one refused send each). */
export const smtpLimitRetry = Schedule.exponential("5 minutes", 2).pipe(Schedule.union(Schedule.spaced("30 minutes")), Schedule.jittered)

/** A right to send as the address can be granted without a restart: from 2 minutes, doubling to every half hour. */
export const smtpSenderRetry = Schedule.exponential("2 minutes", 2).pipe(Schedule.union(Schedule.spaced("30 minutes")))

interface NodemailerError {
  readonly code?: string
  readonly responseCode?: number
  readonly response?: string
  readonly message?: string
  /** The command the server refused: "MAIL FROM", "RCPT TO", "DATA"… */
  readonly command?: string
}

/**
 * The account's sending limit, in the words servers use: Gmail's "550 5.4.5 Daily user sending
 * quota exceeded", Microsoft 365's SubmissionQuotaExceededException and "exceeded its 24-hour
 * sending limit", a relay's "over your relay quota". Not a recipient's full mailbox ("5.2.2 … over
 * quota"), which concerns that one message.
 */
const SENDING_LIMIT = /\b5\.4\.5\b|SubmissionQuotaExceeded|\b(sending|submission|relay|daily|hourly)\s+(user\s+)?(quota|limit)\b|\bmessages per (day|hour)\b/i

/** A refusal of the sender whatever the command: Microsoft 365 refuses Send As after DATA, Postfix at RCPT TO. */
const SENDER_REFUSED = /SendAsDenied|not allowed to send as|sender address rejected|not owned by user/i

/**
 * A temporary refusal at RCPT TO that concerns the recipient: an enhanced status of addressing
 * (4.1.x) or of the mailbox (4.2.x), or Postfix's words for its recipient restrictions. Not the
 * sender's address (4.1.7, 4.1.8), which every answer shares.
 */
const RECIPIENT_DEFERRED = /\b4\.[12]\.\d{1,3}\b|recipient address rejected/i
const SENDER_STATUS = /\b4\.1\.[78]\b/

/** A server's text without the addresses it echoes: those are the customer's to choose. */
const withoutAddresses = (serverText: string) => serverText.replace(/<[^<>]*>|\S*@\S*/g, " ")

/** A refusal of MAIL FROM that is not about the sender: the message's size (552, 5.3.4). */
const SIZE_REFUSED = /^552\b|\b5\.3\.4\b/

/** Sorts what nodemailer threw into what the responder can act on. */
export const classifySmtp = (
  cause: unknown,
  context: {
    readonly host: string
    readonly port: number
    readonly tls: TlsMode
    readonly user: string
    readonly from: string
    readonly to: string
    readonly oauth2?: boolean
  }
): MailerError => {
  const tls = tlsProblem(cause, { protocol: "SMTP", host: context.host, port: context.port, tls: context.tls })
  if (tls) return tls
  const error = (typeof cause === "object" && cause !== null ? cause : { message: String(cause) }) as NodemailerError
  const serverText = safeHeader(error.response ?? error.message ?? "").slice(0, 300)
  // 530: "Must issue a STARTTLS command first", "Client not authenticated": no answer can go before a login.
  if (error.code === "EAUTH" || error.responseCode === 535 || error.responseCode === 534 || error.responseCode === 530) {
    return new SmtpAuthenticationFailed({ user: context.user, host: context.host, serverText: serverText || "authentication failed", oauth2: context.oauth2 ?? false })
  }
  if (error.responseCode !== undefined && error.responseCode >= 500) {
    // Read without the addresses a server echoes: a customer's own address (say 5.4.5@their.domain,
    // refused as a recipient) must not pass for the account's limit and hold every answer back.
    const words = withoutAddresses(serverText)
    if (SENDING_LIMIT.test(words)) return new SmtpLimitReached({ user: context.user, host: context.host, serverText })
    if (SENDER_REFUSED.test(words) || (error.command === "MAIL FROM" && !SIZE_REFUSED.test(words))) {
      return new SmtpSenderRefused({ from: context.from, host: context.host, serverText })
    }
    return new SmtpRejected({ to: context.to, serverText })
  }
  // 421 closes the session whatever the command: the server's state, not the recipient's.
  if (error.command === "RCPT TO" && error.responseCode !== undefined && error.responseCode >= 400 && error.responseCode !== 421) {
    const words = withoutAddresses(serverText)
    if (RECIPIENT_DEFERRED.test(words) && !SENDER_STATUS.test(words) && !SENDER_REFUSED.test(words) && !SENDING_LIMIT.test(words)) {
      return new SmtpRecipientDeferred({ to: context.to, serverText, attempts: 1 })
    }
  }
  return new SmtpUnavailable({ host: context.host, reason: [error.code, serverText].filter(Boolean).join(" ") || "unknown error" })
}

export interface SendOptions {
  /**
   * Whether a refusal of the recipient for now (SmtpRecipientDeferred) is offered again within the
   * send, for DNS that fails for a moment: not for an automatic retry, which minutes apart is its own.
   */
  readonly retryRecipient: boolean
}

export interface MailerShape {
  readonly send: (mail: OutboundMail, options?: SendOptions) => Effect.Effect<Delivery, MailerError>
  /** Connects, logs in and says goodbye, sending nothing: what `mailroom check` asks of SMTP. */
  readonly verify: Effect.Effect<void, MailerError>
  /** How many answers may be sent at once (SMTP_CONCURRENCY). */
  readonly concurrency: number
}

export class Mailer extends Context.Tag("mailroom/Mailer")<Mailer, MailerShape>() {
  /** For tests: sends into `mailer`, whose `sent` the test reads. */
  static readonly Test = (mailer: MemoryMailer): Layer.Layer<Mailer> =>
    Layer.succeed(Mailer, Mailer.of({ concurrency: 4, send: (mail) => mailer.send(mail), verify: mailer.verify() }))
}

const make = Effect.gen(function*() {
  const config = yield* SmtpConfig
  const oauth2 = yield* OAuth2
  const runtime = yield* Effect.runtime<never>()
  const create = (nodemailer: typeof Nodemailer) => {
    const transport = nodemailer.createTransport({
      // Connections are kept and reused: a new one costs a greeting, TLS and a login per answer.
      pool: true,
      maxConnections: config.concurrency,
      maxMessages: 100,
      host: config.host,
      port: config.port,
      secure: config.tls === true,
      requireTLS: config.tls === "starttls",
      ignoreTLS: config.tls === false,
      // With OAuth2 each new pooled connection asks oauth2_provision_cb (below) for a token.
      auth: oauth2.enabled ? { type: "OAuth2", user: config.user } : { user: config.user, pass: Redacted.value(config.password) },
      connectionTimeout: Duration.toMillis(config.timeout),
      greetingTimeout: Duration.toMillis(config.timeout),
      // A second longer: a server silent from the start is then always told by the greeting's timer
      // ("speaks TLS: set SMTP_TLS=true"), never by the socket's, which a busy event loop could run first.
      socketTimeout: Duration.toMillis(config.timeout) + 1000,
      disableFileAccess: true,
      disableUrlAccess: true
    })
    if (oauth2.enabled) {
      // nodemailer asks again with renew=true after the server refused a token, then retries the login once.
      let given: AccessToken | undefined
      transport.set("oauth2_provision_cb", (_user, renew, callback) =>
        Runtime.runCallback(runtime)(
          (renew && given ? oauth2.invalidate(given.token) : Effect.void).pipe(Effect.zipRight(oauth2.accessToken)),
          {
            onExit: Exit.match({
              onFailure: (cause) => callback(new Error(Cause.squash(cause) instanceof Error ? (Cause.squash(cause) as Error).message : "no OAuth2 token")),
              onSuccess: (token) => {
                given = token
                callback(null, Redacted.value(token.token), token.refreshAt)
              }
            })
          }
        ))
    }
    return transport
  }
  // Made, and nodemailer loaded, at the first answer: a mailbox that never answers (AGENT=off) holds no
  // pool (a thousand mailboxes hold a thousand fewer), and a start or a command that sends nothing
  // does not load nodemailer.
  const loadedOnFirstSend = Effect.map(Effect.promise(() => import("nodemailer")), (loaded) => create(loaded.default))
  const transport = yield* Effect.cached(
    Scope.extend(Effect.acquireRelease(loadedOnFirstSend, (transport) => Effect.sync(() => transport.close())), yield* Effect.scope)
  )

  /** A refused grant surfaces typed before nodemailer would make it an EAUTH; a cached token costs nothing. */
  const tokenReady: Effect.Effect<void, OAuth2Refused | SmtpUnavailable> = oauth2.enabled
    ? oauth2.accessToken.pipe(
      Effect.asVoid,
      Effect.catchTag("TokenUnavailable", (error) => Effect.fail(new SmtpUnavailable({ host: error.url, reason: error.message })))
    )
    : Effect.void

  const classifying = { host: config.host, port: config.port, tls: config.tls, user: config.user, oauth2: oauth2.enabled }
  const attempt = (mail: OutboundMail) =>
    tokenReady.pipe(
      Effect.zipRight(transport),
      Effect.flatMap((transport) =>
        Effect.tryPromise({
          try: () => transport.sendMail(messageOptions(mail, autoReplyHeaders(mail.from))),
          catch: (cause) =>
            classifySmtp(cause, { ...classifying, from: mail.from, to: mail.to.address })
        })
      )
    )

  return Mailer.of({
    concurrency: config.concurrency,
    verify: tokenReady.pipe(
      Effect.zipRight(transport),
      Effect.flatMap((transport) =>
        Effect.tryPromise({
          try: () => transport.verify(),
          catch: (cause) => classifySmtp(cause, { ...classifying, from: config.user, to: "" })
        })
      ),
      // No mail was offered: a 5xx here (a 554 greeting, say) is the server refusing the session.
      Effect.catchIf(refusesOneAnswer, (error) => Effect.fail(new SmtpUnavailable({ host: config.host, reason: error.serverText }))),
      Effect.asVoid,
      Effect.withSpan("Mailer.verify", { attributes: { "server.address": config.host, "server.port": config.port, "network.protocol.name": "smtp" } })
    ),
    send: Effect.fn("Mailer.send")(function*(mail: OutboundMail, options: SendOptions = { retryRecipient: true }) {
      yield* Effect.annotateCurrentSpan({
        "server.address": config.host,
        "server.port": config.port,
        "network.protocol.name": "smtp",
        "mailroom.smtp.message_id": mail.messageId
      })
      let attempts = 0
      const info = yield* Effect.suspend(() => {
        attempts += 1
        return attempt(mail)
      }).pipe(
        // A recipient's domain whose DNS failed for a moment is a blip too.
        Effect.retry({
          schedule: smtpRetry,
          while: (error) => error._tag === "SmtpUnavailable" || (options.retryRecipient && error._tag === "SmtpRecipientDeferred")
        }),
        Effect.mapError((error) => error._tag === "SmtpRecipientDeferred" ? new SmtpRecipientDeferred({ ...error, attempts }) : error)
      )
      const response = safeHeader(info.response ?? "")
      yield* Effect.annotateCurrentSpan({ "mailroom.smtp.response": response, "mailroom.smtp.attempts": attempts })
      return { response, attempts }
    })
  })
})

export const MailerLive = Layer.scoped(Mailer, make).pipe(Layer.provide(OAuth2Live))

/**
 * An SMTP server in memory, for tests (`Mailer.Test(mailer)`): records what would be sent; `failNext`
 * queues the errors the next sends meet. `delay` makes each send take that long, and `mostAtOnce`
 * tells how many were under way together.
 */
export class MemoryMailer {
  readonly sent: Array<OutboundMail> = []
  readonly failures: Array<MailerError> = []
  mostAtOnce = 0
  private underWay = 0

  constructor(private readonly delay: (mail: OutboundMail) => Duration.DurationInput = () => 0) {}

  failNext(...errors: ReadonlyArray<MailerError>): void {
    this.failures.push(...errors)
  }

  /** Meets the next queued failure, as a login would; sends nothing. */
  verify(): Effect.Effect<void, MailerError> {
    return Effect.suspend(() => {
      const failure = this.failures.shift()
      return failure ? Effect.fail(failure) : Effect.void
    })
  }

  send(mail: OutboundMail): Effect.Effect<Delivery, MailerError> {
    return Effect.suspend(() => {
      const failure = this.failures.shift()
      if (failure) return Effect.fail(failure)
      this.underWay += 1
      this.mostAtOnce = Math.max(this.mostAtOnce, this.underWay)
      return Effect.sleep(this.delay(mail)).pipe(
        Effect.zipRight(Effect.sync(() => this.sent.push(mail))),
        Effect.ensuring(Effect.sync(() => void (this.underWay -= 1))),
        Effect.as({ response: "250 2.0.0 OK (memory)", attempts: 1 })
      )
    })
  }
}
