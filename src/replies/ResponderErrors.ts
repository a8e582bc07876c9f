import type { SqlError } from "@effect/sql/SqlError"
import { Data, Duration, Schedule } from "effect"
import type { Effect } from "effect"
import type { ImapSession } from "../mailbox/Imap.js"
import type { ImapError } from "../mailbox/ImapErrors.js"
import { imapRetry, protocolRetry } from "../mailbox/ImapErrors.js"
import { isSpecialUse } from "../mailbox/Imap.js"
import type { LeadershipLost } from "../mailbox/Leadership.js"
import { databaseRetry } from "../log/Sql.js"
import type { AgentFailed } from "./Agent.js"
import { llmOutageRetry, llmRefusedRetry } from "./Agent.js"
import type { DraftsMailboxMissing } from "./Drafts.js"
import { ReplyIntended } from "../log/Event.js"
import type { MailerError, OneAnswerRefused, SmtpAuthenticationFailed, SmtpLimitReached, SmtpSenderRefused, SmtpUnavailable } from "./Mailer.js"
import { smtpAuthenticationRetry, smtpLimitRetry, smtpOutageRetry, smtpSenderRetry } from "./Mailer.js"

/** SENT_MAILBOX is missing: without it a crash could send a reply twice, so replies wait. */
export class SentMailboxMissing extends Data.TaggedError("SentMailboxMissing")<{ readonly mailbox: string }> {
  /** What is missing and what to set, without what becomes of the replies meanwhile (`mailroom check` says its own). */
  get problem() {
    return isSpecialUse(this.mailbox)
      ? `no folder on the IMAP server is marked or named as the sent folder (${this.mailbox}): set SENT_MAILBOX to the folder the server files sent mail in (Microsoft 365: "Sent Items")`
      : `the sent folder "${this.mailbox}" does not exist on the IMAP server: check SENT_MAILBOX (Gmail names it "[Gmail]/Sent Mail", or its translation)`
  }
  override get message() {
    return `${this.problem}; replies wait until it is found`
  }
}

/**
 * The LLM is down or rate-limited past `llmRetry`: the mail stays unanswered and the responder
 * pauses on `llmOutageRetry`, rather than give up on every mail that arrives during an outage. A
 * mail still unanswered LLM_OUTAGE_WAIT after it was recorded is recorded as ReplyFailed instead,
 * so that neither a long outage nor a mail the LLM always fails on holds the others back for ever.
 */
export class LlmUnavailable extends Data.TaggedError("LlmUnavailable")<{
  readonly cause: AgentFailed
  readonly wait: Duration.Duration
}> {
  /** The server's Retry-After, which llmOutageRetry waits at least. */
  get retryAfter() {
    return this.cause.retryAfter
  }
  override get message() {
    const { detail, endpoint, reason } = this.cause
    return `the LLM at ${endpoint} is unavailable (${reason}: ${detail}): answers wait and are tried again (should it last, check LLM_BASE_URL and the network); a mail unanswered ${Duration.format(this.wait)} after it was recorded is left for a person (LLM_OUTAGE_WAIT)`
  }
}

/**
 * The LLM refuses the key (401, 403) or knows no such model or path (404): every mail would fail the
 * same, so answers wait for a person to fix the setting, as for LlmUnavailable, and a `--once` run
 * stops with the setting named.
 */
export class LlmRefused extends Data.TaggedError("LlmRefused")<{
  readonly cause: AgentFailed
  readonly wait: Duration.Duration
}> {
  override get message() {
    const { detail, endpoint, reason } = this.cause
    const fix = reason === "unauthorized" ? "check LLM_API_KEY" : "check LLM_BASE_URL and LLM_MODEL"
    return `the LLM at ${endpoint} refuses mailroom's requests (${reason}: ${detail}): ${fix}; answers wait until it accepts them, and a mail unanswered ${Duration.format(this.wait)} after it was recorded is left for a person (LLM_OUTAGE_WAIT)`
  }
}

/** What the SMTP server holds every answer back with, as against its refusal of one mail or one recipient. */
export type SmtpHold = Exclude<MailerError, OneAnswerRefused>

/** Why, in the words a person reads on the first line of the draft (Drafts.withReason). */
const heldBy: { readonly [T in SmtpHold["_tag"]]: (error: Extract<SmtpHold, { readonly _tag: T }>) => string } = {
  SmtpLimitReached: () => "the account's sending limit was reached",
  SmtpSenderRefused: (error) => `it refused ${error.from} as the sender`,
  SmtpAuthenticationFailed: () => "it refused mailroom's login",
  SmtpUnavailable: () => "it could not be reached",
  TlsFailed: () => "TLS with it failed",
  OAuth2Refused: () => "the OAuth2 grant was refused"
}

export const isSmtpHold = <E extends { readonly _tag: string }>(error: E): error is Extract<E, SmtpHold> => error._tag in heldBy

/**
 * The answer as a draft for a person, once the SMTP server has held it back SMTP_OUTAGE_WAIT: a
 * person then decides whether an answer that late still fits, and sends it when the server takes
 * mail again. Its Message-ID stays, so a restart finds the draft and neither sends nor drafts again.
 */
export const handedOver = (intent: ReplyIntended, error: SmtpHold, waited: Duration.Duration) =>
  new ReplyIntended({
    ...intent,
    mode: "draft",
    draftReason: `the SMTP server held this answer back for ${Duration.format(waited)} (${
      (heldBy[error._tag] as (error: SmtpHold) => string)(error)
    }, SMTP_OUTAGE_WAIT), so it was not sent`
  })

/** Runs `use` on the responder's IMAP connection, opened on first use, one caller at a time. */
export type WithSession = <A, E>(use: (session: ImapSession) => Effect.Effect<A, E>) => Effect.Effect<A, E | ImapError>

export type ResponderError =
  | SqlError
  | ImapError
  | SmtpAuthenticationFailed
  | SmtpUnavailable
  | SmtpLimitReached
  | SmtpSenderRefused
  | LlmUnavailable
  | LlmRefused
  | SentMailboxMissing
  | DraftsMailboxMissing
  | LeadershipLost

export const scheduleFor = (error: ResponderError): Schedule.Schedule<unknown, unknown> => {
  switch (error._tag) {
    case "SmtpAuthenticationFailed":
      return smtpAuthenticationRetry
    case "SmtpUnavailable":
      return smtpOutageRetry
    case "SmtpLimitReached":
      return smtpLimitRetry
    case "SmtpSenderRefused":
      return smtpSenderRetry
    case "LlmUnavailable":
      return llmOutageRetry
    case "LlmRefused":
      return llmRefusedRetry
    case "SqlError":
    case "LeadershipLost":
      return databaseRetry
    case "SentMailboxMissing":
    case "DraftsMailboxMissing":
      return protocolRetry
    default:
      return imapRetry(error)
  }
}
