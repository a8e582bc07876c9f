import { describe, expect, it } from "vitest"
import { Duration } from "effect"
import { classify } from "../../src/mailbox/ImapErrors.js"

const context = { host: "imap.test", port: 993, tls: true, user: "support@example.com", mailbox: "INBOX", command: "LOGIN" }

describe("classify", () => {
  it("tells a wrong password, a throttled server, a dropped connection and a missing mailbox apart", () => {
    const auth = classify({ authenticationFailed: true, responseText: "[AUTHENTICATIONFAILED] Invalid credentials (Failure)" }, context)
    expect(auth._tag).toBe("AuthenticationFailed")
    expect(auth.message).toContain("check GMAIL_SENDER_PASSWORD")

    const throttled = classify({ responseText: "[THROTTLED] Account exceeded command or bandwidth limits" }, context)
    expect(throttled._tag).toBe("Throttled")
    const logins = classify({ authenticationFailed: true, responseText: "Too many login attempts, please try again later" }, context)
    expect(logins._tag).toBe("Throttled")
    const asked = classify({ code: "ETHROTTLE", message: "throttled", throttleReset: 12_000 }, context)
    expect(asked._tag === "Throttled" && asked.retryAfter && Duration.toMillis(asked.retryAfter)).toBe(12_000)

    // Gmail past its daily IMAP download allowance, without the [THROTTLED] code.
    expect(classify({ responseText: "[ALERT] Account exceeded command or bandwidth limits. (Failure)", serverResponseCode: "ALERT", command: "UID FETCH" }, context)._tag)
      .toBe("Throttled")
    expect(classify({ responseText: "[UNAVAILABLE] Temporary System Error", serverResponseCode: "UNAVAILABLE", command: "SELECT" }, context))
      .toMatchObject({ _tag: "ConnectionLost", reason: "[UNAVAILABLE] Temporary System Error" })
    expect(classify({ code: "ECONNRESET", message: "read ECONNRESET" }, context)._tag).toBe("ConnectionLost")
    expect(classify({ code: "NoConnection", message: "Connection not available" }, context)._tag).toBe("ConnectionLost")
    expect(classify({ mailboxMissing: true, responseText: "Mailbox doesn't exist" }, context)._tag).toBe("MailboxNotFound")
    expect(classify({ responseText: "BAD Error in IMAP command", command: "UID FETCH" }, context)._tag).toBe("ImapProtocolError")
  })

  it("a refused login names what to fix: the password, the OAuth2 grant, or Microsoft 365's access to the mailbox", () => {
    const gmail = { authenticationFailed: true, responseText: "[AUTHENTICATIONFAILED] Invalid credentials (Failure)", serverResponseCode: "AUTHENTICATIONFAILED" }
    expect(classify(gmail, context).message).toContain("check GMAIL_SENDER_PASSWORD")
    // Microsoft's servers answer a password with a bare "AUTHENTICATE failed.": basic authentication is off there.
    const microsoft = classify({ authenticationFailed: true, responseText: "AUTHENTICATE failed." }, { ...context, host: "outlook.office365.com" }).message
    expect(microsoft).toContain("take no password over IMAP (basic authentication is off): set MAILBOX_AUTH=oauth2")
    expect(classify({ authenticationFailed: true, responseText: "AUTHENTICATE failed." }, { ...context, host: "outlook.office365.com", auth: "oauth2" }).message)
      .toContain("refused the OAuth2 token")
    const token = classify(gmail, { ...context, auth: "oauth2" }).message
    expect(token).toContain("refused the OAuth2 token: run `mailroom auth` again signed in as support@example.com")
    expect(token).not.toContain("GMAIL_SENDER_PASSWORD")
    // Microsoft 365 says OK to AUTHENTICATE, then BAD to the next command (quoted from imapflow's issue #314).
    const notConnected = classify({ responseText: "User is authenticated but not connected.", command: "SELECT" }, { ...context, auth: "oauth2", command: "SELECT" })
    expect(notConnected._tag).toBe("AuthenticationFailed")
    expect(notConnected.message).toContain("must be support@example.com itself or have Full Access to it, and IMAP must be on for the mailbox")
  })

  it("a connection that could not be made says whether the name or the port is wrong", () => {
    const unknown = classify({ code: "ENOTFOUND", message: "getaddrinfo ENOTFOUND imap.test" }, context)
    expect(unknown._tag).toBe("ConnectionLost")
    expect(unknown.message).toMatch(/the host name does not resolve: check IMAP_HOST \(imap\.host in MAILBOXES_FILE\)$/)
    expect(classify({ code: "ECONNREFUSED", message: "connect ECONNREFUSED 127.0.0.1:1" }, context).message)
      .toMatch(/nothing accepts connections there: check IMAP_HOST and IMAP_PORT/)
    // A connection that dropped once made says nothing of the settings: they were right.
    expect(classify({ code: "ECONNRESET", message: "read ECONNRESET" }, context).message).toBe("IMAP connection to imap.test failed: ECONNRESET read ECONNRESET")
  })

  it("keeps line breaks from the server out of the message", () => {
    const error = classify({ authenticationFailed: true, responseText: "bad\r\nInjected: header" }, context)
    expect(error.message).not.toMatch(/[\r\n]/)
  })
})
