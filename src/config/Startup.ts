import { Effect } from "effect"
import type { ConfigError } from "effect"
import { kafkaBrokers, KafkaConfig } from "./Bus.js"
import {
  DatabaseConfig,
  eventLogPoll,
  gmailApiEnabled,
  ImapConfig,
  IntakeConfig,
  logFormat,
  logLevel,
  mailboxAuth,
  markSeenPolicy,
  maxMailboxesPerProcess,
  OAuth2Config,
  reconcileInterval,
  retentionDays,
  secretKey
} from "./Config.js"
import { parserThreads, SenderAuthConfig } from "./Mail.js"
import { mailboxesFile } from "./Mailboxes.js"
import { agentKind, draftsMailbox, knowledgeDir, LlmConfig, ReplyConfig, SmtpConfig } from "./Replies.js"
import { HealthConfig, includePii, stallTimeout, TelemetryConfig } from "./Telemetry.js"

/** How a mailbox is logged in to: all that `status` needs of it. */
export const mailboxLogin: Effect.Effect<void, ConfigError.ConfigError> = Effect.gen(function*() {
  yield* ImapConfig
  if ((yield* mailboxAuth) === "oauth2") yield* OAuth2Config
})

/**
 * What one mailbox's services read (its login, intake, and answers unless AGENT=off), read at once
 * under that mailbox's settings. Each service reads them again as it is built; this only makes a
 * value that does not read stop the start before anything is opened (see `processSettings`).
 */
export const mailboxSettings: Effect.Effect<void, ConfigError.ConfigError> = Effect.gen(function*() {
  yield* mailboxLogin
  yield* IntakeConfig
  const agent = yield* agentKind
  if (agent === "off") return
  yield* Effect.all([ReplyConfig, SmtpConfig, draftsMailbox, knowledgeDir])
  if (agent === "openai") yield* LlmConfig
})

/**
 * The settings the whole process shares, read before the database opens: a bad value, or a missing
 * GMAIL_SENDER_EMAIL, stopped the start only once the embedded database had been made (39 MB and
 * two seconds on a first run) or PostgreSQL migrated.
 */
export const processSettings: Effect.Effect<void, ConfigError.ConfigError> = Effect.all([
  TelemetryConfig,
  includePii,
  logFormat,
  logLevel,
  DatabaseConfig,
  retentionDays,
  secretKey,
  gmailApiEnabled,
  eventLogPoll,
  markSeenPolicy,
  reconcileInterval,
  maxMailboxesPerProcess,
  parserThreads,
  SenderAuthConfig,
  kafkaBrokers,
  KafkaConfig,
  HealthConfig,
  stallTimeout,
  mailboxesFile
], { discard: true })
