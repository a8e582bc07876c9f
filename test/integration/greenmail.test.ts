import { execFile } from "node:child_process"
import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AddressInfo } from "node:net"
import { promisify } from "node:util"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Layer, Redacted, Scope } from "effect"
import { SMTPServer } from "smtp-server"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { lockKey } from "../../src/mailbox/Leadership.js"
import { Mailer, MailerLive } from "../../src/replies/Mailer.js"
import { runCli } from "../support/cli.js"
import type { Dovecot } from "../support/dovecot.js"
import { startDovecot } from "../support/dovecot.js"
import type { GreenMail } from "../support/greenmail.js"
import { startGreenMail } from "../support/greenmail.js"
import { mail } from "../support/mails.js"
import { createDatabase, query } from "../support/postgres.js"
import { configLayer } from "../unit/layers.js"

let greenmail: GreenMail
let db: Awaited<ReturnType<typeof createDatabase>>
let certDir: string
let certificate: string
/** A self-signed certificate for localhost, with its key, for the servers that offer STARTTLS. */
let localhostCert: string
let localhostKey: string

beforeAll(async () => {
  greenmail = await startGreenMail()
  db = await createDatabase("greenmail")
  certDir = await mkdtemp(join(tmpdir(), "mailroom-greenmail-ca-"))
  certificate = join(certDir, "greenmail.pem")
  await writeFile(certificate, await greenmail.certificatePem())
  localhostCert = join(certDir, "localhost.pem")
  localhostKey = join(certDir, "localhost.key")
  await promisify(execFile)("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost", "-keyout", localhostKey, "-out", localhostCert
  ])
})

afterAll(async () => {
  await greenmail?.stop()
  await db?.drop()
  if (certDir) await rm(certDir, { recursive: true, force: true })
})

const imapEnv = (port: number, tls: string, extra: Record<string, string> = {}) => ({
  GMAIL_SENDER_EMAIL: greenmail.user,
  GMAIL_SENDER_PASSWORD: greenmail.password,
  IMAP_HOST: greenmail.host,
  IMAP_PORT: String(port),
  IMAP_TLS: tls,
  AGENT: "off",
  DATABASE_URL: db.url,
  ...extra
})

const count = async (table: string, where = "true") =>
  Number((await query<{ n: string }>(db.url, `SELECT count(*) AS n FROM ${table} WHERE ${where}`))[0]!.n)

/** Takes the mailbox's advisory lock on a session of its own at `url`; resolves to its release. */
const holdLock = async (url: string, applicationName: string) => {
  const scope = Effect.runSync(Scope.make())
  await Effect.runPromise(
    Effect.flatMap(PgClient.PgClient, (sql) =>
      Effect.flatMap(sql.reserve, (connection) =>
        connection.execute("SELECT pg_advisory_lock($1::bigint)", [lockKey("INBOX")], undefined))).pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1, applicationName })),
        Scope.extend(scope)
      )
  )
  return () => Effect.runPromise(Scope.close(scope, Exit.void))
}

/** The one line a failed run prints, without the log lines before it. */
const lastLine = (stderr: string) => stderr.trim().split("\n").at(-1) ?? ""

describe("GreenMail as the mailbox", () => {
  it("records appended mail exactly once over a plain connection, and a second run adds nothing", async () => {
    const uids = await greenmail.append([
      mail({ subject: "Cannot log in", messageId: "<gm-1@customer.test>" }),
      mail({ subject: "Invoice question", messageId: "<gm-2@customer.test>" }),
      mail({ subject: "Re: Cannot log in", messageId: "<gm-3@customer.test>", inReplyTo: "<gm-1@customer.test>" })
    ])
    expect(uids).toHaveLength(3)

    const first = await runCli(["--once"], imapEnv(greenmail.imapPort, "false"))
    expect(first.code, first.stderr).toBe(0)
    expect(first.stderr).toContain(`Connected to IMAP: ${greenmail.user}`)
    expect(await count("events", "type = 'EmailReceived'")).toBe(3)
    expect(await count("messages")).toBe(3)
    expect(await count("tickets")).toBe(2)

    const eventsBefore = await count("events")
    const second = await runCli(["--once"], imapEnv(greenmail.imapPort, "false"))
    expect(second.code, second.stderr).toBe(0)
    expect(await count("events")).toBe(eventsBefore)
    expect(await count("tickets")).toBe(2)
  })

  it("status ignores the same advisory lock held in another database of the server", async () => {
    const other = await createDatabase("greenmail_other")
    const releases: Array<() => Promise<void>> = []
    try {
      releases.push(await holdLock(other.url, "stranger"))
      const status = await runCli(["status"], imapEnv(greenmail.imapPort, "false"))
      expect(status.code, status.stderr).toBe(0)
      expect(status.stdout).toMatch(/lock holder\s+nobody/)

      // the same lock in this database does show: the query still finds a holder
      releases.push(await holdLock(db.url, "holder"))
      const held = await runCli(["status"], imapEnv(greenmail.imapPort, "false"))
      expect(held.stdout).toMatch(/lock holder\s+holder \(pid \d+/)
    } finally {
      for (const release of releases) await release()
      await other.drop()
    }
  })
})

describe("IMAP_TLS against a real server's plain and TLS ports", () => {
  it("IMAP_TLS=true on the plain port: one line saying it does not speak TLS from the first byte", async () => {
    const run = await runCli(["--once"], imapEnv(greenmail.imapPort, "true"))
    expect(run.code).toBe(1)
    expect(lastLine(run.stderr)).toContain(
      `port ${greenmail.imapPort} of 127.0.0.1 does not speak TLS from the first byte: set IMAP_TLS=starttls or false`
    )
  })

  it("IMAP_TLS=starttls on a port without STARTTLS: one line, and no plain login", async () => {
    const run = await runCli(["--once"], imapEnv(greenmail.imapPort, "starttls"))
    expect(run.code).toBe(1)
    expect(run.stderr).not.toContain("Connected to IMAP")
    expect(lastLine(run.stderr)).toContain("does not offer STARTTLS: set IMAP_TLS=true with its TLS port (993)")
  })

  it("IMAP_TLS=false on the IMAPS port: says it speaks TLS within about IMAP_CONNECT_TIMEOUT", async () => {
    const started = Date.now()
    const run = await runCli(["--once"], imapEnv(greenmail.imapsPort, "false", { IMAP_CONNECT_TIMEOUT: "3" }))
    const elapsed = Date.now() - started
    expect(run.code).toBe(1)
    expect(lastLine(run.stderr)).toContain(`port ${greenmail.imapsPort} of 127.0.0.1 speaks TLS: set IMAP_TLS=true`)
    expect(elapsed).toBeLessThan(10_000)
  })

  it("IMAP_TLS=true on the IMAPS port with its self-signed certificate: names NODE_EXTRA_CA_CERTS", async () => {
    const run = await runCli(["--once"], imapEnv(greenmail.imapsPort, "true"))
    expect(run.code).toBe(1)
    expect(lastLine(run.stderr)).toContain("(DEPTH_ZERO_SELF_SIGNED_CERT): start mailroom with NODE_EXTRA_CA_CERTS=/path/to/ca.pem")
  })

  it("trusting that certificate, the mismatched name is the remaining problem, said in one line", async () => {
    // GreenMail's certificate names no host (its CN is a sentence), so 127.0.0.1 cannot match it
    const run = await runCli(["--once"], imapEnv(greenmail.imapsPort, "true", { NODE_EXTRA_CA_CERTS: certificate }))
    expect(run.code).toBe(1)
    expect(lastLine(run.stderr)).toContain(
      "presents a certificate that does not name 127.0.0.1 (ERR_TLS_CERT_ALTNAME_INVALID): set IMAP_HOST to a name the certificate is for"
    )
  })
})

describe("SMTP_TLS against a real server's plain and TLS ports", () => {
  const send = (port: number, tls: string, extra: Record<string, string> = {}) =>
    Effect.runPromise(
      Effect.flatMap(Mailer, (mailer) =>
        mailer.send({
          messageId: `<reply-${port}-${tls}@example.com>`,
          from: greenmail.user,
          to: { name: "Ada", address: greenmail.user },
          subject: "Re: Cannot log in",
          text: "Use Forgot password.",
          inReplyTo: null,
          references: []
        })).pipe(
          Effect.either,
          Effect.provide(MailerLive.pipe(
            Layer.provide(configLayer({
              GMAIL_SENDER_EMAIL: greenmail.user,
              GMAIL_SENDER_PASSWORD: greenmail.password,
              SMTP_HOST: greenmail.host,
              SMTP_PORT: String(port),
              SMTP_TLS: tls,
              ...extra
            }))
          ))
        )
    )

  it("SMTP_TLS=false never upgrades, though the server offers STARTTLS with a self-signed certificate; starttls then names NODE_EXTRA_CA_CERTS", async () => {
    const server = new SMTPServer({
      key: await readFile(localhostKey),
      cert: await readFile(localhostCert),
      allowInsecureAuth: true,
      onAuth: (_auth, _session, callback) => callback(null, { user: greenmail.user }),
      onData: (stream, _session, callback) => {
        stream.resume()
        stream.on("end", () => callback())
      }
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
    const port = (server.server.address() as AddressInfo).port
    try {
      const plain = await send(port, "false")
      expect(plain._tag, JSON.stringify(plain)).toBe("Right")
      const upgraded = await send(port, "starttls")
      expect(upgraded._tag === "Left" && upgraded.left.message).toContain("certificate itself when it is self-signed)")
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  it("SMTP_TLS=false on the plain port sends", async () => {
    const result = await send(greenmail.smtpPort, "false")
    expect(result._tag, JSON.stringify(result)).toBe("Right")
  })

  it("SMTP_TLS=true on the plain port, starttls without STARTTLS, false on the TLS port, true with a self-signed certificate: one line each", async () => {
    const plain = await send(greenmail.smtpPort, "true")
    expect(plain._tag === "Left" && plain.left.message).toBe(
      `port ${greenmail.smtpPort} of 127.0.0.1 does not speak TLS from the first byte: set SMTP_TLS=starttls or false`
    )
    const starttls = await send(greenmail.smtpPort, "starttls")
    expect(starttls._tag === "Left" && starttls.left.message).toContain("does not offer STARTTLS: set SMTP_TLS=true with its TLS port (465)")
    const started = Date.now()
    const silent = await send(greenmail.smtpsPort, "false", { SMTP_TIMEOUT: "2" })
    expect(silent._tag === "Left" && silent.left.message).toContain(`port ${greenmail.smtpsPort} of 127.0.0.1 speaks TLS: set SMTP_TLS=true`)
    expect(Date.now() - started).toBeLessThan(8_000)
    const untrusted = await send(greenmail.smtpsPort, "true")
    expect(untrusted._tag === "Left" && untrusted.left.message).toContain("NODE_EXTRA_CA_CERTS=/path/to/ca.pem")
  })
})

describe("IMAP_TLS against Dovecot offering STARTTLS with a self-signed certificate for localhost", () => {
  let dovecot: Dovecot
  let starttlsDb: Awaited<ReturnType<typeof createDatabase>>

  beforeAll(async () => {
    dovecot = await startDovecot()
    // the helper's Dovecot runs without TLS; a later setting wins over its `ssl = no`
    await appendFile(join(dovecot.baseDir, "dovecot.conf"), `ssl = yes\nssl_cert = <${localhostCert}\nssl_key = <${localhostKey}\n`)
    // The helper's own imapflow clients upgrade whenever STARTTLS is offered; only they run while
    // this is set, the mailroom under test is a child process with an environment of its own.
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0"
    try {
      await dovecot.restart()
      await dovecot.append([mail({ subject: "Over STARTTLS", messageId: "<dv-1@customer.test>" })])
    } finally {
      delete process.env.NODE_TLS_REJECT_UNAUTHORIZED
    }
    starttlsDb = await createDatabase("starttls")
  })

  afterAll(async () => {
    await dovecot?.stop()
    await starttlsDb?.drop()
  })

  const env = (tls: string, extra: Record<string, string> = {}) => ({
    GMAIL_SENDER_EMAIL: dovecot.user,
    GMAIL_SENDER_PASSWORD: dovecot.password,
    IMAP_HOST: dovecot.host,
    IMAP_PORT: String(dovecot.port),
    IMAP_TLS: tls,
    AGENT: "off",
    DATABASE_URL: starttlsDb.url,
    ...extra
  })

  it("IMAP_TLS=starttls with the certificate untrusted: names NODE_EXTRA_CA_CERTS", async () => {
    const run = await runCli(["--once"], env("starttls"))
    expect(run.code).toBe(1)
    expect(lastLine(run.stderr)).toContain("(DEPTH_ZERO_SELF_SIGNED_CERT): start mailroom with NODE_EXTRA_CA_CERTS=/path/to/ca.pem")
  })

  it("IMAP_TLS=starttls with the certificate trusted but IMAP_HOST an address: names localhost", async () => {
    const run = await runCli(["--once"], env("starttls", { NODE_EXTRA_CA_CERTS: localhostCert }))
    expect(run.code).toBe(1)
    expect(lastLine(run.stderr)).toContain("presents a certificate for localhost, not for 127.0.0.1 (ERR_TLS_CERT_ALTNAME_INVALID): set IMAP_HOST to localhost")
  })

  it("IMAP_TLS=false never upgrades, though the server offers STARTTLS with a certificate that would fail", async () => {
    const run = await runCli(["--once"], env("false"))
    expect(run.code, run.stderr).toBe(0)
    expect(Number((await query<{ n: string }>(starttlsDb.url, "SELECT count(*) AS n FROM messages"))[0]!.n)).toBe(1)
  })

  it("IMAP_TLS=starttls with the certificate trusted and IMAP_HOST=localhost: logs in over TLS", async () => {
    const run = await runCli(["--once"], env("starttls", { NODE_EXTRA_CA_CERTS: localhostCert, IMAP_HOST: "localhost" }))
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toContain(`Connected to IMAP: ${dovecot.user}`)
  })
})
