import { createHash, randomBytes } from "node:crypto"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Args, Command, Options } from "@effect/cli"
import { HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { SqlClient } from "@effect/sql"
import { Console, Data, Deferred, Duration, Effect, Option, Redacted, Schema } from "effect"
import { OAuth2Config } from "../config/Config.js"
import type { Provider } from "../config/Config.js"
import { CommandDatabaseLive } from "../Layers.js"
import type { OAuth2Refused } from "../mailbox/ImapErrors.js"
import { accountOf, tokenStore } from "../mailbox/OAuth2.js"
import { endpointsFor, tokenRequest } from "../mailbox/OAuth2Providers.js"
import type { Endpoints, Tokens, TokenUnavailable } from "../mailbox/OAuth2Providers.js"

/** The browser or device sign-in did not complete. */
export class AuthFailed extends Data.TaggedError("AuthFailed")<{ readonly reason: string }> {
  override get message() {
    return `sign-in failed: ${this.reason}`
  }
}

const b64url = (bytes: Buffer) => bytes.toString("base64url")

const page = (text: string) => `<!doctype html><meta charset="utf-8"><title>mailroom</title><p>${text}</p>`

const WAIT = Duration.minutes(10)

/**
 * The authorization-code flow with PKCE and a loopback redirect (RFC 8252): a one-shot HTTP server on
 * 127.0.0.1 and a free port receives the code, which is exchanged at the token endpoint.
 */
export const loopbackFlow = (endpoints: Endpoints, address: string, show: (url: string) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    const authorizeUrl = yield* Option.match(endpoints.authorizeUrl, {
      onNone: () => Effect.fail(new AuthFailed({ reason: "no authorization endpoint: set OAUTH2_AUTHORIZE_URL or pass --authorize-url" })),
      onSome: Effect.succeed
    })
    const verifier = b64url(randomBytes(32))
    const state = b64url(randomBytes(16))
    const answer = yield* Deferred.make<string, AuthFailed>()
    const server = yield* Effect.acquireRelease(
      Effect.async<ReturnType<typeof createServer>>((resume) => {
        const server = createServer((request, response) => {
          const url = new URL(request.url ?? "/", "http://127.0.0.1")
          if (url.pathname !== "/" || (!url.searchParams.has("code") && !url.searchParams.has("error"))) {
            response.writeHead(404).end()
            return
          }
          const fail = (reason: string) => {
            response.writeHead(400, { "content-type": "text/html" }).end(page(`Sign-in failed: ${reason}. Return to the terminal.`))
            Deferred.unsafeDone(answer, Effect.fail(new AuthFailed({ reason })))
          }
          if (url.searchParams.get("state") !== state) return fail("the answer's state does not match this sign-in")
          const error = url.searchParams.get("error")
          if (error) return fail(`the provider answered ${error}${url.searchParams.get("error_description") ? ` (${url.searchParams.get("error_description")})` : ""}`)
          response.writeHead(200, { "content-type": "text/html" }).end(page("mailroom is signed in. You can close this tab."))
          Deferred.unsafeDone(answer, Effect.succeed(url.searchParams.get("code")!))
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
    )
    const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
    const url = new URL(authorizeUrl)
    url.searchParams.set("response_type", "code")
    url.searchParams.set("client_id", endpoints.clientId)
    url.searchParams.set("redirect_uri", redirectUri)
    url.searchParams.set("scope", endpoints.scope)
    url.searchParams.set("state", state)
    url.searchParams.set("code_challenge", b64url(createHash("sha256").update(verifier).digest()))
    url.searchParams.set("code_challenge_method", "S256")
    url.searchParams.set("login_hint", address)
    if (endpoints.provider === "google") {
      // Without both, Google issues a refresh token only on the very first consent.
      url.searchParams.set("access_type", "offline")
      url.searchParams.set("prompt", "consent")
    }
    yield* show(url.toString())
    const code = yield* Deferred.await(answer).pipe(
      Effect.timeoutFail({ duration: WAIT, onTimeout: () => new AuthFailed({ reason: `no answer from the browser within ${Duration.format(WAIT)}; run it again` }) })
    )
    return yield* tokenRequest(http, endpoints, { account: accountOf(address), provider: endpoints.provider }, {
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier
    })
  }).pipe(Effect.scoped)

const DeviceCode = Schema.Struct({
  device_code: Schema.String,
  user_code: Schema.String,
  verification_uri: Schema.optional(Schema.String),
  verification_url: Schema.optional(Schema.String),
  expires_in: Schema.Number,
  interval: Schema.optional(Schema.Number),
  message: Schema.optional(Schema.String)
})

/** The device-code flow (RFC 8628): for a machine without a browser, as Microsoft offers it. */
export const deviceFlow = (endpoints: Endpoints, address: string, show: (text: string) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const http = yield* HttpClient.HttpClient
    const deviceUrl = yield* Option.match(endpoints.deviceUrl, {
      onNone: () => Effect.fail(new AuthFailed({ reason: "no device-code endpoint for this provider: set OAUTH2_DEVICE_URL, pass --device-url, or leave out --device" })),
      onSome: Effect.succeed
    })
    const device = yield* http.pipe(HttpClient.filterStatusOk).execute(
      HttpClientRequest.post(deviceUrl).pipe(HttpClientRequest.acceptJson, HttpClientRequest.bodyUrlParams({ client_id: endpoints.clientId, scope: endpoints.scope }))
    ).pipe(
      Effect.flatMap(HttpClientResponse.schemaBodyJson(DeviceCode)),
      Effect.scoped,
      Effect.mapError((error) => new AuthFailed({ reason: `the device-code endpoint ${deviceUrl} failed (${error.message})` }))
    )
    yield* show(device.message ?? `Open ${device.verification_uri ?? device.verification_url ?? "the provider's device page"} and enter the code ${device.user_code}`)
    let interval = Duration.seconds(device.interval ?? 5)
    const grant = { account: accountOf(address), provider: endpoints.provider }
    const poll: Effect.Effect<Tokens, OAuth2Refused | TokenUnavailable | AuthFailed> = Effect.sleep(interval).pipe(
      Effect.zipRight(tokenRequest(http, endpoints, grant, { grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: device.device_code })),
      Effect.catchTag("OAuth2Refused", (error) => {
        if (error.error === "authorization_pending") return Effect.suspend(() => poll)
        if (error.error === "slow_down") {
          interval = Duration.sum(interval, Duration.seconds(5))
          return Effect.suspend(() => poll)
        }
        return Effect.fail(error)
      })
    )
    const expires = Duration.seconds(device.expires_in)
    return yield* poll.pipe(
      Effect.timeoutFail({ duration: expires, onTimeout: () => new AuthFailed({ reason: `the code was not entered within ${Duration.format(expires)}; run it again` }) })
    )
  })

export interface AuthOutcome {
  readonly stored: boolean
}

/** Stores the refresh token encrypted when MAILROOM_SECRET_KEY is set; otherwise prints the line for .env. */
export const keep = (address: string, refreshToken: Redacted.Redacted, secretKey: Option.Option<Redacted.Redacted>) =>
  Option.match(secretKey, {
    onNone: () =>
      Console.log(
        [
          "Signed in. MAILROOM_SECRET_KEY is not set, so nothing was stored; add this line to .env (it is a password: keep it secret):",
          `OAUTH2_REFRESH_TOKEN=${Redacted.value(refreshToken)}`
        ].join("\n")
      ).pipe(Effect.as<AuthOutcome>({ stored: false })),
    onSome: (secret) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* tokenStore(sql, secret).save(accountOf(address), refreshToken)
        yield* Console.log(`Signed in. The refresh token for ${accountOf(address)} is stored encrypted in the database (oauth_tokens); OAUTH2_REFRESH_TOKEN is not needed.`)
        return { stored: true } as AuthOutcome
      }).pipe(Effect.provide(CommandDatabaseLive))
  })

const text = (name: string, description: string) => Options.text(name).pipe(Options.withDescription(description), Options.optional)

export const authCommand = Command.make(
  "auth",
  {
    provider: Args.choice<Provider>([["google", "google"], ["microsoft", "microsoft"], ["generic", "generic"]], { name: "provider" }),
    address: Options.text("address").pipe(Options.withDescription("The mailbox to sign in as (GMAIL_SENDER_EMAIL).")),
    device: Options.boolean("device").pipe(Options.withDescription("Sign in with a code on another device instead of a browser on this machine (Microsoft).")),
    clientId: text("client-id", "Overrides OAUTH2_CLIENT_ID."),
    tenant: text("tenant", "Overrides OAUTH2_TENANT (Microsoft)."),
    tokenUrl: text("token-url", "Overrides OAUTH2_TOKEN_URL."),
    authorizeUrl: text("authorize-url", "Overrides OAUTH2_AUTHORIZE_URL."),
    deviceUrl: text("device-url", "Overrides OAUTH2_DEVICE_URL."),
    scope: text("scope", "Overrides OAUTH2_SCOPE.")
  },
  (flags) =>
    Effect.gen(function*() {
      const settings = yield* OAuth2Config
      const endpoints = yield* endpointsFor({
        ...settings,
        provider: flags.provider,
        clientId: Option.orElse(flags.clientId, () => settings.clientId),
        tenant: Option.getOrElse(flags.tenant, () => settings.tenant),
        tokenUrl: Option.orElse(flags.tokenUrl, () => settings.tokenUrl),
        authorizeUrl: Option.orElse(flags.authorizeUrl, () => settings.authorizeUrl),
        deviceUrl: Option.orElse(flags.deviceUrl, () => settings.deviceUrl),
        scope: Option.orElse(flags.scope, () => settings.scope)
      })
      const tokens = yield* flags.device
        ? deviceFlow(endpoints, flags.address, Console.log)
        : loopbackFlow(endpoints, flags.address, (url) => Console.log(`Open this address in a browser and sign in as ${flags.address}:\n\n${url}\n`))
      const refreshToken = yield* Option.match(tokens.refreshToken, {
        onNone: () =>
          Effect.fail(new AuthFailed({
            reason: flags.provider === "google"
              ? "Google sent no refresh token: remove mailroom's access at https://myaccount.google.com/permissions and run it again"
              : "the provider sent no refresh token: ask for the offline_access scope (OAUTH2_SCOPE)"
          })),
        onSome: Effect.succeed
      })
      yield* keep(flags.address, refreshToken, settings.secretKey)
      yield* Console.log(`Then set MAILBOX_AUTH=oauth2, OAUTH2_PROVIDER=${flags.provider} and OAUTH2_CLIENT_ID (and OAUTH2_CLIENT_SECRET if the client has one).`)
    }).pipe(Effect.provide(FetchHttpClient.layer))
).pipe(
  Command.withDescription(
    "Signs the mailbox in with OAuth2 (Gmail, Microsoft 365 or a generic provider) and keeps the refresh token: encrypted in the database with MAILROOM_SECRET_KEY, else printed for OAUTH2_REFRESH_TOKEN."
  )
)
