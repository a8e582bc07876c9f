import { HttpClient, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { ConfigError, Data, Duration, Effect, Option, Redacted, Schedule, Schema } from "effect"
import { OAuth2Config } from "../config/Config.js"
import type { Provider } from "../config/Config.js"
import { OAuth2Refused } from "./ImapErrors.js"

export interface Endpoints {
  readonly provider: Provider
  readonly clientId: string
  readonly clientSecret: Option.Option<Redacted.Redacted>
  readonly tokenUrl: string
  readonly authorizeUrl: Option.Option<string>
  readonly deviceUrl: Option.Option<string>
  readonly scope: string
}

const microsoftBase = (tenant: string) => `https://login.microsoftonline.com/${encodeURIComponent(tenant)}/oauth2/v2.0`

const defaults = (provider: Provider, tenant: string) => {
  switch (provider) {
    case "google":
      return {
        tokenUrl: Option.some("https://oauth2.googleapis.com/token"),
        authorizeUrl: Option.some("https://accounts.google.com/o/oauth2/v2/auth"),
        deviceUrl: Option.none<string>(),
        scope: "https://mail.google.com/"
      }
    case "microsoft":
      return {
        tokenUrl: Option.some(`${microsoftBase(tenant)}/token`),
        authorizeUrl: Option.some(`${microsoftBase(tenant)}/authorize`),
        deviceUrl: Option.some(`${microsoftBase(tenant)}/devicecode`),
        scope: "offline_access https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send"
      }
    case "generic":
      return { tokenUrl: Option.none<string>(), authorizeUrl: Option.none<string>(), deviceUrl: Option.none<string>(), scope: "" }
  }
}

/** The provider's endpoints, each overridable by its setting. */
export const endpointsFor = (config: OAuth2Config): Effect.Effect<Endpoints, ConfigError.ConfigError> => {
  const known = defaults(config.provider, config.tenant)
  const tokenUrl = Option.orElse(config.tokenUrl, () => known.tokenUrl)
  if (Option.isNone(config.clientId)) {
    return Effect.fail(ConfigError.MissingData(["OAUTH2_CLIENT_ID"], "MAILBOX_AUTH=oauth2 needs OAUTH2_CLIENT_ID"))
  }
  if (Option.isNone(tokenUrl)) {
    return Effect.fail(ConfigError.MissingData(["OAUTH2_TOKEN_URL"], "OAUTH2_PROVIDER=generic needs OAUTH2_TOKEN_URL"))
  }
  return Effect.succeed({
    provider: config.provider,
    clientId: config.clientId.value,
    clientSecret: config.clientSecret,
    tokenUrl: tokenUrl.value,
    authorizeUrl: Option.orElse(config.authorizeUrl, () => known.authorizeUrl),
    deviceUrl: Option.orElse(config.deviceUrl, () => known.deviceUrl),
    scope: Option.getOrElse(config.scope, () => known.scope)
  })
}

/** The token endpoint could not be reached or answered 5xx/429: transient. */
export class TokenUnavailable extends Data.TaggedError("TokenUnavailable")<{
  readonly url: string
  readonly reason: string
}> {
  override get message() {
    return `the OAuth2 token endpoint ${this.url} is unavailable (${this.reason}); trying again`
  }
}

/** A blip at the token endpoint, within one request for a token: from half a second, three times. */
export const tokenRetry = Schedule.exponential("500 millis", 2).pipe(Schedule.jittered, Schedule.intersect(Schedule.recurs(3)))

export const TokenResponse = Schema.Struct({
  access_token: Schema.String,
  expires_in: Schema.optional(Schema.Number),
  refresh_token: Schema.optional(Schema.String),
  token_type: Schema.optional(Schema.String)
})

const ErrorResponse = Schema.Struct({
  error: Schema.String,
  error_description: Schema.optional(Schema.String)
})

export interface Tokens {
  readonly accessToken: Redacted.Redacted
  readonly lifetime: Duration.Duration
  /** Present when the provider rotated the refresh token (Microsoft does on every use). */
  readonly refreshToken: Option.Option<Redacted.Redacted>
}

export interface Grant {
  readonly account: string
  readonly provider: Provider
}

/** What an OAuth2 error answer (RFC 6749 5.2) says, if the body is one. */
export const oauthError = (response: HttpClientResponse.HttpClientResponse) =>
  HttpClientResponse.schemaBodyJson(ErrorResponse)(response).pipe(Effect.option)

/**
 * POSTs a form to the token endpoint. A 400/401 with an OAuth2 error is the grant's or client's
 * refusal (a person must act); anything else that fails is TokenUnavailable.
 */
export const tokenRequest = (
  http: HttpClient.HttpClient,
  endpoints: Endpoints,
  grant: Grant,
  form: Record<string, string>
): Effect.Effect<Tokens, OAuth2Refused | TokenUnavailable> => {
  const client = http.pipe(HttpClient.mapRequest(HttpClientRequest.acceptJson), HttpClient.filterStatusOk)
  const body = {
    ...form,
    client_id: endpoints.clientId,
    ...Option.match(endpoints.clientSecret, { onNone: () => ({}), onSome: (secret) => ({ client_secret: Redacted.value(secret) }) })
  }
  const unavailable = (reason: string) => new TokenUnavailable({ url: endpoints.tokenUrl, reason })
  return client.execute(HttpClientRequest.post(endpoints.tokenUrl).pipe(HttpClientRequest.bodyUrlParams(body))).pipe(
    Effect.flatMap(HttpClientResponse.schemaBodyJson(TokenResponse)),
    Effect.scoped,
    Effect.catchTags({
      RequestError: (error) => Effect.fail(unavailable(error.description ?? error.reason)),
      ParseError: () => Effect.fail(unavailable("the answer is not a token response")),
      ResponseError: (error) => {
        const status = error.response.status
        if (status !== 400 && status !== 401) return Effect.fail(unavailable(`HTTP ${status}`))
        return oauthError(error.response).pipe(
          Effect.flatMap((answer) =>
            Option.match(answer, {
              onNone: (): Effect.Effect<never, OAuth2Refused | TokenUnavailable> => Effect.fail(unavailable(`HTTP ${status}`)),
              onSome: (answer) =>
                Effect.fail(
                  new OAuth2Refused({
                  account: grant.account,
                  provider: grant.provider,
                  error: answer.error,
                  // The description is the provider's, never a token; one line, kept short.
                    description: (answer.error_description ?? "").replace(/\s+/g, " ").slice(0, 200)
                  })
                )
            })
          )
        )
      }
    }),
    Effect.retry({ schedule: tokenRetry, while: (error) => error._tag === "TokenUnavailable" }),
    Effect.map((answer): Tokens => ({
      accessToken: Redacted.make(answer.access_token),
      lifetime: Duration.seconds(answer.expires_in ?? 3600),
      refreshToken: Option.map(Option.fromNullable(answer.refresh_token), (token) => Redacted.make(token))
    }))
  )
}
