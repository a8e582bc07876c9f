import type { AddressInfo } from "node:net"
import { Context, Effect, Layer } from "effect"
import { SMTPServer } from "smtp-server"

export interface SinkMessage {
  readonly from: string
  readonly to: ReadonlyArray<string>
  readonly raw: Buffer
  /** Lower-cased header names, values unfolded. */
  readonly headers: ReadonlyMap<string, string>
  readonly messageId: string | undefined
}

export interface SmtpSink {
  readonly host: string
  readonly port: number
  readonly messages: ReadonlyArray<SinkMessage>
  readonly authAttempts: number
  waitFor(count: number, timeoutMs?: number): Promise<ReadonlyArray<SinkMessage>>
  /** Rejects the next `n` messages at DATA with `code` and `text` (0 stops rejecting). */
  failNext(n: number, code?: number, text?: string): void
  /** Answers RCPT TO for `address` with `response` (a 4xx or 5xx line), as a relay does for a recipient it cannot take now; undefined stops it. */
  refuseRecipient(address: string | undefined, response?: string): void
  /** Runs `hook` on each message before the sink answers its DATA (undefined: none). */
  beforeAccepting(hook: (() => Promise<void>) | undefined): void
  close(): Promise<void>
}

const headersOf = (raw: Buffer): Map<string, string> => {
  const text = raw.toString("utf8")
  const end = text.search(/\r?\n\r?\n/)
  const block = (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, " ")
  const headers = new Map<string, string>()
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(":")
    if (colon > 0) {
      const key = line.slice(0, colon).trim().toLowerCase()
      if (!headers.has(key)) headers.set(key, line.slice(colon + 1).trim())
    }
  }
  return headers
}

/** An SMTP server on loopback that keeps what it is sent; with credentials it requires AUTH. */
export const startSmtpSink = async (
  options: {
    readonly user?: string
    readonly password?: string
    /** Offers AUTH XOAUTH2 too, accepting a token when this says yes. */
    readonly accessToken?: (user: string, token: string) => boolean
  } = {}
): Promise<SmtpSink> => {
  const messages: Array<SinkMessage> = []
  let authAttempts = 0
  let failing = 0
  let failCode = 451
  let failText = "Try again later"
  let beforeAccepting: (() => Promise<void>) | undefined
  let refused: { readonly address: string; readonly response: string } | undefined
  const waiters: Array<() => void> = []
  const requireAuth = options.user !== undefined || options.accessToken !== undefined
  const server = new SMTPServer({
    secure: false,
    disabledCommands: requireAuth ? ["STARTTLS"] : ["STARTTLS", "AUTH"],
    authOptional: !requireAuth,
    allowInsecureAuth: true,
    logger: false,
    ...(options.accessToken ? { authMethods: ["PLAIN", "LOGIN", "XOAUTH2"] } : {}),
    onAuth: (auth, _session, callback) => {
      authAttempts += 1
      if (auth.method === "XOAUTH2") {
        if (options.accessToken?.(auth.username ?? "", auth.accessToken ?? "")) return callback(null, { user: auth.username })
        return callback(null, { data: { status: "401", schemes: "bearer" } })
      }
      if (auth.username === options.user && auth.password === options.password) return callback(null, { user: auth.username })
      const error = Object.assign(new Error("Authentication credentials invalid"), { responseCode: 535 })
      callback(error)
    },
    onRcptTo: (address, _session, callback) => {
      if (refused === undefined || address.address.toLowerCase() !== refused.address) return callback()
      const [, code, text] = /^(\d{3})[ -](.*)$/s.exec(refused.response) ?? [undefined, "450", refused.response]
      callback(Object.assign(new Error(text), { responseCode: Number(code) }))
    },
    onData: (stream, session, callback) => {
      const chunks: Array<Buffer> = []
      stream.on("data", (chunk: Buffer) => chunks.push(chunk))
      stream.on("end", async () => {
        await beforeAccepting?.()
        if (failing > 0) {
          failing -= 1
          return callback(Object.assign(new Error(failText), { responseCode: failCode }))
        }
        const raw = Buffer.concat(chunks)
        const headers = headersOf(raw)
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          headers,
          messageId: headers.get("message-id")
        })
        waiters.splice(0).forEach((wake) => wake())
        callback()
      })
    }
  })
  server.on("error", () => {})
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.server.address() as AddressInfo).port
  return {
    host: "127.0.0.1",
    port,
    messages,
    get authAttempts() {
      return authAttempts
    },
    waitFor: async (count, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs
      while (messages.length < count) {
        if (Date.now() > deadline) throw new Error(`the SMTP sink has ${messages.length} message(s), expected ${count}`)
        await new Promise<void>((resolve) => {
          waiters.push(resolve)
          setTimeout(resolve, 200)
        })
      }
      return messages
    },
    failNext: (n, code = 451, text = "Try again later") => {
      failing = n
      failCode = code
      failText = text
    },
    refuseRecipient: (address, response = "450 4.1.2 Recipient address rejected: Domain not found") => {
      refused = address === undefined ? undefined : { address: address.toLowerCase(), response }
    },
    beforeAccepting: (hook) => {
      beforeAccepting = hook
    },
    close: () => new Promise((resolve) => server.close(() => resolve()))
  }
}

export const SmtpSinkResource = (options?: Parameters<typeof startSmtpSink>[0]) =>
  Effect.acquireRelease(Effect.promise(() => startSmtpSink(options)), (sink) => Effect.promise(() => sink.close()))

/** An SMTP sink for a suite, for `layer(SmtpSinkServer.layer(options))`. */
export class SmtpSinkServer extends Context.Tag("test/SmtpSinkServer")<SmtpSinkServer, SmtpSink>() {
  static readonly layer = (options?: Parameters<typeof startSmtpSink>[0]) => Layer.scoped(SmtpSinkServer, SmtpSinkResource(options))
}
