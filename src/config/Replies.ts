import { mailboxPassword, mailboxUser, markSeenPolicy } from "./Config.js"
import { Config, Duration } from "effect"
import { address, addressList, httpUrl, positive, seconds, settingList, tlsMode } from "./Settings.js"
import type { TlsMode } from "./Settings.js"

/** The reply settings: who answers, with what, how often, over which SMTP server. */
const { all, setting } = settingList()
export const settings = all

export type AgentKind = "knowledge" | "openai" | "off"

export const agentKind = setting(
  "AGENT",
  "Who answers new mail: knowledge (from the Markdown in KNOWLEDGE_DIR, no network), openai (an OpenAI-compatible chat completions endpoint) or off (no replies; external agents consume the events).",
  (name) => Config.literal("knowledge", "openai", "off")(name),
  { value: "knowledge" as AgentKind }
)

export const LlmConfig = Config.all({
  baseUrl: setting("LLM_BASE_URL", "Base URL of the OpenAI-compatible API (AGENT=openai).", httpUrl, {
    value: "https://api.openai.com/v1"
  }),
  apiKey: setting("LLM_API_KEY", "API key for LLM_BASE_URL; unset for servers that need none.", (name) => Config.option(Config.redacted(name))),
  model: setting("LLM_MODEL", "Chat model to ask (AGENT=openai).", Config.nonEmptyString, { value: "gpt-4o-mini" }),
  timeout: setting(
    "LLM_TIMEOUT",
    "Seconds one LLM request may take before it counts as failed and is retried.",
    seconds,
    { value: Duration.seconds(60), shown: "60" }
  ),
  maxTokens: setting(
    "LLM_MAX_TOKENS",
    "Upper bound on the tokens of one answer (max_tokens on every request); an answer cut at it is left as a draft for a person.",
    positive,
    { value: 800 }
  )
})

export const knowledgeDir = setting(
  "KNOWLEDGE_DIR",
  "Folder of Markdown files (searched recursively, read at start; README files left out) that answers are drawn from.",
  Config.nonEmptyString,
  { value: "./knowledge" }
)

export const draftsMailbox = setting(
  "DRAFTS_MAILBOX",
  "The IMAP folder where answers wait for a person to check and send them. \\Drafts: the folder the server marks as drafts (RFC 6154), or that is named as one (Gmail's \"[Gmail]/Drafts\" in the account's language, Outlook's and Dovecot's Drafts); or a folder's name.",
  Config.nonEmptyString,
  { value: "\\Drafts" }
)

export type ReplyMode = "send" | "draft"

/** Also read by `mailroom replies` and `status`: which failures mailroom still asks for again by itself. */
export const smtpOutageWait = setting(
  "SMTP_OUTAGE_WAIT",
  "Seconds an answer may wait for an SMTP server that is down, at its sending limit, or refusing the login or the From (answers wait and are tried again); one the server still holds back this long after mailroom recorded its mail is left in DRAFTS_MAILBOX for a person to send, and is not sent automatically.",
  seconds,
  { value: Duration.hours(1), shown: "3600" }
)

export const ReplyConfig = Config.all({
  sentMailbox: setting(
    "SENT_MAILBOX",
    "Folder where the SMTP server files what it sent, where a person's answer is looked for before an automatic one goes out and, after a crash, a reply's Message-ID before it is sent again. \\Sent: the folder the server marks as sent mail (RFC 6154), or that is named as one (Gmail's \"[Gmail]/Sent Mail\" in the account's language, Outlook's Sent Items); or a folder's name.",
    Config.nonEmptyString,
    { value: "\\Sent" }
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
  from: setting(
    "REPLY_FROM",
    "The From of answers and drafts, when customers write to an address the login may send as but is not (a shared mailbox, an alias); mail from the login is still never answered. Unset: GMAIL_SENDER_EMAIL.",
    (name) => Config.option(address(name))
  ),
  ownAddresses: setting(
    "OWN_ADDRESSES",
    "Comma-separated aliases of this mailbox (besides GMAIL_SENDER_EMAIL): mail from or to them, with any +tag, is never answered.",
    addressList,
    { value: [] as ReadonlyArray<string>, shown: "(none)" }
  ),
  rateLimit: setting(
    "REPLY_RATE_LIMIT",
    "Answers per sender per hour, a mail of theirs the LLM failed on counting as one; mail beyond it is recorded as skipped (rate_limited).",
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
  llmOutageWait: setting(
    "LLM_OUTAGE_WAIT",
    "Seconds a mail may wait for an LLM that is down, rate-limited or refusing its key or model (answers wait and are tried again, from 15 s to every 5 minutes); one still unanswered this long after mailroom recorded it is recorded as ReplyFailed, for a person to answer.",
    seconds,
    { value: Duration.hours(1), shown: "3600" }
  ),
  smtpOutageWait,
  smtpRetryAfter: setting(
    "SMTP_RETRY_AFTER",
    "Seconds before an answer whose recipient the SMTP server refused for now (a 4xx at RCPT TO: the customer's domain not found, greylisting) is asked for again by itself; each wait after is twice the one before, until SMTP_OUTAGE_WAIT after its mail was recorded. Past that it stays failed, for `mailroom replies retry`.",
    seconds,
    { value: Duration.minutes(5), shown: "300" }
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

export const SmtpConfig = Config.all({
  user: mailboxUser,
  password: mailboxPassword,
  host: setting("SMTP_HOST", "SMTP server that sends replies.", Config.nonEmptyString, { value: "smtp.gmail.com" }),
  port: setting("SMTP_PORT", "SMTP server port.", Config.port, { value: 465 }),
  tls: setting(
    "SMTP_TLS",
    "true: TLS from the first byte (port 465); starttls: a plain connection that must upgrade with STARTTLS (port 587); false: plain, never upgraded (a trusted relay only).",
    tlsMode,
    { value: true as TlsMode }
  ),
  timeout: setting(
    "SMTP_TIMEOUT",
    "Seconds to wait for the SMTP server to connect, greet and answer each command.",
    seconds,
    { value: Duration.seconds(30), shown: "30" }
  ),
  concurrency: setting(
    "SMTP_CONCURRENCY",
    "Answers sent at once, over as many pooled SMTP connections; answers to one customer still go out in order.",
    (name) => Config.integer(name).pipe(Config.validate({ message: "Expected a whole number from 1 to 32", validation: (n) => n >= 1 && n <= 32 })),
    { value: 4 }
  )
})
export type SmtpConfig = Config.Config.Success<typeof SmtpConfig>
