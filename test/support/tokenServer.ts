import { createHash, randomBytes } from "node:crypto"
import { createServer } from "node:http"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { Context, Effect, Layer } from "effect"

/**
 * A small OAuth2 provider on loopback: a token endpoint (refresh_token, authorization_code with PKCE,
 * device_code), an authorization endpoint that approves at once, a device-code endpoint, and an
 * introspection endpoint for Dovecot's oauth2 passdb. Rotation makes a used refresh token invalid,
 * stricter than Microsoft, so that a client that keeps an old one fails.
 */
export interface TokenServer {
  readonly url: string
  readonly tokenUrl: string
  readonly authorizeUrl: string
  readonly deviceUrl: string
  readonly introspectUrl: string
  readonly clientId: string
  readonly clientSecret: string
  /** Seconds an access token lives. */
  accessLifetime: number
  /** Issue a new refresh token on every refresh, and retire the old one. */
  rotate: boolean
  /** POSTs to the token endpoint, by grant type. */
  readonly requests: { refresh: number; code: number; device: number; total: number }
  readonly introspections: number
  /** A new grant for this user; its refresh token. */
  grant(user: string): string
  /** The grant behind every refresh token of this user answers invalid_grant from now on. */
  revoke(user: string): void
  /** Every access token issued so far is no longer active (as if it had expired). */
  expireAccessTokens(): void
  /** Whether this access token would pass introspection now. */
  isActive(accessToken: string): boolean
  /** The refresh token of the user's grant that is currently valid. */
  currentRefreshToken(user: string): string | undefined
  /** The refresh tokens sent with grant_type=refresh_token, in order. */
  readonly refreshTokensUsed: ReadonlyArray<string>
  /** The access tokens introspected, in order, with the answer. */
  readonly introspected: ReadonlyArray<{ readonly token: string; readonly active: boolean }>
  close(): Promise<void>
}

interface Grant {
  readonly user: string
  revoked: boolean
}

const b64url = (bytes: Buffer) => bytes.toString("base64url")
const token = (prefix: string) => `${prefix}-${b64url(randomBytes(18))}`

const readForm = (request: IncomingMessage): Promise<URLSearchParams> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))))
    request.on("error", reject)
  })

const json = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { "content-type": "application/json" })
  response.end(JSON.stringify(body))
}

export const startTokenServer = async (options: { readonly accessLifetime?: number; readonly rotate?: boolean } = {}): Promise<TokenServer> => {
  const clientId = "mailroom-test-client"
  const clientSecret = "mailroom-test-secret"
  const grants = new Map<string, Grant>()
  const refreshTokens = new Map<string, Grant>()
  const accessTokens = new Map<string, { readonly grant: Grant; readonly expiresAt: number; expired: boolean }>()
  const codes = new Map<string, { readonly user: string; readonly challenge: string; readonly redirectUri: string }>()
  const devices = new Map<string, { polls: number; readonly user: string }>()
  const refreshTokensUsed: Array<string> = []
  const introspected: Array<{ token: string; active: boolean }> = []
  const requests = { refresh: 0, code: 0, device: 0, total: 0 }
  let introspections = 0

  const issue = (grant: Grant, withRefresh: boolean) => {
    const access = token("at")
    accessTokens.set(access, { grant, expiresAt: Date.now() + self.accessLifetime * 1000, expired: false })
    const answer: Record<string, unknown> = { access_token: access, token_type: "Bearer", expires_in: self.accessLifetime }
    if (withRefresh) {
      const refresh = token("rt")
      refreshTokens.set(refresh, grant)
      answer.refresh_token = refresh
    }
    return answer
  }

  const newGrant = (user: string) => {
    const grant: Grant = { user, revoked: false }
    grants.set(token("g"), grant)
    return grant
  }

  const onToken = async (request: IncomingMessage, response: ServerResponse) => {
    const form = await readForm(request)
    requests.total += 1
    if (form.get("client_id") !== clientId || (form.has("client_secret") && form.get("client_secret") !== clientSecret)) {
      return json(response, 401, { error: "invalid_client", error_description: "unknown client" })
    }
    switch (form.get("grant_type")) {
      case "refresh_token": {
        requests.refresh += 1
        const used = form.get("refresh_token") ?? ""
        refreshTokensUsed.push(used)
        const grant = refreshTokens.get(used)
        if (!grant || grant.revoked) return json(response, 400, { error: "invalid_grant", error_description: "AADSTS50173: The provided grant has expired due to it being revoked." })
        if (self.rotate) refreshTokens.delete(used)
        return json(response, 200, issue(grant, self.rotate))
      }
      case "authorization_code": {
        requests.code += 1
        const code = codes.get(form.get("code") ?? "")
        codes.delete(form.get("code") ?? "")
        const verifier = form.get("code_verifier") ?? ""
        if (!code || code.redirectUri !== form.get("redirect_uri") || b64url(createHash("sha256").update(verifier).digest()) !== code.challenge) {
          return json(response, 400, { error: "invalid_grant", error_description: "bad code, redirect_uri or code_verifier" })
        }
        return json(response, 200, issue(newGrant(code.user), true))
      }
      case "urn:ietf:params:oauth:grant-type:device_code": {
        requests.device += 1
        const device = devices.get(form.get("device_code") ?? "")
        if (!device) return json(response, 400, { error: "expired_token" })
        device.polls += 1
        if (device.polls < 2) return json(response, 400, { error: "authorization_pending" })
        devices.delete(form.get("device_code") ?? "")
        return json(response, 200, issue(newGrant(device.user), true))
      }
      default:
        return json(response, 400, { error: "unsupported_grant_type" })
    }
  }

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1")
    const route = `${request.method} ${url.pathname}`
    const handle = async () => {
      switch (route) {
        case "POST /token":
          return onToken(request, response)
        case "POST /introspect": {
          introspections += 1
          const form = await readForm(request)
          const access = accessTokens.get(form.get("token") ?? "")
          const active = access !== undefined && !access.expired && access.expiresAt > Date.now() && !access.grant.revoked
          introspected.push({ token: form.get("token") ?? "", active })
          return json(response, 200, active ? { active: true, username: access.grant.user } : { active: false })
        }
        case "GET /authorize": {
          const code = token("code")
          const redirectUri = url.searchParams.get("redirect_uri") ?? ""
          codes.set(code, {
            user: url.searchParams.get("login_hint") ?? "someone@example.com",
            challenge: url.searchParams.get("code_challenge") ?? "",
            redirectUri
          })
          const back = new URL(redirectUri)
          back.searchParams.set("code", code)
          back.searchParams.set("state", url.searchParams.get("state") ?? "")
          response.writeHead(302, { location: back.toString() })
          return response.end()
        }
        case "POST /devicecode": {
          const form = await readForm(request)
          const deviceCode = token("dc")
          devices.set(deviceCode, { polls: 0, user: "device-user@example.com" })
          return json(response, 200, {
            device_code: deviceCode,
            user_code: "WDJB-MJHT",
            verification_uri: `${self.url}/device`,
            expires_in: 600,
            interval: 1,
            message: `To sign in, open ${self.url}/device and enter the code WDJB-MJHT (scope ${form.get("scope") ?? ""}).`
          })
        }
        default:
          return json(response, 404, { error: "not_found" })
      }
    }
    handle().catch(() => json(response, 500, { error: "server_error" }))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const self: TokenServer = {
    url: base,
    tokenUrl: `${base}/token`,
    authorizeUrl: `${base}/authorize`,
    deviceUrl: `${base}/devicecode`,
    introspectUrl: `${base}/introspect`,
    clientId,
    clientSecret,
    accessLifetime: options.accessLifetime ?? 3600,
    rotate: options.rotate ?? false,
    requests,
    get introspections() {
      return introspections
    },
    grant: (user) => {
      const refresh = token("rt")
      refreshTokens.set(refresh, newGrant(user))
      return refresh
    },
    revoke: (user) => {
      for (const grant of grants.values()) if (grant.user === user) grant.revoked = true
    },
    expireAccessTokens: () => {
      for (const access of accessTokens.values()) access.expired = true
    },
    isActive: (accessToken) => {
      const access = accessTokens.get(accessToken)
      return access !== undefined && !access.expired && access.expiresAt > Date.now() && !access.grant.revoked
    },
    currentRefreshToken: (user) => [...refreshTokens.entries()].reverse().find(([, grant]) => grant.user === user && !grant.revoked)?.[0],
    refreshTokensUsed,
    introspected,
    close: () => new Promise((resolve) => server.close(() => resolve()))
  }
  return self
}

export const TokenServerResource = (options?: Parameters<typeof startTokenServer>[0]) =>
  Effect.acquireRelease(Effect.promise(() => startTokenServer(options)), (server) => Effect.promise(() => server.close()))

/** The OAuth2 provider for a suite: `layer(OAuth2TokenServer.layer(options))`, closed when the suite ends. */
export class OAuth2TokenServer extends Context.Tag("test/OAuth2TokenServer")<OAuth2TokenServer, TokenServer>() {
  static readonly layer = (options?: Parameters<typeof startTokenServer>[0]) => Layer.scoped(OAuth2TokenServer, TokenServerResource(options))
}
