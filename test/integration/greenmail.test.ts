import { execFile } from "node:child_process"
import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AddressInfo } from "node:net"
import { promisify } from "node:util"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, layer } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { ImapFlow } from "imapflow"
import { SMTPServer } from "smtp-server"
import { Imap, ImapLive } from "../../src/mailbox/Imap.js"
import { lockKey } from "../../src/mailbox/Leadership.js"
import { Mailer, MailerLive } from "../../src/replies/Mailer.js"
import { runCli } from "../support/cli.js"
import { DovecotResource } from "../support/dovecot.js"
import type { Dovecot } from "../support/dovecot.js"
import type { GreenMail } from "../support/greenmail.js"
import { GreenMailServer } from "../support/greenmail.js"
import { mail } from "../support/mails.js"
import { createDatabase, PostgresServer, query } from "../support/postgres.js"
import { configLayer } from "../unit/layers.js"

/** GreenMail, the suite's database, GreenMail's certificate and one for localhost, and the helpers over them. */
const makeSuite = (greenmail: GreenMail, db: { readonly url: string }, certDir: string) => {
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

  return {
    greenmail,
    db,
    certificate: join(certDir, "greenmail.pem"),
    /** A self-signed certificate for localhost, with its key, for the servers that offer STARTTLS. */
    localhostCert: join(certDir, "localhost.pem"),
    localhostKey: join(certDir, "localhost.key"),
    imapEnv,
    count,
    send
  }
}

class Suite extends Context.Tag("greenmail.test/Suite")<Suite, ReturnType<typeof makeSuite>>() {
  static readonly layer = Layer.scoped(
    Suite,
    Effect.gen(function*() {
      const greenmail = yield* GreenMailServer
      const db = yield* Effect.flatMap(PostgresServer, (postgres) => postgres.freshDatabase("greenmail"))
      const certDir = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-greenmail-ca-"))),
        (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
      )
      const suite = makeSuite(greenmail, db, certDir)
      yield* Effect.promise(async () => {
        await writeFile(suite.certificate, await greenmail.certificatePem())
        await promisify(execFile)("openssl", [
          "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
          "-addext", "subjectAltName=DNS:localhost", "-keyout", suite.localhostKey, "-out", suite.localhostCert
        ])
      })
      return suite
    })
  ).pipe(Layer.provide(Layer.merge(GreenMailServer.layer(), PostgresServer.layer)))
}

/** A Promise-style test body over the suite. */
const withSuite = (body: (suite: Suite["Type"]) => Promise<void>) =>
  Effect.flatMap(Suite, (suite) => Effect.promise(() => body(suite)))

/** Dovecot offering STARTTLS with the self-signed certificate for localhost, and a database of its own. */
class StarttlsDovecot extends Context.Tag("greenmail.test/StarttlsDovecot")<
  StarttlsDovecot,
  { readonly dovecot: Dovecot; readonly starttlsDb: { readonly url: string }; readonly env: (tls: string, extra?: Record<string, string>) => Record<string, string> }
>() {
  static readonly layer = Layer.scoped(
    StarttlsDovecot,
    Effect.gen(function*() {
      const { localhostCert, localhostKey } = yield* Suite
      const dovecot = yield* DovecotResource()
      yield* Effect.promise(async () => {
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
      })
      const starttlsDb = yield* Effect.flatMap(PostgresServer, (postgres) => postgres.freshDatabase("starttls"))
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
      return { dovecot, starttlsDb, env }
    })
  ).pipe(Layer.provide(PostgresServer.layer))
}

/** A Promise-style test body over the suite and the STARTTLS Dovecot. */
const withStarttls = (body: (servers: Suite["Type"] & StarttlsDovecot["Type"]) => Promise<void>) =>
  Effect.flatMap(Effect.all([Suite, StarttlsDovecot]), ([suite, starttls]) => Effect.promise(() => body({ ...suite, ...starttls })))

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

layer(Suite.layer, { excludeTestServices: true })((it) => {
  describe("GreenMail as the mailbox", () => {
    it.effect("records appended mail exactly once over a plain connection, and a second run adds nothing", () =>
      withSuite(async ({ greenmail, imapEnv, count }) => {
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
      }))

    it.effect("finds a sent folder the server does not mark by its usual name (Sent Items)", () =>
      withSuite(async ({ greenmail, imapEnv }) => {
        const client = new ImapFlow({ host: greenmail.host, port: greenmail.imapPort, secure: false, auth: { user: greenmail.user, pass: greenmail.password }, logger: false })
        await client.connect()
        await client.mailboxCreate("Sent Items").catch(() => undefined)
        await client.logout()
        const sent = await Effect.runPromise(Effect.scoped(Effect.flatMap(Effect.flatMap(Imap, (imap) => imap.connect), (session) => session.folder("\\Sent")))
          .pipe(Effect.provide(ImapLive), Effect.provide(configLayer(imapEnv(greenmail.imapPort, "false")))))
        expect(sent).toBe("Sent Items")
      }))

    it.effect("a search in the folder searched last finds mail that arrived in between", () =>
      withSuite(async ({ greenmail, imapEnv }) => {
        const question = `<gm-asked-${Date.now()}@customer.test>`
        const [first, second] = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const session = yield* (yield* Imap).connect
          const first = yield* session.findAnswersTo("INBOX", question)
          yield* Effect.promise(() => greenmail.append([mail({ subject: "Re: asked", inReplyTo: question })]))
          return [first, yield* session.findAnswersTo("INBOX", question)] as const
        })).pipe(Effect.provide(ImapLive), Effect.provide(configLayer(imapEnv(greenmail.imapPort, "false")))))
        expect(first).toEqual([])
        expect(second).toHaveLength(1)
      }))

    it.effect("answers SEARCH LARGER, which sizes a backlog of over a thousand mails, by RFC822.SIZE", () =>
      withSuite(async ({ greenmail, imapEnv }) => {
        const [small, large] = await greenmail.append([mail({ subject: "small" }), mail({ subject: "large", text: "y".repeat(30_000) })])
        const larger = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const session = yield* (yield* Imap).connect
          yield* session.open("INBOX")
          return yield* session.search({ from: small! }, { unseenOnly: false, larger: 25_000 })
        })).pipe(Effect.provide(ImapLive), Effect.provide(configLayer(imapEnv(greenmail.imapPort, "false")))))
        expect(larger).toEqual([large])
      }))

    it.effect("status ignores the same advisory lock held in another database of the server", () =>
      withSuite(async ({ greenmail, db, imapEnv }) => {
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
      }))
  })

  describe("IMAP_TLS against a real server's plain and TLS ports", () => {
    it.effect("IMAP_TLS=true on the plain port: one line saying it does not speak TLS from the first byte", () =>
      withSuite(async ({ greenmail, imapEnv }) => {
        const run = await runCli(["--once"], imapEnv(greenmail.imapPort, "true"))
        expect(run.code).toBe(1)
        expect(lastLine(run.stderr)).toContain(
          `port ${greenmail.imapPort} of 127.0.0.1 does not speak TLS from the first byte: set IMAP_TLS=starttls or false`
        )
      }))

    it.effect("IMAP_TLS=starttls on a port without STARTTLS: one line, and no plain login", () =>
      withSuite(async ({ greenmail, imapEnv }) => {
        const run = await runCli(["--once"], imapEnv(greenmail.imapPort, "starttls"))
        expect(run.code).toBe(1)
        expect(run.stderr).not.toContain("Connected to IMAP")
        expect(lastLine(run.stderr)).toContain("does not offer STARTTLS: set IMAP_TLS=true with its TLS port (993)")
      }))

    it.effect("IMAP_TLS=false on the IMAPS port: says it speaks TLS within about IMAP_CONNECT_TIMEOUT", () =>
      withSuite(async ({ greenmail, imapEnv }) => {
        const started = Date.now()
        const run = await runCli(["--once"], imapEnv(greenmail.imapsPort, "false", { IMAP_CONNECT_TIMEOUT: "3" }))
        const elapsed = Date.now() - started
        expect(run.code).toBe(1)
        expect(lastLine(run.stderr)).toContain(`port ${greenmail.imapsPort} of 127.0.0.1 speaks TLS: set IMAP_TLS=true`)
        // IMAP_CONNECT_TIMEOUT=3 bounded it, not the 30 s default; the process start takes seconds on a busy machine.
        expect(elapsed).toBeLessThan(20_000)
      }))

    it.effect("IMAP_TLS=true on the IMAPS port with its self-signed certificate: names NODE_EXTRA_CA_CERTS", () =>
      withSuite(async ({ greenmail, imapEnv }) => {
        const run = await runCli(["--once"], imapEnv(greenmail.imapsPort, "true"))
        expect(run.code).toBe(1)
        expect(lastLine(run.stderr)).toContain("(DEPTH_ZERO_SELF_SIGNED_CERT): start mailroom with NODE_EXTRA_CA_CERTS=/path/to/ca.pem")
      }))

    it.effect("trusting that certificate, the mismatched name is the remaining problem, said in one line", () =>
      withSuite(async ({ greenmail, certificate, imapEnv }) => {
        // GreenMail's certificate names no host (its CN is a sentence), so 127.0.0.1 cannot match it
        const run = await runCli(["--once"], imapEnv(greenmail.imapsPort, "true", { NODE_EXTRA_CA_CERTS: certificate }))
        expect(run.code).toBe(1)
        expect(lastLine(run.stderr)).toContain(
          "presents a certificate that does not name 127.0.0.1 (ERR_TLS_CERT_ALTNAME_INVALID): set IMAP_HOST to a name the certificate is for"
        )
      }))
  })

  describe("SMTP_TLS against a real server's plain and TLS ports", () => {
    it.effect("SMTP_TLS=false never upgrades, though the server offers STARTTLS with a self-signed certificate; starttls then names NODE_EXTRA_CA_CERTS", () =>
      withSuite(async ({ greenmail, localhostCert, localhostKey, send }) => {
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
      }))

    it.effect("SMTP_TLS=false on the plain port sends", () =>
      withSuite(async ({ greenmail, send }) => {
        const result = await send(greenmail.smtpPort, "false")
        expect(result._tag, JSON.stringify(result)).toBe("Right")
      }))

    it.effect("SMTP_TLS=true on the plain port, starttls without STARTTLS, false on the TLS port, true with a self-signed certificate: one line each", () =>
      withSuite(async ({ greenmail, send }) => {
        const plain = await send(greenmail.smtpPort, "true")
        expect(plain._tag === "Left" && plain.left.message).toBe(
          `port ${greenmail.smtpPort} of 127.0.0.1 does not speak TLS from the first byte: set SMTP_TLS=starttls or false`
        )
        const starttls = await send(greenmail.smtpPort, "starttls")
        expect(starttls._tag === "Left" && starttls.left.message).toContain("does not offer STARTTLS: set SMTP_TLS=true with its TLS port (465)")
        const started = Date.now()
        const silent = await send(greenmail.smtpsPort, "false", { SMTP_TIMEOUT: "2" })
        expect(silent._tag === "Left" && silent.left.message).toContain(`port ${greenmail.smtpsPort} of 127.0.0.1 speaks TLS: set SMTP_TLS=true`)
        // SMTP_TIMEOUT=2 bounded the wait, not the 30 s default: generous, as CI machines are shared and slow.
        expect(Date.now() - started).toBeLessThan(20_000)
        const untrusted = await send(greenmail.smtpsPort, "true")
        expect(untrusted._tag === "Left" && untrusted.left.message).toContain("NODE_EXTRA_CA_CERTS=/path/to/ca.pem")
      }))
  })

  it.layer(StarttlsDovecot.layer)("IMAP_TLS against Dovecot offering STARTTLS with a self-signed certificate for localhost", (it) => {
    it.effect("IMAP_TLS=starttls with the certificate untrusted: names NODE_EXTRA_CA_CERTS", () =>
      withStarttls(async ({ env }) => {
        const run = await runCli(["--once"], env("starttls"))
        expect(run.code).toBe(1)
        expect(lastLine(run.stderr)).toContain("(DEPTH_ZERO_SELF_SIGNED_CERT): start mailroom with NODE_EXTRA_CA_CERTS=/path/to/ca.pem")
      }))

    it.effect("IMAP_TLS=starttls with the certificate trusted but IMAP_HOST an address: names localhost", () =>
      withStarttls(async ({ localhostCert, env }) => {
        const run = await runCli(["--once"], env("starttls", { NODE_EXTRA_CA_CERTS: localhostCert }))
        expect(run.code).toBe(1)
        expect(lastLine(run.stderr)).toContain("presents a certificate for localhost, not for 127.0.0.1 (ERR_TLS_CERT_ALTNAME_INVALID): set IMAP_HOST to localhost")
      }))

    it.effect("IMAP_TLS=false never upgrades, though the server offers STARTTLS with a certificate that would fail", () =>
      withStarttls(async ({ starttlsDb, env }) => {
        const run = await runCli(["--once"], env("false"))
        expect(run.code, run.stderr).toBe(0)
        expect(Number((await query<{ n: string }>(starttlsDb.url, "SELECT count(*) AS n FROM messages"))[0]!.n)).toBe(1)
      }))

    it.effect("IMAP_TLS=starttls with the certificate trusted and IMAP_HOST=localhost: logs in over TLS", () =>
      withStarttls(async ({ localhostCert, dovecot, env }) => {
        const run = await runCli(["--once"], env("starttls", { NODE_EXTRA_CA_CERTS: localhostCert, IMAP_HOST: "localhost" }))
        expect(run.code, run.stderr).toBe(0)
        expect(run.stderr).toContain(`Connected to IMAP: ${dovecot.user}`)
      }))
  })
})
