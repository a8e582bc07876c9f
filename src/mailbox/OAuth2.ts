import { createCipheriv, createDecipheriv, randomBytes, scrypt } from "node:crypto"
import { HttpClient } from "@effect/platform"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, ConfigError, Context, Data, Duration, Effect, Layer, Option, Redacted, SynchronizedRef } from "effect"
import { OAuth2Config } from "../config/Config.js"
import { mailboxAuth, mailboxUser } from "../config/Config.js"
import { OAuth2Refused } from "./ImapErrors.js"
import { endpointsFor, tokenRequest } from "./OAuth2Providers.js"
import type { Endpoints, Grant, TokenUnavailable } from "./OAuth2Providers.js"

export type OAuth2Error = OAuth2Refused | TokenUnavailable

/** An access token and the moment to stop using it (a minute before it expires, or half its life if shorter). */
export interface AccessToken {
  readonly token: Redacted.Redacted
  readonly refreshAt: number
}

export interface OAuth2Shape {
  readonly enabled: boolean
  /** The mailbox login the tokens are for (GMAIL_SENDER_EMAIL). */
  readonly user: string
  /** A cached token while it is fresh; otherwise one refresh, which concurrent callers wait for and share. */
  readonly accessToken: Effect.Effect<AccessToken, OAuth2Error>
  /** Drops this token after a server refused it, unless another caller has already replaced it. */
  readonly invalidate: (token: Redacted.Redacted) => Effect.Effect<void>
  /**
   * Runs `use` with a token; when the server refuses it (`rejected`), refreshes once and tries again.
   * A second refusal is the caller's error, retried by its own schedule.
   */
  readonly withToken: <A, E, R>(
    use: (token: Redacted.Redacted) => Effect.Effect<A, E, R>,
    rejected: (error: E) => boolean
  ) => Effect.Effect<A, E | OAuth2Error, R>
}

export class OAuth2 extends Context.Tag("mailroom/OAuth2")<OAuth2, OAuth2Shape>() {}

// --- refresh tokens at rest: AES-256-GCM, key from MAILROOM_SECRET_KEY by scrypt with a salt per row ---

const FORMAT = 1
const SALT = 16
const IV = 12
const TAG = 16

/** The stored token does not decrypt: another key, or a row someone changed. */
export class TokenUnreadable extends Data.TaggedError("TokenUnreadable")<{ readonly account: string }> {
  override get message() {
    return `the stored OAuth2 refresh token for ${this.account} cannot be decrypted: restore MAILROOM_SECRET_KEY or run \`mailroom auth\` again`
  }
}

const deriveKey = (secret: Redacted.Redacted, salt: Buffer) =>
  Effect.async<Buffer>((resume) => {
    scrypt(Redacted.value(secret), salt, 32, { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }, (error, key) => {
      resume(error ? Effect.die(error) : Effect.succeed(key))
    })
  })

/** The account is authenticated data: a row copied to another account does not decrypt. */
const aad = (account: string) => Buffer.from(`mailroom/oauth_tokens/v${FORMAT}/${account}`, "utf8")

export const seal = (secret: Redacted.Redacted, account: string, token: Redacted.Redacted): Effect.Effect<Buffer> =>
  Effect.gen(function*() {
    const salt = randomBytes(SALT)
    const iv = randomBytes(IV)
    const key = yield* deriveKey(secret, salt)
    const cipher = createCipheriv("aes-256-gcm", key, iv)
    cipher.setAAD(aad(account))
    const body = Buffer.concat([cipher.update(Redacted.value(token), "utf8"), cipher.final()])
    return Buffer.concat([Buffer.from([FORMAT]), salt, iv, cipher.getAuthTag(), body])
  })

export const unseal = (secret: Redacted.Redacted, account: string, sealed: Uint8Array): Effect.Effect<Redacted.Redacted, TokenUnreadable> =>
  Effect.gen(function*() {
    const bytes = Buffer.from(sealed)
    if (bytes.length < 1 + SALT + IV + TAG || bytes[0] !== FORMAT) return yield* new TokenUnreadable({ account })
    const salt = bytes.subarray(1, 1 + SALT)
    const iv = bytes.subarray(1 + SALT, 1 + SALT + IV)
    const tag = bytes.subarray(1 + SALT + IV, 1 + SALT + IV + TAG)
    const key = yield* deriveKey(secret, salt)
    return yield* Effect.try({
      try: () => {
        const decipher = createDecipheriv("aes-256-gcm", key, iv)
        decipher.setAAD(aad(account))
        decipher.setAuthTag(tag)
        const plain = Buffer.concat([decipher.update(bytes.subarray(1 + SALT + IV + TAG)), decipher.final()])
        return Redacted.make(plain.toString("utf8"))
      },
      catch: () => new TokenUnreadable({ account })
    })
  })

export interface StoredToken {
  readonly token: Redacted.Redacted
  readonly updatedAt: number
}

/** The table oauth_tokens (migration 0007), one encrypted refresh token per account. */
export const tokenStore = (sql: SqlClient.SqlClient, secret: Redacted.Redacted) => ({
  load: (account: string): Effect.Effect<Option.Option<StoredToken>, SqlError | TokenUnreadable> =>
    sql<{ refresh_token_enc: Uint8Array; updated_at: Date }>`
      SELECT refresh_token_enc, updated_at FROM oauth_tokens WHERE account = ${account}`.pipe(
      Effect.flatMap((rows) =>
        rows[0] === undefined
          ? Effect.succeedNone
          : Effect.map(unseal(secret, account, rows[0].refresh_token_enc), (token) =>
            Option.some({ token, updatedAt: new Date(rows[0]!.updated_at).getTime() }))
      )
    ),
  /** Dated by clock_timestamp(): now() is the transaction's start, which under the refresh lock can predate a token rotated meanwhile. */
  save: (account: string, token: Redacted.Redacted): Effect.Effect<void, SqlError> =>
    Effect.flatMap(seal(secret, account, token), (sealed) =>
      sql`INSERT INTO oauth_tokens (account, refresh_token_enc, updated_at) VALUES (${account}, ${sealed}, clock_timestamp())
        ON CONFLICT (account) DO UPDATE SET refresh_token_enc = excluded.refresh_token_enc, updated_at = excluded.updated_at`.pipe(Effect.asVoid))
})

export type TokenStore = ReturnType<typeof tokenStore>

export const accountOf = (address: string) => address.trim().toLowerCase()

const REFRESH_MARGIN = Duration.seconds(60)

const disabled = (user: string): OAuth2Shape => ({
  enabled: false,
  user,
  accessToken: Effect.dieMessage("OAuth2 access token asked for with MAILBOX_AUTH=password"),
  invalidate: () => Effect.void,
  withToken: (use) => use(Redacted.make(""))
})

const make = Effect.gen(function*() {
  const user = yield* mailboxUser
  if ((yield* mailboxAuth) === "password") return OAuth2.of(disabled(user))
  const config = yield* OAuth2Config
  const endpoints: Endpoints = yield* endpointsFor(config)
  const http = yield* HttpClient.HttpClient
  // The database is there when the pipeline runs (Layers.ts provides it under the mailbox); without
  // it, as for `status`, rotated tokens live in this process only.
  const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
  const store = Option.flatMap(sql, (sql) => Option.map(config.secretKey, (secret) => tokenStore(sql, secret)))
  const grant: Grant = { account: accountOf(user), provider: endpoints.provider }
  if (Option.isNone(store)) {
    yield* Effect.logInfo(
      Option.isSome(config.secretKey)
        ? "No database here: OAuth2 refresh tokens come from OAUTH2_REFRESH_TOKEN and rotated ones stay in memory"
        : "MAILROOM_SECRET_KEY is not set: OAuth2 refresh tokens come from OAUTH2_REFRESH_TOKEN and rotated ones stay in memory"
    )
  }

  /** The newest refresh token this process received, when the provider rotated it. */
  let rotated: Option.Option<StoredToken> = Option.none()
  /** Refresh tokens the endpoint refused, with its answer: not sent again, so a revoked grant costs one request. */
  const refused = new Map<string, OAuth2Refused>()

  const noToken = (error: string) => new OAuth2Refused({ account: grant.account, provider: grant.provider, error, description: "" })

  const loadStored = Option.match(store, {
    onNone: () => Effect.succeedNone,
    onSome: (store) =>
      store.load(grant.account).pipe(
        Effect.catchTags({
          SqlError: (error) => Effect.logWarning(`Could not read the stored OAuth2 refresh token: ${error.message}`).pipe(Effect.as(Option.none())),
          TokenUnreadable: () => Effect.fail(noToken("unreadable_token"))
        })
      )
  })

  /** Newest first: rotated here, or stored (by another instance or `mailroom auth`); OAUTH2_REFRESH_TOKEN last. */
  const currentRefreshToken = Effect.gen(function*() {
    const stored = yield* loadStored
    const newest = [rotated, stored].flatMap((entry) => Option.isSome(entry) ? [entry.value] : []).sort((a, b) => b.updatedAt - a.updatedAt)
    const candidates = newest.length > 0 ? newest.map((entry) => entry.token) : Option.toArray(config.refreshToken)
    if (candidates.length === 0) return yield* noToken("no_refresh_token")
    const usable = candidates.find((token) => !refused.has(Redacted.value(token)))
    if (usable === undefined) return yield* Effect.fail(refused.get(Redacted.value(candidates[0]!))!)
    return usable
  })

  const refresh = Effect.fn("OAuth2.refresh")(function*() {
    yield* Effect.annotateCurrentSpan({ "mailroom.oauth2.provider": grant.provider })
    const refreshToken = yield* currentRefreshToken
    const tokens = yield* tokenRequest(http, endpoints, grant, {
      grant_type: "refresh_token",
      refresh_token: Redacted.value(refreshToken),
      ...(endpoints.scope ? { scope: endpoints.scope } : {})
    }).pipe(
      Effect.tapErrorTag("OAuth2Refused", (error) => Effect.sync(() => void refused.set(Redacted.value(refreshToken), error)))
    )
    const now = yield* Clock.currentTimeMillis
    if (Option.isSome(tokens.refreshToken) && Redacted.value(tokens.refreshToken.value) !== Redacted.value(refreshToken)) {
      rotated = Option.some({ token: tokens.refreshToken.value, updatedAt: now })
      yield* Effect.annotateCurrentSpan({ "mailroom.oauth2.rotated": true })
      if (Option.isSome(store)) {
        yield* store.value.save(grant.account, tokens.refreshToken.value).pipe(
          Effect.catchAll((error) => Effect.logWarning(`Could not store the rotated OAuth2 refresh token (kept in memory): ${error.message}`))
        )
      }
    }
    const lifetime = Duration.toMillis(tokens.lifetime)
    const margin = Math.min(Duration.toMillis(REFRESH_MARGIN), lifetime / 2)
    yield* Effect.logDebug(`Refreshed the OAuth2 access token for ${grant.account}, valid ${Duration.format(tokens.lifetime)}`)
    return { token: tokens.accessToken, refreshAt: now + lifetime - margin }
  })

  /**
   * One refresh at a time per account, across every folder and instance sharing the database, and
   * from the newest stored token: a provider that rotates refresh tokens refuses the one a
   * concurrent refresh has just used (invalid_grant), which would stop the mailbox that lost the race.
   * The advisory lock is a transaction's, so the rotated token is stored before the next refresh reads it.
   */
  const lockKey = `mailroom/oauth2/${grant.account}`
  const refreshOnce: Effect.Effect<AccessToken, OAuth2Error> = Option.match(Option.flatMap(store, () => sql), {
    onNone: () => refresh(),
    onSome: (sql) =>
      Effect.suspend(() => {
        let done: AccessToken | undefined
        return sql.withTransaction(
          sql`SELECT pg_advisory_xact_lock(hashtextextended(${lockKey}, 0))`.pipe(
            Effect.zipRight(refresh()),
            Effect.tap((token) => Effect.sync(() => void (done = token)))
          )
        ).pipe(
          Effect.catchTag("SqlError", (error) =>
            done === undefined
              ? Effect.logWarning(`Could not take the OAuth2 refresh lock (${error.message}); refreshing without it`).pipe(
                Effect.zipRight(refresh())
              )
              : Effect.logWarning(`Could not store the rotated OAuth2 refresh token (kept in memory): ${error.message}`).pipe(
                Effect.as(done)
              ))
        )
      })
  })

  const cache = yield* SynchronizedRef.make(Option.none<AccessToken>())

  const accessToken: Effect.Effect<AccessToken, OAuth2Error> = SynchronizedRef.modifyEffect(cache, (cached) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (Option.isSome(cached) && now < cached.value.refreshAt) return [cached.value, cached] as const
      const fresh = yield* refreshOnce
      return [fresh, Option.some(fresh)] as const
    })).pipe(Effect.annotateLogs({ service: "OAuth2" }))

  const invalidate = (token: Redacted.Redacted) =>
    SynchronizedRef.update(cache, (cached) => Option.isSome(cached) && cached.value.token === token ? Option.none() : cached)

  const withToken = <A, E, R>(use: (token: Redacted.Redacted) => Effect.Effect<A, E, R>, rejected: (error: E) => boolean) =>
    Effect.flatMap(accessToken, (first) =>
      use(first.token).pipe(
        Effect.catchIf(rejected, () =>
          invalidate(first.token).pipe(
            Effect.zipRight(accessToken),
            Effect.flatMap((second) => use(second.token))
          ))
      ))

  return OAuth2.of({ enabled: true, user, accessToken, invalidate, withToken })
})

/** Over a given HTTP client (tests hand in one of their own); the database, when present, from the surroundings. */
export const oauth2With = <E, R>(http: Layer.Layer<HttpClient.HttpClient, E, R>): Layer.Layer<OAuth2, ConfigError.ConfigError | E, R> =>
  // With password auth no HTTP client is built: with a thousand mailboxes each would hold one idle.
  Layer.unwrapEffect(Effect.map(mailboxAuth, (auth) =>
    auth === "password"
      ? Layer.effect(OAuth2, Effect.map(mailboxUser, (user) => OAuth2.of(disabled(user))))
      : Layer.effect(OAuth2, make).pipe(Layer.provide(http))))

/**
 * One instance for IMAP and SMTP alike: both provide this same layer, so one token and one refresh
 * serve both. Node's own fetch: the undici package behind NodeHttpClient cost every start 0.1 s.
 */
export const OAuth2Live = oauth2With(FetchHttpClient.layer)
