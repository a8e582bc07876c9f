import { SmtpConfig } from "../../src/config/Replies.js"
import { describe, expect, it } from "@effect/vitest"
import { createServer } from "node:net"
import type { AddressInfo, Server, Socket } from "node:net"
import { ConfigProvider, Effect } from "effect"
import { ImapConfig } from "../../src/config/Config.js"
import { Imap, ImapLive } from "../../src/mailbox/Imap.js"
import { classify, TlsFailed } from "../../src/mailbox/ImapErrors.js"
import { classifySmtp } from "../../src/replies/Mailer.js"
import { configLayer } from "./layers.js"

const imap = { host: "imap.example.net", port: 993, tls: true, user: "support@example.com", command: "LOGIN" } as const
const smtp = { host: "smtp.example.net", port: 465, tls: true, user: "support@example.com", from: "support@example.com", to: "ada@customer.test" } as const

const load = <A, E>(config: Effect.Effect<A, E>, env: Record<string, string>) =>
  config.pipe(
    Effect.withConfigProvider(
      ConfigProvider.fromMap(new Map(Object.entries({ GMAIL_SENDER_EMAIL: "a@b.test", GMAIL_SENDER_PASSWORD: "pw", ...env })))
    )
  )

/** Node's own error for an untrusted or mismatched certificate, as tls.connect emits it. */
const certificateError = (code: string, message: string, extra: object = {}) => Object.assign(new Error(message), { code }, extra)

describe("IMAP_TLS and SMTP_TLS", () => {
  it.effect("take true, starttls and false, and the spellings Config.boolean took", () =>
    Effect.gen(function*() {
      for (const [text, mode] of [["true", true], ["starttls", "starttls"], ["STARTTLS", "starttls"], ["false", false], ["yes", true], ["on", true], ["1", true], ["no", false], ["off", false], ["0", false]] as const) {
        expect((yield* load(ImapConfig, { IMAP_TLS: text })).tls).toBe(mode)
        expect((yield* load(SmtpConfig, { SMTP_TLS: text })).tls).toBe(mode)
      }
      expect((yield* load(ImapConfig, {})).tls).toBe(true)
      expect((yield* load(SmtpConfig, {})).tls).toBe(true)
      const error = yield* Effect.flip(load(ImapConfig, { IMAP_TLS: "maybe" }))
      expect(String(error)).toMatch(/IMAP_TLS.*Expected true, starttls or false/)
    }))
})

describe("TLS failures as one line", () => {
  it("names NODE_EXTRA_CA_CERTS for a certificate from an unknown issuer, over IMAP and SMTP", () => {
    for (const code of ["DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_VERIFY_LEAF_SIGNATURE"]) {
      const error = classify(certificateError(code, "self-signed certificate"), imap)
      expect(error).toBeInstanceOf(TlsFailed)
      expect(error.message).toContain("NODE_EXTRA_CA_CERTS=/path/to/ca.pem")
      expect(error.message).toContain(code)
      expect(error.message).toContain("port 993 of imap.example.net")
      // nodemailer puts its own code first and keeps Node's in originalCode
      const mailer = classifySmtp({ code: "ESOCKET", originalCode: code, message: "self-signed certificate" }, smtp)
      expect(mailer._tag).toBe("TlsFailed")
      expect(mailer.message).toContain("NODE_EXTRA_CA_CERTS=/path/to/ca.pem")
      expect(mailer.message).toContain("SMTP server on port 465 of smtp.example.net")
    }
    // after STARTTLS nodemailer keeps only the message
    const upgraded = classifySmtp({ code: "ETLS", message: "Error initiating TLS - self-signed certificate in certificate chain", command: "STARTTLS" }, smtp)
    expect(upgraded.message).toContain("NODE_EXTRA_CA_CERTS=")
  })

  it("says an expired certificate must be renewed", () => {
    const error = classify(certificateError("CERT_HAS_EXPIRED", "certificate has expired"), imap)
    expect(error._tag === "TlsFailed" && error.reason).toBe("expired")
    expect(error.message).toMatch(/expired certificate \(CERT_HAS_EXPIRED\): it must be renewed on the server/)
  })

  it("names the host names a mismatched certificate is for, so that IMAP_HOST can be set to one", () => {
    const error = classify(
      certificateError("ERR_TLS_CERT_ALTNAME_INVALID", "Hostname/IP does not match certificate's altnames: Host: imap.example.net. is not in the cert's altnames: DNS:mail.example.com, DNS:*.mail.example.com", {
        host: "imap.example.net",
        cert: { subjectaltname: "DNS:mail.example.com, DNS:*.mail.example.com, IP Address:192.0.2.7", subject: { CN: "mail.example.com" } }
      }),
      imap
    )
    expect(error.message).toContain("presents a certificate for mail.example.com, *.mail.example.com, 192.0.2.7, not for imap.example.net")
    expect(error.message).toContain("set IMAP_HOST to one of mail.example.com")
    const single = classify(certificateError("ERR_TLS_CERT_ALTNAME_INVALID", "IP: 127.0.0.1 is not in the cert's list: ", { cert: { subject: { CN: "greenmail" } } }), imap)
    expect(single.message).toContain("set IMAP_HOST to greenmail")
    const mailer = classifySmtp(
      { code: "ETLS", message: "Error initiating TLS - Hostname/IP does not match certificate's altnames: Host: smtp.example.net. is not in the cert's altnames: DNS:smtp.gmail.com" },
      smtp
    )
    expect(mailer.message).toContain("set SMTP_HOST to smtp.gmail.com")
  })

  it("tells a TLS port from a plain one", () => {
    const plainPort = certificateError("ERR_SSL_WRONG_VERSION_NUMBER", "C0B7:error:0A00010B:SSL routines:ssl3_get_record:wrong version number")
    expect(classify(plainPort, imap).message).toBe("port 993 of imap.example.net does not speak TLS from the first byte: set IMAP_TLS=starttls or false")
    expect(classifySmtp({ code: "ESOCKET", originalCode: "ERR_SSL_WRONG_VERSION_NUMBER", message: "wrong version number" }, smtp).message)
      .toBe("port 465 of smtp.example.net does not speak TLS from the first byte: set SMTP_TLS=starttls or false")

    const silent = Object.assign(new Error("Failed to receive greeting from server in required time. Maybe should use TLS?"), { code: "GREETING_TIMEOUT" })
    expect(classify(silent, { ...imap, tls: false }).message).toMatch(/^port 993 of imap\.example\.net speaks TLS: set IMAP_TLS=true/)
    expect(classify(silent, { ...imap, tls: "starttls" })._tag).toBe("TlsFailed")
    // over TLS a missing greeting is a slow server, not a mismatch
    expect(classify(silent, imap)._tag).toBe("ConnectionLost")
    const smtpSilent = Object.assign(new Error("Greeting never received"), { code: "ETIMEDOUT", timeoutType: "GREETING_TIMEOUT" })
    expect(classifySmtp(smtpSilent, { ...smtp, tls: false }).message).toMatch(/^port 465 of smtp\.example\.net speaks TLS: set SMTP_TLS=true/)
    expect(classifySmtp(smtpSilent, smtp)._tag).toBe("SmtpUnavailable")
  })

  it("says when a required STARTTLS is not offered", () => {
    const imapflow = Object.assign(new Error("Server does not support STARTTLS"), { tlsFailed: true })
    expect(classify(imapflow, { ...imap, port: 143, tls: "starttls" }).message)
      .toContain("does not offer STARTTLS: set IMAP_TLS=true with its TLS port (993), or IMAP_TLS=false on a trusted network")
    const nodemailer = { code: "ETLS", command: "STARTTLS", response: "502 5.5.1 Unrecognized command", responseCode: 502, message: "Error upgrading connection with STARTTLS: 502" }
    expect(classifySmtp(nodemailer, { ...smtp, port: 587, tls: "starttls" }).message).toContain("set SMTP_TLS=true with its TLS port (465)")
  })

  it("leaves other failures to the existing errors", () => {
    expect(classify({ code: "ECONNREFUSED", message: "connect ECONNREFUSED" }, imap)._tag).toBe("ConnectionLost")
    expect(classifySmtp({ code: "EAUTH", responseCode: 535, response: "535 no" }, smtp)._tag).toBe("SmtpAuthenticationFailed")
  })
})

/** A loopback TCP server: `onConnection` decides what a client meets. */
const listen = (onConnection: (socket: Socket) => void) =>
  Effect.acquireRelease(
    Effect.async<Server>((resume) => {
      const server = createServer(onConnection)
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.sync(() => server.close())
  )

const connectWith = (port: number, env: Record<string, string>) =>
  Effect.flatMap(Imap, (imap) => imap.connect).pipe(
    Effect.scoped,
    Effect.provide(ImapLive),
    Effect.provide(configLayer({ IMAP_HOST: "127.0.0.1", IMAP_PORT: String(port), ...env })),
    Effect.flip
  )

describe("Imap.connect against a mismatched port", () => {
  it.live("gives up on a silent port after IMAP_CONNECT_TIMEOUT and says it speaks TLS", () =>
    Effect.gen(function*() {
      const sockets: Array<Socket> = []
      const server = yield* listen((socket) => void sockets.push(socket))
      yield* Effect.addFinalizer(() => Effect.sync(() => sockets.forEach((socket) => socket.destroy())))
      const port = (server.address() as AddressInfo).port
      const started = Date.now()
      const error = yield* connectWith(port, { IMAP_TLS: "false", IMAP_CONNECT_TIMEOUT: "1" })
      expect(error.message).toMatch(new RegExp(`^port ${port} of 127\\.0\\.0\\.1 speaks TLS: set IMAP_TLS=true`))
      expect(Date.now() - started).toBeLessThan(15_000) // the 1 s setting, not the 30 s default
    }).pipe(Effect.scoped))

  it.live("says a plain port does not speak TLS from the first byte", () =>
    Effect.gen(function*() {
      const server = yield* listen((socket) => {
        socket.on("error", () => {})
        socket.end("* OK [CAPABILITY IMAP4rev1 STARTTLS] plain server ready\r\n")
      })
      const port = (server.address() as AddressInfo).port
      const error = yield* connectWith(port, { IMAP_TLS: "true", IMAP_CONNECT_TIMEOUT: "5" })
      expect(error.message).toBe(`port ${port} of 127.0.0.1 does not speak TLS from the first byte: set IMAP_TLS=starttls or false`)
    }).pipe(Effect.scoped))
})
