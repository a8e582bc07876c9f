import { Data, Duration, Schedule } from "effect"

/** Wrong password, revoked app password or IMAP disabled: retrying fast would lock the account. */
export class AuthenticationFailed extends Data.TaggedError("AuthenticationFailed")<{
  readonly user: string
  readonly serverText: string
}> {
  override get message() {
    return `IMAP login failed for ${this.user} (${this.serverText || "Invalid credentials"}): check GMAIL_SENDER_PASSWORD; for Gmail use an app password and make sure IMAP is enabled`
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
    return `IMAP connection to ${this.host} failed: ${this.reason}`
  }
}

/** The configured mailbox does not exist on the server. */
export class MailboxNotFound extends Data.TaggedError("MailboxNotFound")<{ readonly mailbox: string }> {
  override get message() {
    return `the mailbox "${this.mailbox}" does not exist on the IMAP server: check IMAP_MAILBOX`
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

export type ImapError = AuthenticationFailed | Throttled | ConnectionLost | MailboxNotFound | ImapProtocolError

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

const throttlePattern = /THROTTLED|too many (simultaneous )?(connections|login)|rate limit|try again later/i

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
  context: { readonly host: string; readonly user: string; readonly mailbox?: string; readonly command: string }
): ImapError => {
  const error = (typeof cause === "object" && cause !== null ? cause : { message: String(cause) }) as ImapFlowLikeError
  const serverText = (error.responseText ?? error.message ?? "").replace(/[\r\n]+/g, " ").trim()
  if (error.code === "ETHROTTLE" || throttlePattern.test(serverText) || error.serverResponseCode === "THROTTLED") {
    return new Throttled({
      serverText,
      retryAfter: error.throttleReset ? Duration.millis(error.throttleReset) : undefined
    })
  }
  if (error.authenticationFailed || error.serverResponseCode === "AUTHENTICATIONFAILED") {
    return new AuthenticationFailed({ user: context.user, serverText })
  }
  if (error.mailboxMissing || error.serverResponseCode === "NONEXISTENT") {
    return new MailboxNotFound({ mailbox: context.mailbox ?? "" })
  }
  if (error.responseText !== undefined || error.code?.startsWith("Parser") || error.code === "InvalidResponse") {
    return new ImapProtocolError({ command: error.command ?? context.command, serverText })
  }
  return new ConnectionLost({ host: context.host, reason: [error.code, error.message].filter(Boolean).join(" ") })
}
