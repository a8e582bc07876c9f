import { Data, Duration, Schedule } from "effect"
import type { TlsMode } from "../config/Config.js"

/** Microsoft 365's answer to a login it accepted for an account that may not open this mailbox. */
const NOT_CONNECTED = /authenticated but not connected/i

/** Microsoft 365's and Outlook.com's servers, which take no password over IMAP or SMTP since they turned basic authentication off. */
const isMicrosoftHost = (host: string) => /(^|\.)(office365|outlook|office)\.com$/i.test(host)

/** What to do about a refused login, by what the server said and how mailroom logged in. */
const loginFix = (user: string, host: string, serverText: string, oauth2: boolean) =>
  NOT_CONNECTED.test(serverText)
    ? `Microsoft 365 accepted the login but will not open the mailbox: the account signed in (with OAuth2, the one that ran \`mailroom auth\`) must be ${user} itself or have Full Access to it, and IMAP must be on for the mailbox`
    : oauth2
    ? `the server refused the OAuth2 token: run \`mailroom auth\` again signed in as ${user}, with the app allowed IMAP (Google: the https://mail.google.com/ scope; Microsoft 365: IMAP.AccessAsUser.All, and IMAP on for the mailbox)`
    : isMicrosoftHost(host)
    ? "Microsoft 365 and Outlook.com take no password over IMAP (basic authentication is off): set MAILBOX_AUTH=oauth2 and run `mailroom auth microsoft`"
    : "check GMAIL_SENDER_PASSWORD; for Gmail use an app password and make sure IMAP is enabled"

/** Wrong password, revoked app password or IMAP disabled: retrying fast would lock the account. */
export class AuthenticationFailed extends Data.TaggedError("AuthenticationFailed")<{
  readonly user: string
  readonly serverText: string
  /** Logged in with an OAuth2 token (MAILBOX_AUTH=oauth2), not a password. */
  readonly oauth2?: boolean
  /** The IMAP server, when known: Microsoft's take no password. */
  readonly host?: string
}> {
  override get message() {
    return `IMAP login failed for ${this.user} (${this.serverText || "Invalid credentials"}): ${loginFix(this.user, this.host ?? "", this.serverText, this.oauth2 ?? false)}`
  }
}

/** The server asks us to slow down: Gmail's [THROTTLED], too many connections or logins. */
export class Throttled extends Data.TaggedError("Throttled")<{
  readonly serverText: string
  readonly retryAfter: Duration.Duration | undefined
}> {
  override get message() {
    return `the IMAP server is throttling this account (${this.serverText}); backing off`
  }
}

/** The connection dropped, timed out or could not be made. */
export class ConnectionLost extends Data.TaggedError("ConnectionLost")<{
  readonly host: string
  readonly reason: string
}> {
  override get message() {
    return `IMAP connection to ${this.host} failed: ${this.reason}${connectionHint(this.reason)}`
  }
}

/** What to check when the connection could not be made at all: the name, or the port. */
const connectionHint = (reason: string): string =>
  /\b(ENOTFOUND|EAI_AGAIN)\b/.test(reason)
    ? "; the host name does not resolve: check IMAP_HOST (imap.host in MAILBOXES_FILE)"
    : /\bECONNREFUSED\b/.test(reason)
    ? "; nothing accepts connections there: check IMAP_HOST and IMAP_PORT (imap.host and imap.port in MAILBOXES_FILE)"
    : ""

/** The configured mailbox does not exist on the server. */
export class MailboxNotFound extends Data.TaggedError("MailboxNotFound")<{ readonly mailbox: string }> {
  override get message() {
    return `the mailbox "${this.mailbox}" does not exist on the IMAP server: check IMAP_MAILBOX (folders in MAILBOXES_FILE)`
  }
}

/** The server answered something we do not understand: a bug here or there, not worth a fast retry. */
export class ImapProtocolError extends Data.TaggedError("ImapProtocolError")<{
  readonly command: string
  readonly serverText: string
}> {
  override get message() {
    return `IMAP ${this.command} failed: ${this.serverText}`
  }
}

/** What stands between us and a TLS session; each needs a changed setting or a fixed server, none a fast retry. */
export type TlsProblem = "unknown-issuer" | "expired" | "name-mismatch" | "speaks-tls" | "no-tls" | "no-starttls"

/**
 * The IMAP or SMTP server and our TLS settings do not fit together. Retried as slowly as a wrong
 * password: every attempt would fail the same way until someone changes a setting or the server.
 */
export class TlsFailed extends Data.TaggedError("TlsFailed")<{
  readonly protocol: "IMAP" | "SMTP"
  readonly host: string
  readonly port: number
  readonly reason: TlsProblem
  /** For a name mismatch: the names the certificate is for. */
  readonly names: ReadonlyArray<string>
  /** What Node or OpenSSL called it, e.g. DEPTH_ZERO_SELF_SIGNED_CERT. */
  readonly code: string
}> {
  override get message() {
    const server = `the ${this.protocol} server on port ${this.port} of ${this.host}`
    const tls = `${this.protocol}_TLS`
    switch (this.reason) {
      case "unknown-issuer":
        return `${server} presents a certificate from an issuer this machine does not trust (${this.code}): start mailroom with NODE_EXTRA_CA_CERTS=/path/to/ca.pem, the PEM file of that issuer (or of the certificate itself when it is self-signed)`
      case "expired":
        return `${server} presents an expired certificate (${this.code}): it must be renewed on the server, or this machine's clock is wrong`
      case "name-mismatch":
        return this.names.length > 0
          ? `${server} presents a certificate for ${this.names.join(", ")}, not for ${this.host} (${this.code}): set ${this.protocol}_HOST to ${this.names.length === 1 ? "" : "one of "}${this.names.join(", ")}`
          : `${server} presents a certificate that does not name ${this.host} (${this.code}): set ${this.protocol}_HOST to a name the certificate is for`
      case "speaks-tls":
        return `port ${this.port} of ${this.host} speaks TLS: set ${tls}=true (no ${this.protocol} greeting came over a plain connection; if the server is only slow, raise ${this.protocol === "IMAP" ? "IMAP_CONNECT_TIMEOUT" : "SMTP_TIMEOUT"})`
      case "no-tls":
        return `port ${this.port} of ${this.host} does not speak TLS from the first byte: set ${tls}=starttls or false`
      case "no-starttls":
        return `${server} does not offer STARTTLS: set ${tls}=true with its TLS port (${this.protocol === "IMAP" ? 993 : 465}), or ${tls}=false on a trusted network`
    }
  }
}

/**
 * The OAuth2 token endpoint refused the refresh token (invalid_grant: revoked, expired, password
 * changed) or the client itself (invalid_client and the like). Only a person can fix it.
 */
export class OAuth2Refused extends Data.TaggedError("OAuth2Refused")<{
  readonly account: string
  readonly provider: "google" | "microsoft" | "generic"
  /** The OAuth2 error code, or no_refresh_token / unreadable_token for what mailroom found itself. */
  readonly error: string
  readonly description: string
}> {
  override get message() {
    const again = `run \`mailroom auth ${this.provider} --address ${this.account}\` again`
    const detail = this.description ? ` (${this.error}: ${this.description})` : ` (${this.error})`
    switch (this.error) {
      case "invalid_grant":
        return `the OAuth2 grant for ${this.account} was revoked or has expired${detail}: ${again}`
      case "no_refresh_token":
        return `no OAuth2 refresh token for ${this.account}: run \`mailroom auth ${this.provider} --address ${this.account}\` and set OAUTH2_REFRESH_TOKEN (or MAILROOM_SECRET_KEY to store it)`
      case "unreadable_token":
        return `the stored OAuth2 refresh token for ${this.account} cannot be decrypted (MAILROOM_SECRET_KEY changed, or the row was altered): restore the key or ${again}`
      case "invalid_client":
      case "unauthorized_client":
        return `the OAuth2 token endpoint refused the client${detail}: check OAUTH2_CLIENT_ID, OAUTH2_CLIENT_SECRET and OAUTH2_TENANT`
      default:
        return `the OAuth2 token endpoint refused to refresh the token for ${this.account}${detail}: check the OAUTH2_* settings or ${again}`
    }
  }
}

export type ImapError = AuthenticationFailed | Throttled | ConnectionLost | MailboxNotFound | ImapProtocolError | TlsFailed | OAuth2Refused

/** Hours, not minutes: a refused grant stays refused until someone runs `mailroom auth`. */
export const oauth2Retry = Schedule.exponential("1 hour", 2).pipe(Schedule.union(Schedule.spaced("6 hours")))

/** Minutes, doubling, up to an hour: a wrong password must not turn into a login storm. */
export const authenticationRetry = Schedule.exponential("2 minutes", 2).pipe(
  Schedule.union(Schedule.spaced("1 hour"))
)

/** As long as the server asked, else from 30 s doubling up to 15 minutes; jittered. */
export const throttledRetry = Schedule.exponential("30 seconds", 2).pipe(
  Schedule.union(Schedule.spaced("15 minutes")),
  Schedule.jittered
)

/** From a second doubling up to a minute, jittered, so that many instances do not reconnect in step. */
export const connectionRetry = Schedule.exponential("1 second", 2).pipe(
  Schedule.union(Schedule.spaced("1 minute")),
  Schedule.jittered
)

/** Protocol errors and a missing mailbox need a person; retry slowly meanwhile. */
export const protocolRetry = Schedule.spaced("5 minutes")

/** How long each kind of IMAP failure waits before the next try, wherever it is met. */
export const imapRetry = (error: ImapError): Schedule.Schedule<unknown, unknown> => {
  switch (error._tag) {
    case "TlsFailed":
    case "AuthenticationFailed":
      return authenticationRetry
    case "Throttled":
      return error.retryAfter ? Schedule.spaced(Duration.max(error.retryAfter, "5 seconds")).pipe(Schedule.jittered) : throttledRetry
    case "ConnectionLost":
      return connectionRetry
    case "OAuth2Refused":
      return oauth2Retry
    case "MailboxNotFound":
    case "ImapProtocolError":
      return protocolRetry
  }
}

const unknownIssuer = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"
])
const plainPort = new Set(["ERR_SSL_WRONG_VERSION_NUMBER", "ERR_SSL_PACKET_LENGTH_TOO_LONG", "ERR_SSL_UNKNOWN_PROTOCOL"])

interface TlsLikeError {
  readonly code?: string
  /** nodemailer keeps Node's code here and puts its own (ESOCKET) in `code`. */
  readonly originalCode?: string
  readonly message?: string
  readonly timeoutType?: string
  readonly tlsFailed?: boolean
  readonly command?: string
  readonly response?: string
  readonly cert?: { readonly subjectaltname?: string; readonly subject?: { readonly CN?: string | ReadonlyArray<string> } }
}

/** "DNS:mail.example.com, IP Address:10.0.0.1" as Node reports a certificate's subjectAltName. */
const altNames = (list: string): Array<string> =>
  list.split(/,\s*/).map((entry) => entry.replace(/^(DNS|IP Address|IP):/i, "").trim()).filter((name) => name.length > 0)

/** Host names only: a test certificate's CN can be a sentence, which no IMAP_HOST could be set to. */
const hostLike = (names: ReadonlyArray<string>): Array<string> => names.filter((name) => /^[\w*.:-]+$/.test(name))

const certificateNames = (error: TlsLikeError): Array<string> => {
  if (error.cert?.subjectaltname) return hostLike(altNames(error.cert.subjectaltname))
  const common = error.cert?.subject?.CN
  if (common) return hostLike(typeof common === "string" ? [common] : [...common])
  // nodemailer's STARTTLS path keeps only the message: "... is not in the cert's altnames: DNS:a, DNS:b".
  const listed = (error.message ?? "").match(/cert's altnames: (.*)$/m)?.[1]
  return listed ? hostLike(altNames(listed)) : []
}

/**
 * A TLS failure that a setting can fix, from imapflow, nodemailer or the socket under them; undefined
 * for anything else. Only a plain connection (tls false or starttls) that waited for a greeting in
 * vain is taken for a TLS port: a server that speaks first, as IMAP and SMTP servers do, is otherwise
 * silent only when it waits for a ClientHello.
 */
export const tlsProblem = (
  cause: unknown,
  context: { readonly protocol: "IMAP" | "SMTP"; readonly host: string; readonly port: number; readonly tls: TlsMode }
): TlsFailed | undefined => {
  if (typeof cause !== "object" || cause === null) return undefined
  const error = cause as TlsLikeError
  const codes = [error.originalCode, error.code].filter((code): code is string => code !== undefined)
  const text = error.message ?? ""
  const failed = (reason: TlsProblem, code: string, names: ReadonlyArray<string> = []) =>
    new TlsFailed({ protocol: context.protocol, host: context.host, port: context.port, reason, names, code })
  const known = codes.find((code) => unknownIssuer.has(code))
  if (known || /self[- ]signed certificate|unable to verify the first certificate|unable to get (local )?issuer certificate/i.test(text)) {
    return failed("unknown-issuer", known ?? "unknown issuer")
  }
  if (codes.includes("CERT_HAS_EXPIRED") || /certificate has expired/i.test(text)) return failed("expired", "CERT_HAS_EXPIRED")
  if (codes.includes("ERR_TLS_CERT_ALTNAME_INVALID") || /does not match certificate's altnames/i.test(text)) {
    return failed("name-mismatch", "ERR_TLS_CERT_ALTNAME_INVALID", certificateNames(error))
  }
  const plain = codes.find((code) => plainPort.has(code))
  if (plain || /wrong version number|packet length too long/i.test(text)) return failed("no-tls", plain ?? "wrong version number")
  if (context.tls !== true && (codes.includes("GREETING_TIMEOUT") || error.timeoutType === "GREETING_TIMEOUT")) {
    return failed("speaks-tls", "GREETING_TIMEOUT")
  }
  if (
    (error.tlsFailed && /does not support STARTTLS|STARTTLS is not possible/i.test(text)) ||
    (error.code === "ETLS" && error.command === "STARTTLS" && error.response !== undefined)
  ) {
    return failed("no-starttls", "STARTTLS")
  }
  return undefined
}

/** Gmail also says "[ALERT] Account exceeded command or bandwidth limits" past its daily download allowance. */
const throttlePattern = /THROTTLED|too many (simultaneous )?(connections|login)|rate limit|try again later|bandwidth limit/i

interface ImapFlowLikeError {
  readonly code?: string
  readonly message?: string
  readonly responseText?: string
  readonly serverResponseCode?: string
  readonly authenticationFailed?: boolean
  readonly mailboxMissing?: boolean
  readonly throttleReset?: number
  readonly command?: string
}

/** Sorts what imapflow or the socket threw into the error a caller can act on. */
export const classify = (
  cause: unknown,
  context: {
    readonly host: string
    readonly port: number
    readonly tls: TlsMode
    readonly user: string
    readonly mailbox?: string
    readonly command: string
    readonly auth?: "password" | "oauth2"
  }
): ImapError => {
  const tls = tlsProblem(cause, { protocol: "IMAP", host: context.host, port: context.port, tls: context.tls })
  if (tls) return tls
  const error = (typeof cause === "object" && cause !== null ? cause : { message: String(cause) }) as ImapFlowLikeError
  const serverText = (error.responseText ?? error.message ?? "").replace(/[\r\n]+/g, " ").trim()
  if (error.code === "ETHROTTLE" || throttlePattern.test(serverText) || error.serverResponseCode === "THROTTLED") {
    return new Throttled({
      serverText,
      retryAfter: error.throttleReset ? Duration.millis(error.throttleReset) : undefined
    })
  }
  // Microsoft 365 answers BAD to the first command after such a login, and closes the connection.
  if (error.authenticationFailed || error.serverResponseCode === "AUTHENTICATIONFAILED" || NOT_CONNECTED.test(serverText)) {
    return new AuthenticationFailed({ user: context.user, host: context.host, serverText, oauth2: context.auth === "oauth2" })
  }
  // APPEND and COPY answer NO [TRYCREATE] when the target folder does not exist (RFC 3501 6.3.11).
  if (error.mailboxMissing || error.serverResponseCode === "NONEXISTENT" || error.serverResponseCode === "TRYCREATE") {
    return new MailboxNotFound({ mailbox: context.mailbox ?? "" })
  }
  // RFC 5530's [UNAVAILABLE] (Gmail's "Temporary System Error"): the server's fault, gone on a new connection.
  if (error.serverResponseCode === "UNAVAILABLE") return new ConnectionLost({ host: context.host, reason: serverText })
  if (error.responseText !== undefined || error.code?.startsWith("Parser") || error.code === "InvalidResponse") {
    return new ImapProtocolError({ command: error.command ?? context.command, serverText })
  }
  return new ConnectionLost({ host: context.host, reason: [error.code, error.message].filter(Boolean).join(" ") })
}
