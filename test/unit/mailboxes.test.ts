import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option, Redacted } from "effect"
import type { MailboxAccount } from "../../src/config/Mailboxes.js"
import { configuredMailboxes, loadMailboxes, mailboxKey, settings, watchedMailboxes } from "../../src/config/Mailboxes.js"
import { ReplyConfig } from "../../src/config/Replies.js"
import { settingsOf } from "../../src/mailbox/Fleet.js"

const temp = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-mailboxes-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const env: Record<string, string> = {
  SUPPORT_PASSWORD: " abcd efgh ijkl mnop ",
  HELP_CLIENT_SECRET: "client-secret",
  HELP_REFRESH_TOKEN: "refresh-token"
}

/** Writes `text` as `name` in a fresh folder and loads it with `vars`. */
const load = (name: string, text: string, vars: Record<string, string> = env) =>
  Effect.gen(function*() {
    const path = join(yield* temp, name)
    yield* Effect.promise(() => writeFile(path, text))
    return { path, result: yield* Effect.either(loadMailboxes(path, (variable) => vars[variable])) }
  })

/** The one line a broken file gives, with its path written as FILE. */
const failure = (text: string, vars?: Record<string, string>, name = "mailboxes.yaml") =>
  load(name, text, vars).pipe(Effect.map(({ path, result }) => {
    if (result._tag === "Right") throw new Error("expected the file to be refused")
    expect(result.left._tag).toBe("MailboxesFileInvalid")
    return result.left.message.replace(path, "FILE")
  }))

const support = `  - address: Support@Example.com
    auth: { password_env: SUPPORT_PASSWORD }
    folders: [inbox, "[Gmail]/Sent Mail"]
`

const twoAccounts = `mailboxes:
${support}  - address: help@example.com
    user: help-login
    imap: { host: imap.example.com, port: 143, tls: starttls }
    auth:
      oauth2:
        provider: microsoft
        client_id: abc-123
        client_secret_env: HELP_CLIENT_SECRET
        tenant: example.onmicrosoft.com
        refresh_token_env: HELP_REFRESH_TOKEN
    folders: [INBOX, Archive]
    smtp: { host: smtp.example.com, port: 587, tls: starttls }
    replies: { agent: off, mode: draft, knowledge_dir: ./kb/help }
`

/** The same data with the secrets shown, so YAML and JSON loads can be compared whole. */
const plain = (accounts: ReadonlyArray<MailboxAccount>) =>
  accounts.map((account) => ({
    ...account,
    auth: account.auth._tag === "password"
      ? { ...account.auth, password: Redacted.value(account.auth.password) }
      : {
        ...account.auth,
        clientSecret: Option.map(account.auth.clientSecret, Redacted.value),
        refreshToken: Option.map(account.auth.refreshToken, Redacted.value)
      }
  }))

const asJson = {
  mailboxes: [
    { address: "Support@Example.com", auth: { password_env: "SUPPORT_PASSWORD" }, folders: ["inbox", "[Gmail]/Sent Mail"] },
    {
      address: "help@example.com",
      user: "help-login",
      imap: { host: "imap.example.com", port: 143, tls: "starttls" },
      auth: {
        oauth2: {
          provider: "microsoft",
          client_id: "abc-123",
          client_secret_env: "HELP_CLIENT_SECRET",
          tenant: "example.onmicrosoft.com",
          refresh_token_env: "HELP_REFRESH_TOKEN"
        }
      },
      folders: ["INBOX", "Archive"],
      smtp: { host: "smtp.example.com", port: 587, tls: "starttls" },
      replies: { agent: "off", mode: "draft", knowledge_dir: "./kb/help" }
    }
  ]
}

describe("mailboxes file", () => {
  it("keys a mailbox by the lowercased account and the folder as written, INBOX in any case as INBOX", () => {
    expect(mailboxKey("Support@Example.com", "inbox")).toBe("support@example.com/INBOX")
    expect(mailboxKey("support@example.com", "Archive/2024")).toBe("support@example.com/Archive/2024")
    expect(mailboxKey("support@example.com", "archive")).not.toBe(mailboxKey("support@example.com", "Archive"))
  })

  it("declares MAILBOXES_FILE as a setting with help and no default", () => {
    const setting = settings.find((s) => s.name === "MAILBOXES_FILE")
    expect(setting?.help).toMatch(/YAML or JSON file/)
    expect(setting?.default).toBeUndefined()
  })

  it.scoped("reads two accounts of two folders each from YAML, with the defaults filled in", () =>
    Effect.gen(function*() {
      const { result } = yield* load("mailboxes.yaml", twoAccounts)
      if (result._tag === "Left") throw new Error(result.left.message)
      const [first, second] = result.right
      expect(watchedMailboxes(result.right)).toEqual([
        { account: "support@example.com", folder: "INBOX", key: "support@example.com/INBOX" },
        { account: "support@example.com", folder: "[Gmail]/Sent Mail", key: "support@example.com/[Gmail]/Sent Mail" },
        { account: "help@example.com", folder: "INBOX", key: "help@example.com/INBOX" },
        { account: "help@example.com", folder: "Archive", key: "help@example.com/Archive" }
      ])
      expect(first).toMatchObject({
        address: "Support@Example.com",
        user: "Support@Example.com",
        imap: { host: "imap.gmail.com", port: 993, tls: true },
        folders: ["INBOX", "[Gmail]/Sent Mail"]
      })
      expect(first!.smtp).toEqual(Option.none())
      expect(first!.replies).toEqual({ agent: Option.none(), mode: Option.none(), knowledgeDir: Option.none() })
      expect(second).toMatchObject({ user: "help-login", imap: { host: "imap.example.com", port: 143, tls: "starttls" } })
      expect(second!.smtp).toEqual(Option.some({ host: "smtp.example.com", port: 587, tls: "starttls" }))
      expect(second!.replies).toEqual({ agent: Option.some("off"), mode: Option.some("draft"), knowledgeDir: Option.some("./kb/help") })
      expect(plain(result.right)[1]!.auth).toEqual({
        _tag: "oauth2",
        provider: "microsoft",
        clientId: "abc-123",
        clientSecret: Option.some("client-secret"),
        tenant: "example.onmicrosoft.com",
        tokenUrl: Option.none(),
        refreshToken: Option.some("refresh-token")
      })
    }))

  it.scoped("gives each folder its account's settings: logged in as `user`, answering from `address`", () =>
    Effect.gen(function*() {
      const { result } = yield* load("mailboxes.yaml", twoAccounts)
      if (result._tag === "Left") throw new Error(result.left.message)
      const help = settingsOf(result.right[1]!, "Archive")
      expect([help.get("GMAIL_SENDER_EMAIL"), help.get("REPLY_FROM"), help.get("IMAP_MAILBOX")]).toEqual(["help-login", "help@example.com", "Archive"])
      const reply = yield* Effect.withConfigProvider(ReplyConfig, ConfigProvider.fromMap(help))
      expect(reply.from).toEqual(Option.some("help@example.com"))
    }))

  it.scoped("keeps the password Redacted, with the spaces Gmail shows stripped", () =>
    Effect.gen(function*() {
      const { result } = yield* load("mailboxes.yml", `mailboxes:\n${support}`)
      if (result._tag === "Left") throw new Error(result.left.message)
      const auth = result.right[0]!.auth
      if (auth._tag !== "password") throw new Error("expected password auth")
      expect(Redacted.value(auth.password)).toBe("abcdefghijklmnop")
      expect(String(auth.password)).not.toContain("abcd")
      expect(JSON.stringify(result.right)).not.toContain("abcd")
    }))

  it.scoped("reads the same accounts from JSON", () =>
    Effect.gen(function*() {
      const yaml = yield* load("mailboxes.yaml", twoAccounts)
      const json = yield* load("mailboxes.json", JSON.stringify(asJson, null, 2))
      if (yaml.result._tag === "Left" || json.result._tag === "Left") throw new Error("expected both files to load")
      expect(json.result.right).toHaveLength(2)
      expect(plain(json.result.right)).toEqual(plain(yaml.result.right))
    }))

  it.scoped("reads the file MAILBOXES_FILE names, its variables through the ConfigProvider (.env included)", () =>
    Effect.gen(function*() {
      const { path } = yield* load("mailboxes.yaml", `mailboxes:\n${support}`)
      const withEnv = (vars: Record<string, string>) =>
        Effect.withConfigProvider(configuredMailboxes, ConfigProvider.fromMap(new Map(Object.entries(vars))))
      expect(yield* withEnv({})).toEqual(Option.none())
      const accounts = yield* withEnv({ MAILBOXES_FILE: path, SUPPORT_PASSWORD: "secret" })
      const auth = Option.getOrThrow(accounts)[0]!.auth
      expect(auth._tag === "password" && Redacted.value(auth.password)).toBe("secret")
    }))

  describe("refuses a broken file with one line naming the file, the entry and the field", () => {
    const account = (lines: string) => `mailboxes:\n  - address: a@example.com\n${lines}`
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      [
        "a missing address",
        "mailboxes:\n  - auth: { password_env: SUPPORT_PASSWORD }\n",
        "MAILBOXES_FILE FILE: mailboxes[0] address: missing; every account needs one, e.g. address: support@example.com"
      ],
      [
        "a port out of range",
        `mailboxes:\n${support}  - address: help@example.com\n    imap: { port: 99999 }\n    auth: { password_env: SUPPORT_PASSWORD }\n`,
        "MAILBOXES_FILE FILE: mailboxes[1] (help@example.com) imap.port: expected a port number from 1 to 65535"
      ],
      [
        "a password written in the file",
        account("    auth: { password: hunter2 }\n"),
        "MAILBOXES_FILE FILE: mailboxes[0] (a@example.com) auth.password: secrets must not be written in this file; " +
        "put it in an environment variable and give that variable's name as password_env"
      ],
      [
        "a variable that is not set",
        account("    auth: { password_env: HELP_PASSWORD }\n"),
        "MAILBOXES_FILE FILE: mailboxes[0] (a@example.com) auth.password_env: the variable HELP_PASSWORD is not set; set it in the environment or in .env"
      ],
      [
        "an unknown key",
        account("    auth: { password_env: SUPPORT_PASSWORD }\n    imap: { hots: imap.example.com }\n"),
        "MAILBOXES_FILE FILE: mailboxes[0] (a@example.com) imap.hots: unknown key; check its spelling (the keys here are host, port, tls)"
      ],
      [
        "an account listed twice",
        `mailboxes:\n${support}  - address: support@example.com\n    auth: { password_env: SUPPORT_PASSWORD }\n`,
        "MAILBOXES_FILE FILE: mailboxes[1] (support@example.com) address: the account is listed twice (also mailboxes[0]); list it once, with all its folders"
      ],
      [
        "a folder listed twice",
        account("    auth: { password_env: SUPPORT_PASSWORD }\n    folders: [INBOX, Archive, inbox]\n"),
        "MAILBOXES_FILE FILE: mailboxes[0] (a@example.com) folders[2]: INBOX is listed twice (also folders[0]); list each folder once"
      ],
      [
        "generic OAuth2 without a token URL",
        account("    auth: { oauth2: { provider: generic, client_id: abc } }\n"),
        "MAILBOXES_FILE FILE: mailboxes[0] (a@example.com) auth.oauth2.token_url: required with provider generic: the token endpoint of your mail provider"
      ],
      [
        "both password_env and oauth2",
        account("    auth: { password_env: SUPPORT_PASSWORD, oauth2: { provider: google, client_id: abc } }\n"),
        "MAILBOXES_FILE FILE: mailboxes[0] (a@example.com) auth: expected exactly one of password_env: VARIABLE or oauth2: { provider, client_id, ... }"
      ],
      [
        "an account that is not a mapping",
        "mailboxes:\n  - a@example.com\n",
        "MAILBOXES_FILE FILE: mailboxes[0]: expected a mapping with address, auth and optionally user, imap, folders, smtp, replies"
      ],
      [
        "YAML that does not parse",
        account("    auth: password_env: SUPPORT_PASSWORD\n    folders: [INBOX]\n"),
        "MAILBOXES_FILE FILE: line 3: not valid YAML (Nested mappings are not allowed in compact mappings)"
      ]
    ]
    for (const [what, text, line] of cases) {
      it.scoped(what, () => Effect.gen(function*() {
        expect(yield* failure(text)).toBe(line)
      }))
    }

    it.scoped("never quotes a password written in the file", () =>
      Effect.gen(function*() {
        expect(yield* failure(account("    password: hunter2\n    auth: { password_env: SUPPORT_PASSWORD }\n"))).not.toContain("hunter2")
      }))

    it.scoped("JSON that does not parse, and a file that does not exist", () =>
      Effect.gen(function*() {
        expect(yield* failure(`{"mailboxes": [\n  {"address": "a@example.com"\n   "auth": {}}]}`, env, "mailboxes.json"))
          .toBe("MAILBOXES_FILE FILE: line 3: not valid JSON (Expected ',' or '}' after property value)")
        const missing = yield* Effect.flip(loadMailboxes(join(tmpdir(), "no-such-mailroom-mailboxes.yaml"), () => undefined))
        expect(missing.message).toMatch(/^MAILBOXES_FILE \S+no-such-mailroom-mailboxes\.yaml: no such file; set MAILBOXES_FILE to the path/)
      }))
  })
})
