import { Config, ConfigError, Duration, Either, Option, Redacted } from "effect"
import { appPassword, optional, optionalHttpUrl, optionalSecret, positive, seconds, settingList, tlsMode } from "./Settings.js"
import type { TlsMode } from "./Settings.js"

export { tlsMode } from "./Settings.js"
export type { TlsMode } from "./Settings.js"

/** The mailbox and intake settings, the database's and the logs'. */
const { all, setting } = settingList()
export const settings = all

export const mailboxUser = setting(
  "GMAIL_SENDER_EMAIL",
  "The mailbox login, e.g. support@yourcompany.com; also the From of replies.",
  Config.nonEmptyString
)

export type MailboxAuth = "password" | "oauth2"

export const mailboxAuth = setting(
  "MAILBOX_AUTH",
  "password: log in to IMAP and SMTP with GMAIL_SENDER_PASSWORD; oauth2: with OAuth2 access tokens (XOAUTH2) from the OAUTH2_* settings (run `mailroom auth` once).",
  (name) => Config.literal("password", "oauth2")(name),
  { value: "password" as MailboxAuth }
)

const passwordSetting = setting(
  "GMAIL_SENDER_PASSWORD",
  "The mailbox password: for Gmail a 16-letter app password (spaces are stripped). Not read with MAILBOX_AUTH=oauth2.",
  appPassword
)

/** Required with password auth; with OAuth2 it is not read, and an empty value stands in that nothing uses. */
export const mailboxPassword: Config.Config<Redacted.Redacted> = Config.all([mailboxAuth, Config.option(passwordSetting)]).pipe(
  Config.mapOrFail(([auth, password]) =>
    auth === "oauth2"
      ? Either.right(Redacted.make(""))
      : Option.match(password, {
        onNone: () => Either.left(ConfigError.MissingData(["GMAIL_SENDER_PASSWORD"], "Expected GMAIL_SENDER_PASSWORD to exist")),
        onSome: Either.right
      })
  )
)

export const ImapConfig = Config.all({
  user: mailboxUser,
  auth: mailboxAuth,
  password: mailboxPassword,
  host: setting("IMAP_HOST", "IMAP server host name.", Config.nonEmptyString, { value: "imap.gmail.com" }),
  port: setting("IMAP_PORT", "IMAP server port.", Config.port, { value: 993 }),
  tls: setting(
    "IMAP_TLS",
    "true: TLS from the first byte (port 993); starttls: a plain connection that must upgrade with STARTTLS (port 143); false: plain, never upgraded (a trusted network only).",
    tlsMode,
    { value: true as TlsMode }
  ),
  connectTimeout: setting("IMAP_CONNECT_TIMEOUT", "Seconds to wait for the IMAP server to accept the connection, and again for its greeting.", seconds, {
    value: Duration.seconds(30),
    shown: "30"
  }),
  commandTimeout: setting(
    "IMAP_COMMAND_TIMEOUT",
    "Seconds one IMAP command (a whole batch FETCH included) may take before the connection is dropped and made again.",
    seconds,
    { value: Duration.seconds(120), shown: "120" }
  )
})
export type ImapConfig = Config.Config.Success<typeof ImapConfig>

export type Backfill = "unseen" | "all" | "none"

const databaseUrl = setting(
  "DATABASE_URL",
  "PostgreSQL connection URL. Unset: an embedded PGlite database under MAILROOM_DATA_DIR.",
  (name) => Config.option(Config.redacted(name))
)

export const IntakeConfig = Config.all({
  mailbox: setting("IMAP_MAILBOX", "The mailbox (folder) to watch.", Config.nonEmptyString, { value: "INBOX" }),
  pollInterval: setting(
    "IMAP_POLL_INTERVAL",
    "Seconds between passes on a server without IDLE (the --interval flag wins, IDLE or not).",
    seconds,
    { value: Duration.seconds(60), shown: "60" }
  ),
  idlePollInterval: setting(
    "IMAP_IDLE_POLL_INTERVAL",
    "Seconds between passes on a server that announces new mail (IDLE): a safety net for an announcement lost, not the way mail arrives.",
    seconds,
    { value: Duration.minutes(10), shown: "600" }
  ),
  backfill: setting(
    "IMAP_BACKFILL",
    "On the first start (or a UIDVALIDITY change): take the unread mail (unseen), every mail (all) or none of the existing mail (none).",
    (name) => Config.literal("unseen", "all", "none")(name),
    { value: "unseen" as Backfill }
  ),
  maxMessageBytes: setting(
    "MAX_MESSAGE_BYTES",
    "Mail larger than this is quarantined (its headers, size and hash are kept).",
    positive,
    { value: 25 * 1024 * 1024, shown: "26214400 (25 MB)" }
  ),
  batchSize: setting("IMAP_BATCH_SIZE", "Mails fetched per UID FETCH and committed per transaction.", positive, {
    value: 250
  }),
  batchBytes: Config.all([
    setting(
      "IMAP_BATCH_BYTES",
      "Upper bound on the bytes of one batch. Smaller on the embedded PGlite, whose memory grows to its largest statement and stays there.",
      (name) => Config.option(positive(name)),
      { value: Option.none(), shown: "6291456 (6 MB; 2 MB without DATABASE_URL)" }
    ),
    databaseUrl
  ]).pipe(
    // 6 MB rather than 8 keeps a 10,000-mail backlog's peak near 230 MB instead of 245–260 MB, for a
    // few per cent of its pass time (docs/performance.md); small mail fills no batch that far.
    Config.map(([bytes, database]) => Option.getOrElse(bytes, () => Option.isSome(database) ? 6 * 1024 * 1024 : 2 * 1024 * 1024))
  )
})
export type IntakeConfig = Config.Config.Success<typeof IntakeConfig>

export const DatabaseConfig = Config.all({
  url: databaseUrl,
  poolSize: setting(
    "DATABASE_POOL_SIZE",
    "Connections this process may open to PostgreSQL at once (opened when needed, closed when idle): one holds the mailbox locks, and with many mailboxes the passes share the rest.",
    positive,
    { value: 10 }
  ),
  dataDir: setting("MAILROOM_DATA_DIR", "Folder of the embedded database (used without DATABASE_URL).", Config.nonEmptyString, {
    value: "./data"
  })
})
export type DatabaseConfig = Config.Config.Success<typeof DatabaseConfig>

export const retentionDays = setting(
  "RETENTION_DAYS",
  "Days to keep the raw bytes of mail (raw_messages); older ones are dropped every hour unless an event of those days refers to them. The event log, tickets and messages are kept. Unset: keep forever.",
  (name) => Config.option(positive(name))
)

export const gmailApiEnabled = setting(
  "GMAIL_API_ENABLED",
  "When true another worker (the Gmail API push) owns receiving, and mailroom refuses to start.",
  Config.boolean,
  { value: false }
)

export const logFormat = setting(
  "LOG_FORMAT",
  "text (one readable line per event) or json (one JSON object per line).",
  (name) => Config.literal("text", "json")(name),
  { value: "text" as "text" | "json" }
)

export const logLevel = setting(
  "LOG_LEVEL",
  "debug (a line per mail), info (a line per batch), warning or error.",
  (name) => Config.literal("debug", "info", "warning", "error")(name),
  { value: "info" as "debug" | "info" | "warning" | "error" }
)

export const eventLogPoll = setting(
  "EVENT_LOG_POLL",
  "Seconds between looks for events other instances committed, should their notification (PostgreSQL LISTEN/NOTIFY) be lost.",
  seconds,
  { value: Duration.seconds(30), shown: "30" }
)

export type MarkSeen = "after-commit" | "after-reply"

export const markSeenPolicy = setting(
  "MARK_SEEN",
  "after-commit: flag mail \\Seen as soon as it is recorded; after-reply: only once its reply is sent or skipped (with AGENT=off, never: the external agent does).",
  (name) => Config.literal("after-commit", "after-reply")(name),
  { value: "after-commit" as MarkSeen }
)

export const reconcileInterval = setting(
  "RECONCILE_INTERVAL",
  "Seconds between checks that every mail the cursor has passed has its event in the log; gaps found are taken in then.",
  seconds,
  { value: Duration.seconds(3600), shown: "3600" }
)

export const maxMailboxesPerProcess = setting(
  "MAX_MAILBOXES_PER_PROCESS",
  "The most mailboxes this process leads at once; the rest are left to other instances on the same database (unset: no bound). Set it so that the instances together cover every mailbox, with room for one to die.",
  (name) => Config.option(positive(name)),
  { value: Option.none(), shown: "" }
)

export type Provider = "google" | "microsoft" | "generic"

export const secretKey = setting(
  "MAILROOM_SECRET_KEY",
  "A long random secret, kept outside the database: it wraps the per-customer keys that `erase` destroys, keys customer ids, and encrypts stored OAuth2 refresh tokens (without it rotated tokens live in memory only). Never change it once set.",
  optionalSecret,
  { value: Option.none(), shown: "" }
)

export const OAuth2Config = Config.all({
  provider: setting(
    "OAUTH2_PROVIDER",
    "With MAILBOX_AUTH=oauth2: google, microsoft (Microsoft 365 / Outlook) or generic (set OAUTH2_TOKEN_URL).",
    (name) => Config.literal("google", "microsoft", "generic")(name),
    { value: "google" as Provider }
  ),
  clientId: setting("OAUTH2_CLIENT_ID", "The OAuth2 client (application) ID of your Google Cloud OAuth client or Entra app registration.", optional, {
    value: Option.none(),
    shown: ""
  }),
  clientSecret: setting(
    "OAUTH2_CLIENT_SECRET",
    "The OAuth2 client secret (Google desktop clients have one; a Microsoft public client has none).",
    optionalSecret,
    { value: Option.none(), shown: "" }
  ),
  tenant: setting("OAUTH2_TENANT", "Microsoft: the Entra tenant (directory) ID or domain; common accepts any work or personal account.", Config.nonEmptyString, {
    value: "common"
  }),
  tokenUrl: setting("OAUTH2_TOKEN_URL", "The token endpoint: required with OAUTH2_PROVIDER=generic, overrides Google's or Microsoft's otherwise.", optionalHttpUrl, {
    value: Option.none(),
    shown: ""
  }),
  authorizeUrl: setting("OAUTH2_AUTHORIZE_URL", "The authorization endpoint `mailroom auth` sends the browser to (generic provider, or to override).", optionalHttpUrl, {
    value: Option.none(),
    shown: ""
  }),
  deviceUrl: setting("OAUTH2_DEVICE_URL", "The device-code endpoint for `mailroom auth --device` (generic provider, or to override).", optionalHttpUrl, {
    value: Option.none(),
    shown: ""
  }),
  scope: setting(
    "OAUTH2_SCOPE",
    "Scopes to ask for; Google: https://mail.google.com/, Microsoft: IMAP.AccessAsUser.All, SMTP.Send and offline_access on outlook.office.com.",
    optional,
    { value: Option.none(), shown: "the provider's" }
  ),
  refreshToken: setting(
    "OAUTH2_REFRESH_TOKEN",
    "The first refresh token, as `mailroom auth` printed it; a token stored in the database (with MAILROOM_SECRET_KEY) wins once there is one.",
    optionalSecret,
    { value: Option.none(), shown: "" }
  ),
  secretKey
})
export type OAuth2Config = Config.Config.Success<typeof OAuth2Config>
