import { HttpClient, HttpClientResponse } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Layer, Redacted, TestClock } from "effect"
import { describeFailure } from "../../src/cli/Fatal.js"
import { ImapConfig } from "../../src/config/Config.js"
import { OAuth2, oauth2With, seal, unseal } from "../../src/mailbox/OAuth2.js"
import { configLayer } from "./layers.js"

const secret = Redacted.make("correct horse battery staple")

/** A token endpoint in memory: counts requests, rotates refresh tokens when asked, accepts only the newest. */
const fakeEndpoint = (options: { readonly lifetime?: number; readonly rotate?: boolean; readonly refuse?: string } = {}) => {
  const state = { requests: 0, used: [] as Array<string>, valid: "rt-0", issued: 0 }
  const client = HttpClient.make((request) =>
    Effect.sync(() => {
      state.requests += 1
      const body = request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""
      const form = new URLSearchParams(body)
      const used = form.get("refresh_token") ?? ""
      state.used.push(used)
      const answer = (status: number, json: unknown) =>
        HttpClientResponse.fromWeb(request, new Response(JSON.stringify(json), { status, headers: { "content-type": "application/json" } }))
      if (options.refuse) return answer(400, { error: options.refuse, error_description: "Token has been expired or revoked." })
      if (used !== state.valid) return answer(400, { error: "invalid_grant" })
      state.issued += 1
      const rotated = options.rotate ? `rt-${state.issued}` : undefined
      if (rotated) state.valid = rotated
      return answer(200, {
        access_token: `at-${state.issued}`,
        expires_in: options.lifetime ?? 3600,
        token_type: "Bearer",
        ...(rotated ? { refresh_token: rotated } : {})
      })
    })
  )
  return { state, layer: Layer.succeed(HttpClient.HttpClient, client) }
}

const oauthEnv = {
  MAILBOX_AUTH: "oauth2",
  OAUTH2_PROVIDER: "microsoft",
  OAUTH2_CLIENT_ID: "client",
  OAUTH2_TOKEN_URL: "http://token.test/token",
  OAUTH2_REFRESH_TOKEN: "rt-0"
}

const oauth2Layer = (endpoint: ReturnType<typeof fakeEndpoint>) => oauth2With(endpoint.layer).pipe(Layer.provide(configLayer(oauthEnv)))

const token = Effect.flatMap(OAuth2, (oauth) => oauth.accessToken).pipe(Effect.map((t) => Redacted.value(t.token)))

describe("refresh tokens at rest", () => {
  it.effect("round-trips through AES-256-GCM and keeps the token out of the stored bytes", () =>
    Effect.gen(function*() {
      const sealed = yield* seal(secret, "support@example.com", Redacted.make("rt-very-secret"))
      expect(sealed.toString("latin1")).not.toContain("rt-very-secret")
      expect(Redacted.value(yield* unseal(secret, "support@example.com", sealed))).toBe("rt-very-secret")
      // A fresh salt and IV each time: the same token never gives the same bytes.
      expect((yield* seal(secret, "support@example.com", Redacted.make("rt-very-secret"))).equals(sealed)).toBe(false)
    }))

  it.effect("detects a changed byte, another key and another account", () =>
    Effect.gen(function*() {
      const sealed = yield* seal(secret, "support@example.com", Redacted.make("rt-very-secret"))
      const tampered = Buffer.from(sealed)
      tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1
      for (
        const attempt of [
          unseal(secret, "support@example.com", tampered),
          unseal(Redacted.make("another key"), "support@example.com", sealed),
          unseal(secret, "other@example.com", sealed),
          unseal(secret, "support@example.com", sealed.subarray(0, 20))
        ]
      ) {
        const exit = yield* Effect.exit(attempt)
        expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause).pipe((o) => o._tag === "Some" && o.value._tag === "TokenUnreadable")).toBe(true)
      }
    }))
})

describe("access tokens", () => {
  it.effect("are refreshed a minute before they expire, not earlier", () => {
    const endpoint = fakeEndpoint({ lifetime: 3600 })
    return Effect.gen(function*() {
      expect(yield* token).toBe("at-1")
      yield* TestClock.adjust("3539 seconds")
      expect(yield* token).toBe("at-1")
      expect(endpoint.state.requests).toBe(1)
      yield* TestClock.adjust("2 seconds")
      expect(yield* token).toBe("at-2")
      expect(endpoint.state.requests).toBe(2)
    }).pipe(Effect.provide(oauth2Layer(endpoint)))
  })

  it.effect("one refresh serves callers that ask at once", () => {
    const endpoint = fakeEndpoint()
    return Effect.gen(function*() {
      const tokens = yield* Effect.all(Array.from({ length: 8 }, () => token), { concurrency: "unbounded" })
      expect(new Set(tokens)).toEqual(new Set(["at-1"]))
      expect(endpoint.state.requests).toBe(1)
    }).pipe(Effect.provide(oauth2Layer(endpoint)))
  })

  it.effect("rotation keeps the newest refresh token", () => {
    const endpoint = fakeEndpoint({ rotate: true, lifetime: 600 })
    return Effect.gen(function*() {
      for (let i = 0; i < 3; i++) {
        yield* token
        yield* TestClock.adjust("10 minutes")
      }
      expect(yield* token).toBe("at-4")
      // Each refresh sent the token the previous one returned; the endpoint refuses any other.
      expect(endpoint.state.used).toEqual(["rt-0", "rt-1", "rt-2", "rt-3"])
    }).pipe(Effect.provide(oauth2Layer(endpoint)))
  })

  it.effect("a refused token is refreshed once, and only once", () => {
    const endpoint = fakeEndpoint()
    return Effect.gen(function*() {
      const oauth = yield* OAuth2
      const seen: Array<string> = []
      const refuseFirst = (t: Redacted.Redacted) =>
        Effect.suspend(() => {
          seen.push(Redacted.value(t))
          return seen.length === 1 ? Effect.fail("refused" as const) : Effect.succeed("in")
        })
      expect(yield* oauth.withToken(refuseFirst, (e) => e === "refused")).toBe("in")
      expect(seen).toEqual(["at-1", "at-2"])
      const always = (t: Redacted.Redacted) => Effect.suspend(() => (seen.push(Redacted.value(t)), Effect.fail("refused" as const)))
      expect(yield* Effect.flip(oauth.withToken(always, (e) => e === "refused"))).toBe("refused")
      expect(seen).toEqual(["at-1", "at-2", "at-2", "at-3"])
      expect(endpoint.state.requests).toBe(3)
    }).pipe(Effect.provide(oauth2Layer(endpoint)))
  })

  it.effect("a revoked grant is one clear error, and the endpoint is not asked again for that token", () => {
    const endpoint = fakeEndpoint({ refuse: "invalid_grant" })
    return Effect.gen(function*() {
      const first = yield* Effect.flip(token)
      expect(first._tag).toBe("OAuth2Refused")
      expect(first.message).toMatch(/^the OAuth2 grant for support@example.com was revoked or has expired .*run `mailroom auth microsoft --address support@example.com` again$/)
      expect(first.message).not.toContain("\n")
      expect(first.message).not.toContain("rt-0")
      for (let i = 0; i < 5; i++) expect((yield* Effect.flip(token))._tag).toBe("OAuth2Refused")
      expect(endpoint.state.requests).toBe(1)
    }).pipe(Effect.provide(oauth2Layer(endpoint)))
  })
})

describe("MAILBOX_AUTH", () => {
  const load = <A, E>(config: Effect.Effect<A, E>, env: Record<string, string>) =>
    config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

  it.effect("oauth2 needs no GMAIL_SENDER_PASSWORD; password auth still names it when missing", () =>
    Effect.gen(function*() {
      const config = yield* load(ImapConfig, { GMAIL_SENDER_EMAIL: "a@b.test", MAILBOX_AUTH: "oauth2" })
      expect(config.auth).toBe("oauth2")
      const error = yield* Effect.flip(load(ImapConfig, { GMAIL_SENDER_EMAIL: "a@b.test" }))
      expect(describeFailure(Cause.fail(error))?.line).toMatch(/^GMAIL_SENDER_PASSWORD is not set: The mailbox password/)
    }))

  it.effect("oauth2 without a client ID is a configuration error naming OAUTH2_CLIENT_ID", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Layer.build(oauth2With(fakeEndpoint().layer)).pipe(
        Effect.scoped,
        Effect.provide(configLayer({ MAILBOX_AUTH: "oauth2" }))
      ))
      expect(Exit.isFailure(exit) ? describeFailure(exit.cause)?.line : "").toMatch(/^OAUTH2_CLIENT_ID is not set/)
    }))
})
