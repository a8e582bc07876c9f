import { Duration, Effect, Redacted } from "effect"
import { ImapFlow } from "imapflow"
import type { ImapConfig } from "../config/Config.js"
import { classify, ConnectionLost } from "./ImapErrors.js"

/** A stalled server must not hang the pipeline: past the timeout the command counts as a lost connection. */
export const attemptOn = (config: ImapConfig) => <A>(command: string, run: () => Promise<A>, mailbox?: string) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => classify(cause, { host: config.host, port: config.port, tls: config.tls, user: config.user, auth: config.auth, command, ...(mailbox ? { mailbox } : {}) })
  }).pipe(
    Effect.timeoutFail({
      duration: config.commandTimeout,
      onTimeout: () => new ConnectionLost({ host: config.host, reason: `${command} timed out after ${Duration.format(config.commandTimeout)}` })
    })
  )

/** What imapflow logs in with: a password, or an OAuth2 access token (XOAUTH2, or OAUTHBEARER where offered). */
export type Credentials = { readonly user: string; readonly pass: string } | { readonly user: string; readonly accessToken: string }

/**
 * SELECT INBOX without a LIST and an LSUB of it first. imapflow lists a folder it has not yet listed
 * on the connection, for metadata mailroom does not read (delimiter, special use, subscription); INBOX
 * is on every server (RFC 3501), so a login to the usual folder spares two round trips. Any other
 * folder is listed as before: a namespace may prefix its name. `folders` is imapflow's cache of what
 * LIST said, not in its types: should it go, SELECT lists INBOX again (the login test says so).
 */
const inboxListed = (client: ImapFlow) => {
  const folders = (client as unknown as { readonly folders?: unknown }).folders
  if (folders instanceof Map && !folders.has("INBOX")) folders.set("INBOX", { path: "INBOX" })
}

/** A logged-in connection to the server of `config`, logged out when the scope closes. */
export const login = (config: ImapConfig, credentials: Credentials) =>
  Effect.gen(function*() {
    const client = new ImapFlow({
      host: config.host,
      port: config.port,
      secure: config.tls === true,
      // imapflow upgrades whenever the server offers STARTTLS unless told not to, and then verifies the certificate.
      doSTARTTLS: config.tls === "starttls",
      auth: credentials,
      logger: false,
      connectionTimeout: Duration.toMillis(config.connectTimeout),
      greetingTimeout: Duration.toMillis(config.connectTimeout),
      autoIdleDelay: 150,
      maxIdleTime: 25 * 60 * 1000,
      missingIdleCommand: "STATUS",
      // No ENABLE after login: mailroom reads no mod-sequence (CONDSTORE) and needs no UTF-8 folder
      // names (imapflow writes modified UTF-7 without it), so each login spares that round trip.
      disableAutoEnable: true,
      clientInfo: { name: "mailroom" }
    })
    // imapflow re-emits socket errors; without a listener Node would crash the process.
    client.on("error", () => {})
    yield* Effect.acquireRelease(
      attemptOn(config)("LOGIN", () => client.connect()),
      () =>
        Effect.tryPromise(() => client.logout()).pipe(
          Effect.timeout("5 seconds"),
          Effect.ignore,
          Effect.ensuring(Effect.sync(() => client.close()))
        )
    ).pipe(Effect.withSpan("Imap.connect", { attributes: { "server.address": config.host, "server.port": config.port } }))
    inboxListed(client)
    return client
  })

/** The password login of `config` (MAILBOX_AUTH=password). */
export const passwordCredentials = (config: ImapConfig): Credentials => ({ user: config.user, pass: Redacted.value(config.password) })
