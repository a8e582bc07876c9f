import { Config, ConfigError, Duration, Either, Option, Redacted } from "effect"
import { setting } from "./Settings.js"

const seconds = (name: string) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a whole number of seconds above 0", validation: (n) => n > 0 }),
    Config.map(Duration.seconds)
  )

const positiveInteger = (name: string) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a whole number above 0", validation: (n) => n > 0 })
  )

/** Gmail shows app passwords in groups of four ("abcd efgh ijkl mnop"); the spaces are not part of it. */
const appPassword = (name: string) =>
  // Config.string, then Redacted: a validation on Config.redacted loses the variable's name.
  Config.string(name).pipe(
    Config.validate({ message: "Expected a non-empty password", validation: (value) => value.trim().length > 0 }),
    Config.map((value) => Redacted.make(value.replace(/\s+/g, "")))
  )

/** true: TLS from the first byte; "starttls": plain, then upgraded, or no connection at all; false: plain throughout. */
export type TlsMode = boolean | "starttls"

/** Also the spellings Config.boolean took (yes/no, on/off, 1/0), so that older .env files keep their meaning. */
export const tlsMode = (name: string): Config.Config<TlsMode> =>
  Config.string(name).pipe(
    Config.mapOrFail((text): Either.Either<TlsMode, ConfigError.ConfigError> => {
      const value = text.trim().toLowerCase()
      if (["true", "yes", "on", "1"].includes(value)) return Either.right(true)
      if (["false", "no", "off", "0"].includes(value)) return Either.right(false)
      if (value === "starttls") return Either.right("starttls" as const)
      return Either.left(ConfigError.InvalidData([], `Expected true, starttls or false but received ${JSON.stringify(text)}`))
    })
  )

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
    "Seconds between passes (the --interval flag wins).",
    seconds,
    { value: Duration.seconds(60), shown: "60" }
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
    positiveInteger,
    { value: 25 * 1024 * 1024, shown: "26214400 (25 MB)" }
  ),
  batchSize: setting("IMAP_BATCH_SIZE", "Mails fetched per UID FETCH and committed per transaction.", positiveInteger, {
    value: 250
  }),
  batchBytes: Config.all([
    setting(
      "IMAP_BATCH_BYTES",
      "Upper bound on the bytes of one batch. Smaller on the embedded PGlite, whose memory grows to its largest statement and stays there.",
      (name) => Config.option(positiveInteger(name)),
      { value: Option.none(), shown: "8388608 (8 MB; 2 MB without DATABASE_URL)" }
    ),
    databaseUrl
  ]).pipe(
    Config.map(([bytes, database]) => Option.getOrElse(bytes, () => Option.isSome(database) ? 8 * 1024 * 1024 : 2 * 1024 * 1024))
  )
})
export type IntakeConfig = Config.Config.Success<typeof IntakeConfig>

export const DatabaseConfig = Config.all({
  url: databaseUrl,
  dataDir: setting("MAILROOM_DATA_DIR", "Folder of the embedded database (used without DATABASE_URL).", Config.nonEmptyString, {
    value: "./data"
  })
})
export type DatabaseConfig = Config.Config.Success<typeof DatabaseConfig>

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
