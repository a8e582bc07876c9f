import { Config, Effect, Option, Redacted } from "effect"
import type { ConfigError } from "effect"
import type { Provider } from "./Config.js"
import type { AccountEntry, MailboxesFile } from "./MailboxesFile.js"
import { describePath, MailboxesFileInvalid, normalizeFolder, readMailboxesFile } from "./MailboxesFile.js"
import type { AgentKind, ReplyMode } from "./Replies.js"
import { optional, settingList } from "./Settings.js"
import type { TlsMode } from "./Settings.js"

export { MailboxesFileInvalid, normalizeFolder } from "./MailboxesFile.js"

/** Several mailboxes from one file, instead of the one of GMAIL_SENDER_EMAIL and IMAP_*. */
const { all, setting } = settingList()
export const settings = all

export const mailboxesFile = setting(
  "MAILBOXES_FILE",
  "A YAML or JSON file that lists the mailbox accounts and folders to watch, their servers and where their passwords are; unset: the one mailbox of GMAIL_SENDER_EMAIL and the IMAP_* settings.",
  optional,
  { value: Option.none(), shown: "" }
)

export interface Server {
  readonly host: string
  readonly port: number
  readonly tls: TlsMode
}

export type MailboxCredentials =
  | { readonly _tag: "password"; readonly password: Redacted.Redacted }
  | {
    readonly _tag: "oauth2"
    readonly provider: Provider
    readonly clientId: string
    readonly clientSecret: Option.Option<Redacted.Redacted>
    readonly tenant: string
    readonly tokenUrl: Option.Option<string>
    readonly refreshToken: Option.Option<Redacted.Redacted>
  }

/** One folder of one account: `key` names it in logs, metrics and the database. */
export interface WatchedMailbox {
  readonly account: string
  readonly folder: string
  readonly key: string
}

export interface MailboxAccount {
  readonly address: string
  /** The IMAP/SMTP login: `user` from the file, else the address. */
  readonly user: string
  readonly imap: Server
  readonly auth: MailboxCredentials
  readonly folders: ReadonlyArray<string>
  readonly mailboxes: ReadonlyArray<WatchedMailbox>
  /** None: the file says nothing, and the caller decides (e.g. the SMTP_* settings). */
  readonly smtp: Option.Option<Server>
  /** Each None falls back to its setting (AGENT, REPLY_MODE, KNOWLEDGE_DIR). */
  readonly replies: {
    readonly agent: Option.Option<AgentKind>
    readonly mode: Option.Option<ReplyMode>
    readonly knowledgeDir: Option.Option<string>
  }
}

/** `support@example.com/INBOX`: addresses compare without case; folder names (but INBOX) do not. */
export const mailboxKey = (account: string, folder: string): string => `${account.toLowerCase()}/${normalizeFolder(folder)}`

export const watchedMailboxes = (accounts: ReadonlyArray<MailboxAccount>): ReadonlyArray<WatchedMailbox> =>
  accounts.flatMap((account) => account.mailboxes)

/** The environment variables the file names, so that a caller can look them all up before resolving. */
const variablesOf = (file: MailboxesFile): ReadonlyArray<string> =>
  file.mailboxes.flatMap(({ auth }) =>
    [auth.password_env, auth.oauth2?.client_secret_env, auth.oauth2?.refresh_token_env].filter((name) => name !== undefined)
  )

const resolveAccount = (
  path: string,
  index: number,
  entry: AccountEntry,
  file: MailboxesFile,
  env: (name: string) => string | undefined
): Effect.Effect<MailboxAccount, MailboxesFileInvalid> =>
  Effect.gen(function*() {
    const secret = (field: string, name: string | undefined, strip: boolean) =>
      Effect.gen(function*() {
        if (name === undefined) return Option.none<Redacted.Redacted>()
        const where = describePath(file, ["mailboxes", index, "auth", ...field.split(".")])
        const value = env(name)
        if (value === undefined) {
          return yield* new MailboxesFileInvalid({ file: path, where, problem: `the variable ${name} is not set; set it in the environment or in .env` })
        }
        // Gmail shows app passwords in groups of four; the spaces are not part of it.
        const cleaned = strip ? value.replace(/\s+/g, "") : value.trim()
        if (cleaned.length === 0) return yield* new MailboxesFileInvalid({ file: path, where, problem: `the variable ${name} is empty` })
        return Option.some(Redacted.make(cleaned))
      })
    const { auth } = entry
    const credentials: MailboxCredentials = auth.oauth2 === undefined
      ? { _tag: "password", password: Option.getOrThrow(yield* secret("password_env", auth.password_env, true)) }
      : {
        _tag: "oauth2",
        provider: auth.oauth2.provider,
        clientId: auth.oauth2.client_id,
        clientSecret: yield* secret("oauth2.client_secret_env", auth.oauth2.client_secret_env, false),
        tenant: auth.oauth2.tenant ?? "common",
        tokenUrl: Option.fromNullable(auth.oauth2.token_url),
        refreshToken: yield* secret("oauth2.refresh_token_env", auth.oauth2.refresh_token_env, false)
      }
    const server = ({ host, port, tls }: Server): Server => ({ host, port, tls })
    return {
      address: entry.address,
      user: entry.user ?? entry.address,
      imap: server(entry.imap),
      auth: credentials,
      folders: entry.folders,
      mailboxes: entry.folders.map((folder) => ({ account: entry.address.toLowerCase(), folder, key: mailboxKey(entry.address, folder) })),
      smtp: Option.fromNullable(entry.smtp).pipe(Option.map(server)),
      replies: {
        agent: Option.fromNullable(entry.replies?.agent),
        mode: Option.fromNullable(entry.replies?.mode),
        knowledgeDir: Option.fromNullable(entry.replies?.knowledge_dir)
      }
    }
  })

const resolve = (path: string, file: MailboxesFile, env: (name: string) => string | undefined) =>
  Effect.forEach(file.mailboxes, (entry, index) => resolveAccount(path, index, entry, file, env))

/**
 * The accounts of a mailboxes file, their passwords and tokens read from `env`. Fails with one
 * MailboxesFileInvalid line for the first problem: the file, the entry, the field, what to do.
 */
export const loadMailboxes = (
  path: string,
  env: (name: string) => string | undefined
): Effect.Effect<ReadonlyArray<MailboxAccount>, MailboxesFileInvalid> =>
  readMailboxesFile(path).pipe(Effect.flatMap((file) => resolve(path, file, env)))

/**
 * MAILBOXES_FILE, loaded with its variables looked up through the current ConfigProvider (so .env
 * counts as it does for every other setting); None when the setting is not set.
 */
export const configuredMailboxes: Effect.Effect<
  Option.Option<ReadonlyArray<MailboxAccount>>,
  MailboxesFileInvalid | ConfigError.ConfigError
> = Effect.gen(function*() {
  const path = yield* mailboxesFile
  if (Option.isNone(path)) return Option.none()
  const file = yield* readMailboxesFile(path.value)
  const names = variablesOf(file)
  const values = yield* Config.all(names.map((name) => Config.option(Config.string(name))))
  const found = new Map(names.map((name, i) => [name, Option.getOrUndefined(values[i]!)]))
  return Option.some(yield* resolve(path.value, file, (name) => found.get(name)))
})
