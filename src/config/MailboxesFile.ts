import { readFile } from "node:fs/promises"
import { Data, Effect, Either, Option, ParseResult, Schema } from "effect"

/** The mailboxes file (MAILBOXES_FILE) cannot be used as it is; `message` is one line that says where and what to do. */
export class MailboxesFileInvalid extends Data.TaggedError("MailboxesFileInvalid")<{
  readonly file: string
  /** e.g. `mailboxes[1] (help@example.com) imap.port`; empty for the file as a whole. */
  readonly where: string
  readonly problem: string
}> {
  override get message() {
    return `MAILBOXES_FILE ${this.file}: ${this.where ? `${this.where}: ` : ""}${this.problem}`
  }
}

// The text of every leaf's message is ours: Schema's defaults quote the value, and a value may be a secret.
const says = (message: string) => ({ message: () => ({ message, override: true }) })

const text = (message: string) => Schema.String.pipe(Schema.filter((s) => s.trim().length > 0), Schema.annotations(says(message)))
const Host = text("expected a host name, e.g. imap.example.com")
const Port = Schema.Number.pipe(Schema.int(), Schema.between(1, 65535), Schema.annotations(says("expected a port number from 1 to 65535")))
const Tls = Schema.Union(Schema.Boolean, Schema.Literal("starttls")).annotations(says("expected true, starttls or false"))
const Address = Schema.String.pipe(Schema.pattern(/^[^\s@]+@[^\s@]+$/), Schema.annotations(says("expected an email address, e.g. support@example.com")))
const EnvName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/),
  Schema.annotations(says("expected the name of an environment variable (letters, digits, _) that holds the secret, not the secret itself"))
)

const secretKeys = ["password", "client_secret", "refresh_token"]

/** A key that would put a secret in a file that gets committed: refused whatever its value. */
const secret = (instead: string) =>
  Schema.optional(Schema.Unknown.pipe(
    Schema.filter(() => false),
    Schema.annotations(says(`secrets must not be written in this file; put it in an environment variable and give that variable's name as ${instead}`))
  ))

/** INBOX is the one folder name IMAP compares without case, so `inbox` and `Inbox` are the same mailbox. */
export const normalizeFolder = (folder: string): string => folder.toUpperCase() === "INBOX" ? "INBOX" : folder

const Folder = Schema.transform(text("expected a folder name, e.g. INBOX"), Schema.String, {
  strict: true,
  decode: normalizeFolder,
  encode: (s) => s
})

const firstRepeat = <A>(items: ReadonlyArray<A>, same: (a: A) => string) => {
  const seen = new Map<string, number>()
  for (const [index, item] of items.entries()) {
    const earlier = seen.get(same(item))
    if (earlier !== undefined) return { index, earlier }
    seen.set(same(item), index)
  }
  return undefined
}

const IMAP_DEFAULTS = { host: "imap.gmail.com", port: 993, tls: true } as const
const SMTP_DEFAULTS = { host: "smtp.gmail.com", port: 465, tls: true } as const

const server = (defaults: typeof IMAP_DEFAULTS | typeof SMTP_DEFAULTS) =>
  Schema.Struct({
    host: Schema.optionalWith(Host, { default: () => defaults.host }),
    port: Schema.optionalWith(Port, { default: () => defaults.port }),
    tls: Schema.optionalWith(Tls, { default: () => defaults.tls }),
    password: secret("auth.password_env")
  })
const Imap = server(IMAP_DEFAULTS)
const Smtp = server(SMTP_DEFAULTS)

const OAuth2Fields = Schema.Struct({
  provider: Schema.Literal("google", "microsoft", "generic").annotations(says("expected google, microsoft or generic")),
  client_id: text("expected the OAuth2 client (application) ID"),
  client_secret_env: Schema.optional(EnvName),
  client_secret: secret("client_secret_env"),
  tenant: Schema.optional(text("expected the Entra tenant ID or domain, e.g. common")),
  token_url: Schema.optional(Schema.String.pipe(Schema.pattern(/^https?:\/\/\S+$/), Schema.annotations(says("expected an http(s) URL")))),
  refresh_token_env: Schema.optional(EnvName),
  refresh_token: secret("refresh_token_env")
})
const OAuth2 = OAuth2Fields.pipe(Schema.filter((o) =>
  o.provider !== "generic" || o.token_url !== undefined ||
  { path: ["token_url"], message: "required with provider generic: the token endpoint of your mail provider" }
))

const AuthFields = Schema.Struct({
  password_env: Schema.optional(EnvName),
  oauth2: Schema.optional(OAuth2),
  password: secret("password_env")
})
const Auth = AuthFields.pipe(Schema.filter((a) =>
  (a.password_env === undefined) !== (a.oauth2 === undefined) ||
  "expected exactly one of password_env: VARIABLE or oauth2: { provider, client_id, ... }"
))

const Replies = Schema.Struct({
  agent: Schema.optional(Schema.Literal("off", "knowledge", "openai").annotations(says("expected off, knowledge or openai"))),
  mode: Schema.optional(Schema.Literal("send", "draft").annotations(says("expected send or draft"))),
  knowledge_dir: Schema.optional(text("expected the path of a folder of Markdown files"))
})

const Folders = Schema.Array(Folder).pipe(
  Schema.filter((folders) => folders.length > 0 || "list at least one folder, e.g. [INBOX]"),
  Schema.filter((folders) => {
    const repeat = firstRepeat(folders, (f) => f)
    return repeat === undefined || { path: [repeat.index], message: `${folders[repeat.index]} is listed twice (also folders[${repeat.earlier}]); list each folder once` }
  })
)

const Account = Schema.Struct({
  address: Address,
  user: Schema.optional(text("expected the IMAP login, when it is not the address")),
  password: secret("auth.password_env"),
  imap: Schema.optionalWith(Imap, { default: () => IMAP_DEFAULTS }),
  auth: Auth,
  folders: Schema.optionalWith(Folders, { default: () => ["INBOX"] }),
  smtp: Schema.optional(Smtp),
  replies: Schema.optional(Replies)
})

export const MailboxesFile = Schema.Struct({
  mailboxes: Schema.Array(Account).pipe(
    Schema.filter((accounts) => accounts.length > 0 || "list at least one mailbox account"),
    Schema.filter((accounts) => {
      const repeat = firstRepeat(accounts, (a) => a.address.toLowerCase())
      return repeat === undefined ||
        { path: [repeat.index, "address"], message: `the account is listed twice (also mailboxes[${repeat.earlier}]); list it once, with all its folders` }
    })
  )
})
export type MailboxesFile = typeof MailboxesFile.Type
export type AccountEntry = typeof Account.Type

/** What each mapping and list of the file is, by where it sits: the keys a typo is told, the shape a wrong value is. */
const composites: Record<string, { readonly fields?: Record<string, unknown>; readonly shape: string }> = {
  file: { fields: MailboxesFile.fields, shape: "expected a mapping with a mailboxes list, e.g. mailboxes: [ { address: ..., auth: ... } ]" },
  mailboxes: { shape: "expected a list of accounts, e.g. - address: support@example.com" },
  account: { fields: Account.fields, shape: "expected a mapping with address, auth and optionally user, imap, folders, smtp, replies" },
  imap: { fields: Imap.fields, shape: "expected a mapping with host, port and tls" },
  smtp: { fields: Smtp.fields, shape: "expected a mapping with host, port and tls" },
  auth: { fields: AuthFields.fields, shape: "expected { password_env: VARIABLE } or { oauth2: { provider, client_id, ... } }" },
  oauth2: { fields: OAuth2Fields.fields, shape: "expected a mapping with provider, client_id and optionally client_secret_env, tenant, token_url, refresh_token_env" },
  folders: { shape: "expected a list of folder names, e.g. [INBOX, Archive]" },
  replies: { fields: Replies.fields, shape: "expected a mapping with agent, mode and knowledge_dir" }
}

const compositeAt = (path: ReadonlyArray<PropertyKey>) => {
  const key = path.at(-1)
  return composites[key === undefined ? "file" : typeof key === "number" ? (path.at(-2) === "mailboxes" ? "account" : "") : String(key)]
}

const isMapping = (value: unknown) => typeof value === "object" && value !== null && !Array.isArray(value)
const valueAt = (raw: unknown, path: ReadonlyArray<PropertyKey>): unknown =>
  path.reduce<unknown>((value, key) => isMapping(value) || Array.isArray(value) ? (value as Record<PropertyKey, unknown>)[key] : undefined, raw)

const missingHints: Record<string, string> = {
  mailboxes: "the file must hold mailboxes: [ ... ]",
  address: "every account needs one, e.g. address: support@example.com",
  auth: "add auth: { password_env: VARIABLE } or auth: { oauth2: { ... } }",
  provider: "google, microsoft or generic",
  client_id: "the OAuth2 client (application) ID"
}

const problemOf = (raw: unknown, issue: ParseResult.ArrayFormatterIssue): string => {
  if (issue._tag === "Missing") return `missing; ${missingHints[String(issue.path.at(-1))] ?? "add it"}`
  if (issue._tag === "Unexpected") {
    const keys = Object.keys(compositeAt(issue.path.slice(0, -1))?.fields ?? {})
    return `unknown key; check its spelling (the keys here are ${keys.filter((k) => !secretKeys.includes(k)).join(", ")})`
  }
  // Schema's own words for a mapping or list of the wrong kind would quote the value.
  const composite = compositeAt(issue.path)
  const value = valueAt(raw, issue.path)
  const wrongKind = composite?.shape.includes("list of") ? !Array.isArray(value) : !isMapping(value)
  return composite !== undefined && wrongKind ? composite.shape : issue.message
}

/** `mailboxes[1] (help@example.com) imap.port`: the entry by position, and by address when it has a usable one. */
export const describePath = (raw: unknown, path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>((where, key, i) => {
    if (typeof key === "number") {
      const entry = i === 1 && path[0] === "mailboxes" ? (raw as { mailboxes: Array<{ address?: unknown }> }).mailboxes[key] : undefined
      const address = typeof entry === "object" && entry !== null ? entry.address : undefined
      return `${where}[${key}]${typeof address === "string" && Schema.is(Address)(address) ? ` (${address})` : ""}`
    }
    return where === "" ? String(key) : `${where}${typeof path[i - 1] === "number" && i === 2 ? " " : "."}${String(key)}`
  }, "")

/** Decodes the parsed file, or names its first problem. */
export const decodeFile = (file: string, raw: unknown): Either.Either<MailboxesFile, MailboxesFileInvalid> =>
  Schema.decodeUnknownEither(MailboxesFile, { onExcessProperty: "error", errors: "first" })(raw).pipe(
    Either.mapLeft((error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]!
      return new MailboxesFileInvalid({ file, where: describePath(raw, issue.path), problem: problemOf(raw, issue) })
    })
  )

const invalid = (file: string, problem: string) => new MailboxesFileInvalid({ file, where: "", problem })

/** The YAML parser, loaded only when there is a file to read: most runs have none, and it is 190 modules. */
type Yaml = typeof import("yaml")

const parseYamlText = (yaml: Yaml, text: string): Either.Either<unknown, { readonly line: number; readonly reason: string }> => {
  const lineCounter = new yaml.LineCounter()
  const document = yaml.parseDocument(text, { lineCounter, prettyErrors: false })
  const error = document.errors[0]
  return error === undefined
    ? Either.right(document.toJS({ maxAliasCount: 100 }))
    : Either.left({ line: lineCounter.linePos(error.pos[0]).line, reason: error.message })
}

const parseYaml = (yaml: Yaml, file: string, text: string) =>
  parseYamlText(yaml, text).pipe(Either.mapLeft(({ line, reason }) => invalid(file, `line ${line}: not valid YAML (${reason})`)))

const parseJson = (yaml: Yaml, file: string, text: string) =>
  Either.try({
    try: () => JSON.parse(text) as unknown,
    catch: (error) => {
      // V8 quotes the text around the fault (which may hold anything) and gives a position only sometimes:
      // else the YAML parser, which reads JSON too, often stumbles on the same line.
      const message = String((error as Error).message)
      const reason = message.replace(/(Unexpected token '.*?'), .*$/s, "$1").replace(/ at position \d+.*$/s, "").replace(/ in JSON$/, "")
      const at = /JSON at position (\d+)/.exec(message)
      const line = at ? text.slice(0, Number(at[1])).split("\n").length : Either.getLeft(parseYamlText(yaml, text)).pipe(Option.map((e) => e.line), Option.getOrUndefined)
      return invalid(file, `${line === undefined ? "" : `line ${line}: `}not valid JSON (${reason})`)
    }
  })

/** Reads and parses the file: JSON by a .json name, YAML otherwise (which reads JSON as well). */
export const readMailboxesFile = (file: string): Effect.Effect<MailboxesFile, MailboxesFileInvalid> =>
  Effect.zip(Effect.tryPromise({
    try: () => readFile(file, "utf8"),
    catch: (error) => {
      const code = (error as NodeJS.ErrnoException).code
      return invalid(
        file,
        code === "ENOENT" ? "no such file; set MAILBOXES_FILE to the path of the mailboxes file" : `cannot be read (${code ?? String(error)}); check the path and its permissions`
      )
    }
  }), Effect.promise(() => import("yaml"))).pipe(
    Effect.flatMap(([text, yaml]) => file.toLowerCase().endsWith(".json") ? parseJson(yaml, file, text) : parseYaml(yaml, file, text)),
    Effect.flatMap((raw) => decodeFile(file, raw))
  )
