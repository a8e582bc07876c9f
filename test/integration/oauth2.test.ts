import { OAuth2Config } from "../../src/config/Config.js"
import { SqlClient } from "@effect/sql"
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, layer } from "@effect/vitest"
import { Cause, Context, Effect, Layer, Option, Redacted } from "effect"
import { keep, loopbackFlow, deviceFlow } from "../../src/cli/Auth.js"
import { describeFailure } from "../../src/cli/Fatal.js"
import { DatabaseLive } from "../../src/Layers.js"
import { ImapLive } from "../../src/mailbox/Imap.js"
import { OAuth2, oauth2With, unseal } from "../../src/mailbox/OAuth2.js"
import { endpointsFor } from "../../src/mailbox/OAuth2Providers.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { Mailer, MailerLive } from "../../src/replies/Mailer.js"
import type { Dovecot } from "../support/dovecot.js"
import { DovecotServer } from "../support/dovecot.js"
import { mail } from "../support/mails.js"
import { freshDatabase } from "../support/postgres.js"
import { runCli } from "../support/cli.js"
import { SmtpSinkServer } from "../support/smtpSink.js"
import { sqlPipeline } from "../support/stack.js"
import type { TokenServer } from "../support/tokenServer.js"
import { OAuth2TokenServer } from "../support/tokenServer.js"
import { configLayer } from "../unit/layers.js"

const SECRET = "an integration test's secret key"

/** The token server, and a Dovecot whose oauth2 passdb asks it about every token, for the whole file. */
const OAuth2Servers = Layer.provideMerge(
  Layer.unwrapEffect(
    Effect.map(OAuth2TokenServer, (tokens) => DovecotServer.layer({ oauth2: { introspectionUrl: tokens.introspectUrl } }))
  ),
  OAuth2TokenServer.layer({ rotate: true })
)

const oauthEnv = (tokens: TokenServer, refreshToken: string) => ({
  MAILBOX_AUTH: "oauth2",
  OAUTH2_PROVIDER: "generic",
  OAUTH2_CLIENT_ID: tokens.clientId,
  OAUTH2_CLIENT_SECRET: tokens.clientSecret,
  OAUTH2_TOKEN_URL: tokens.tokenUrl,
  OAUTH2_REFRESH_TOKEN: refreshToken,
  MAILROOM_SECRET_KEY: SECRET
})

const mailboxEnv = (dovecot: Dovecot) => ({
  GMAIL_SENDER_EMAIL: dovecot.user,
  IMAP_HOST: dovecot.host,
  IMAP_PORT: String(dovecot.port),
  IMAP_TLS: "false",
  AGENT: "off"
})

/** An SMTP sink that offers XOAUTH2 and takes the token server's live tokens, noting each one it is shown. */
const xoauth2Sink = (accepted: Array<string>) =>
  Layer.unwrapEffect(
    Effect.map(OAuth2TokenServer, (tokens) =>
      SmtpSinkServer.layer({
        accessToken: (user, token) => {
          accepted.push(token)
          return user === "support@example.com" && tokens.isActive(token)
        }
      }))
  )

const storedToken = (account: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ refresh_token_enc: Uint8Array }>`SELECT refresh_token_enc FROM oauth_tokens WHERE account = ${account}`
    return rows[0] === undefined ? undefined : Redacted.value(yield* unseal(Redacted.make(SECRET), account, rows[0].refresh_token_enc))
  })

layer(OAuth2Servers, { excludeTestServices: true })((it) => {
  describe("OAuth2 against Dovecot's oauth2 passdb", () => {
    it.scoped("logs in with XOAUTH2, refreshes a token the server stopped accepting, keeps the rotated refresh token encrypted, and stops at a revoked grant", () =>
      Effect.gen(function*() {
        const tokens = yield* OAuth2TokenServer
        const dovecot = yield* DovecotServer
        const first = tokens.grant(dovecot.user)
        yield* Effect.promise(() => dovecot.append([mail({ subject: "oauth one" }), mail({ subject: "oauth two" })]))
        const program = Effect.gen(function*() {
          const poller = yield* Poller
          const pass1 = yield* poller.once
          expect(Option.getOrThrow(pass1).received).toBe(2)
          expect(tokens.requests.refresh).toBe(1)
          expect(tokens.introspected.filter((i) => i.active)).toHaveLength(1)

          // The token is still fresh by its expires_in, but the server no longer takes it: the login fails once,
          // mailroom refreshes and logs in again with the new token.
          tokens.expireAccessTokens()
          yield* Effect.promise(() => dovecot.append([mail({ subject: "oauth three" })]))
          const pass2 = yield* poller.once
          expect(Option.getOrThrow(pass2).received).toBe(1)
          expect(tokens.requests.refresh).toBe(2)
          expect(tokens.introspected.map((i) => i.active)).toEqual([true, false, true])
          // Rotation: the second refresh sent the token the first one returned, and the newest is stored encrypted.
          expect(tokens.refreshTokensUsed[0]).toBe(first)
          expect(tokens.refreshTokensUsed[1]).not.toBe(first)
          const newest = tokens.currentRefreshToken(dovecot.user)
          expect(yield* storedToken(dovecot.user)).toBe(newest)

          // Revoked: one clear line, and one token request however often the pass is retried.
          tokens.revoke(dovecot.user)
          tokens.expireAccessTokens()
          const before = tokens.requests.total
          const errors = []
          for (let i = 0; i < 4; i++) errors.push(yield* Effect.flip(poller.once))
          expect(errors.map((e) => e._tag)).toEqual(["OAuth2Refused", "OAuth2Refused", "OAuth2Refused", "OAuth2Refused"])
          const line = describeFailure(Cause.fail(errors[0]!))!.line
          expect(line).toMatch(/^the OAuth2 grant for support@example.com was revoked or has expired \(invalid_grant: .*\): run `mailroom auth generic --address support@example.com` again$/)
          expect(line).not.toContain(newest!)
          expect(tokens.requests.total - before).toBe(1)
        })
        yield* program.pipe(
          Effect.provide(sqlPipeline("postgres", "oauth2", ImapLive, { ...mailboxEnv(dovecot), ...oauthEnv(tokens, first) }))
        )
      }))

    it.scoped("a token granted to another account is refused by the server: the line says to sign in again as the mailbox, not to check a password", () =>
      Effect.gen(function*() {
        const tokens = yield* OAuth2TokenServer
        const dovecot = yield* DovecotServer
        // `mailroom auth` run while signed in to a colleague's account: a valid token, for someone else.
        const elsewhere = tokens.grant("colleague@example.com")
        const program = Effect.gen(function*() {
          const poller = yield* Poller
          const error = yield* Effect.flip(poller.once)
          expect(error._tag).toBe("AuthenticationFailed")
          const line = describeFailure(Cause.fail(error))!.line
          expect(line).toContain(`IMAP login failed for ${dovecot.user}`)
          expect(line).toContain(`the server refused the OAuth2 token: run \`mailroom auth\` again signed in as ${dovecot.user}`)
          expect(line).not.toContain("GMAIL_SENDER_PASSWORD")
        })
        yield* program.pipe(
          Effect.provide(sqlPipeline("postgres", "oauth2_elsewhere", ImapLive, { ...mailboxEnv(dovecot), ...oauthEnv(tokens, elsewhere) }))
        )
      }))
  })

  describe("two folders of one account", () => {
    it.scoped("refresh one after the other from the stored token, so a provider that rotates refresh tokens takes both", () =>
      Effect.gen(function*() {
        const tokens = yield* OAuth2TokenServer
        tokens.rotate = true
        const account = "two-folders@example.com"
        const first = tokens.grant(account)
        const db = yield* freshDatabase("oauth2folders")
        const env = { ...oauthEnv(tokens, first), GMAIL_SENDER_EMAIL: account, DATABASE_URL: db.url }
        const database = DatabaseLive.pipe(Layer.provide(configLayer(env)))
        // What the fleet builds for each folder: an OAuth2 service of its own over the shared database.
        const folder = Layer.fresh(oauth2With(NodeHttpClient.layer)).pipe(Layer.provide(Layer.merge(configLayer(env), database)))
        const [inbox, escalations] = yield* Effect.all([Layer.build(folder), Layer.build(folder)]).pipe(
          Effect.map((built) => built.map((context) => Context.get(context, OAuth2)))
        )
        const before = tokens.requests.refresh
        const [one, two] = yield* Effect.all([inbox!.accessToken, escalations!.accessToken], { concurrency: 2 })
        expect(tokens.isActive(Redacted.value(one.token))).toBe(true)
        expect(tokens.isActive(Redacted.value(two.token))).toBe(true)
        // The second refresh sent the token the first one returned, never the one it had just used.
        const used = tokens.refreshTokensUsed.slice(-2)
        expect(tokens.requests.refresh - before).toBe(2)
        expect(used[0]).toBe(first)
        expect(used[1]).not.toBe(first)
        // The folder that refreshed first refreshes again from the token the other rotated last, not its own.
        yield* inbox!.invalidate(one.token)
        const again = yield* inbox!.accessToken
        expect(tokens.isActive(Redacted.value(again.token))).toBe(true)
        expect(tokens.refreshTokensUsed.slice(-1)[0]).not.toBe(used[1])
        expect(yield* storedToken(account).pipe(Effect.provide(database))).toBe(tokens.currentRefreshToken(account))
      }))
  })

  const accepted: Array<string> = []
  it.layer(xoauth2Sink(accepted))("OAuth2 for SMTP", (it) => {
    it.effect("sends with AUTH XOAUTH2 and a token from the token endpoint", () =>
      Effect.gen(function*() {
        const tokens = yield* OAuth2TokenServer
        const sink = yield* SmtpSinkServer
        tokens.rotate = false
        const refresh = tokens.grant("support@example.com")
        const before = tokens.requests.refresh
        const env = {
          GMAIL_SENDER_EMAIL: "support@example.com",
          SMTP_HOST: sink.host,
          SMTP_PORT: String(sink.port),
          SMTP_TLS: "false",
          ...oauthEnv(tokens, refresh),
          MAILROOM_SECRET_KEY: ""
        }
        delete (env as Record<string, string>).MAILROOM_SECRET_KEY
        const delivery = yield* Effect.flatMap(Mailer, (mailer) =>
          mailer.send({
            messageId: "<oauth-smtp@example.com>",
            from: "support@example.com",
            to: { name: "Ada", address: "ada@customer.test" },
            subject: "Re: hello",
            text: "Hello",
            inReplyTo: null,
            references: []
          })).pipe(Effect.provide(MailerLive.pipe(Layer.provide(configLayer(env)))), Effect.scoped)
        expect(delivery.response).toMatch(/^250/)
        expect(sink.messages.map((m) => m.messageId)).toContain("<oauth-smtp@example.com>")
        expect(accepted).toHaveLength(1)
        expect(tokens.requests.refresh - before).toBe(1)
      }))
  })

  it.layer(xoauth2Sink(accepted))("mailroom check with OAuth2", (it) => {
    it.scoped("logs in to IMAP and SMTP with one token, sending nothing", () =>
      Effect.gen(function*() {
        const tokens = yield* OAuth2TokenServer
        const sink = yield* SmtpSinkServer
        const dovecot = yield* DovecotServer
        tokens.rotate = false
        yield* Effect.promise(async () => {
          for (const folder of ["Sent", "Drafts"]) await dovecot.createMailbox(folder).catch(() => undefined)
        })
        const db = yield* freshDatabase("oauth2_check")
        const before = { refresh: tokens.requests.refresh, accepted: accepted.length, sent: sink.messages.length }
        const run = yield* Effect.promise(() =>
          runCli(["check", "--json"], {
            ...mailboxEnv(dovecot),
            ...oauthEnv(tokens, tokens.grant("support@example.com")),
            AGENT: "knowledge",
            SMTP_HOST: sink.host,
            SMTP_PORT: String(sink.port),
            SMTP_TLS: "false",
            DATABASE_URL: db.url
          })
        )
        expect(run.code, run.stdout + run.stderr).toBe(0)
        const lines = (JSON.parse(run.stdout) as { lines: ReadonlyArray<{ check: string; outcome: string }> }).lines
        expect(lines.filter((l) => ["imap", "smtp"].includes(l.check)).map((l) => [l.check, l.outcome])).toEqual([["imap", "ok"], ["smtp", "ok"]])
        // One refresh: IMAP and SMTP of one mailbox share its token.
        expect(tokens.requests.refresh - before.refresh).toBe(1)
        expect(accepted.length - before.accepted).toBe(1)
        expect(sink.messages.length).toBe(before.sent)
      }))
  })

  describe("mailroom auth", () => {
    const endpoints = (tokens: TokenServer, extra: Record<string, string> = {}) =>
      Effect.flatMap(OAuth2Config, endpointsFor).pipe(
        Effect.provide(configLayer({
          OAUTH2_PROVIDER: "microsoft",
          OAUTH2_CLIENT_ID: tokens.clientId,
          OAUTH2_TOKEN_URL: tokens.tokenUrl,
          OAUTH2_AUTHORIZE_URL: tokens.authorizeUrl,
          OAUTH2_DEVICE_URL: tokens.deviceUrl,
          ...extra
        }))
      )

    it.effect("the loopback flow with PKCE yields a refresh token, stored encrypted with MAILROOM_SECRET_KEY", () =>
      Effect.gen(function*() {
        const tokens = yield* OAuth2TokenServer
        const shown: Array<string> = []
        yield* Effect.gen(function*() {
          const db = yield* freshDatabase("oauth2auth")
          const result = yield* loopbackFlow(yield* endpoints(tokens), "new@example.com", (url) =>
            Effect.promise(async () => {
              shown.push(url)
              // The browser: the provider approves and redirects to mailroom's loopback server.
              const page = await fetch(url)
              expect(await page.text()).toContain("signed in")
            }))
          const refresh = Option.getOrThrow(result.refreshToken)
          expect(Redacted.value(refresh)).toBe(tokens.currentRefreshToken("new@example.com"))
          const outcome = yield* keep("new@example.com", refresh, Option.some(Redacted.make(SECRET))).pipe(
            Effect.provide(configLayer({ DATABASE_URL: db.url }))
          )
          expect(outcome.stored).toBe(true)
          const stored = yield* storedToken("new@example.com").pipe(Effect.provide(DatabaseLive.pipe(Layer.provide(configLayer({ DATABASE_URL: db.url })))))
          expect(stored).toBe(Redacted.value(refresh))
        }).pipe(Effect.provide(NodeHttpClient.layer), Effect.scoped)
        const url = new URL(shown[0]!)
        expect(url.searchParams.get("code_challenge_method")).toBe("S256")
        expect(url.searchParams.get("redirect_uri")).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
        expect(url.searchParams.get("scope")).toContain("offline_access")
      }))

    it.effect("the device-code flow polls until the user has entered the code", () =>
      Effect.gen(function*() {
        const tokens = yield* OAuth2TokenServer
        const before = tokens.requests.device
        const shown: Array<string> = []
        const result = yield* Effect.gen(function*() {
          return yield* deviceFlow(yield* endpoints(tokens), "device-user@example.com", (text) => Effect.sync(() => void shown.push(text)))
        }).pipe(Effect.provide(NodeHttpClient.layer))
        expect(shown[0]).toContain("WDJB-MJHT")
        expect(tokens.requests.device - before).toBe(2)
        expect(Option.map(result.refreshToken, Redacted.value)).toEqual(Option.some(tokens.currentRefreshToken("device-user@example.com")))
      }))
  })
})
