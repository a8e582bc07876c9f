import { createServer } from "node:net"
import type { AddressInfo } from "node:net"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { CheckLine } from "../../src/cli/Check.js"
import { runCli } from "../support/cli.js"
import { mail } from "../support/mails.js"
import { createDatabase, query } from "../support/postgres.js"
import { ReplyServers, SENT, withReplyServers } from "../support/replyStack.js"
import { SmtpSinkResource } from "../support/smtpSink.js"

// `mailroom check` as an operator runs it, a whole process against Dovecot (with its Sent and Drafts
// folders), the SMTP sink, the OpenAI-compatible server and PostgreSQL.

const linesOf = (stdout: string) => (JSON.parse(stdout) as { readonly lines: ReadonlyArray<CheckLine> }).lines
const outcomes = (lines: ReadonlyArray<CheckLine>) => Object.fromEntries(lines.map((l) => [l.check, l.outcome]))

layer(ReplyServers.layer(), { excludeTestServices: true })((it) => {
  describe("mailroom check", () => {
    it.effect("says each part of the setup works, and takes, flags and sends nothing", () => withReplyServers(async (servers) => {
      const db = await createDatabase("check_ok")
      try {
        const [uid] = await servers.dovecot.append([mail({ authenticated: true, subject: "untouched" })])
        const sent = servers.sink.messages.length
        const asked = servers.llm.requests.length
        const run = await runCli(["check", "--json"], servers.env({ DATABASE_URL: db.url }))
        expect(run.code, run.stderr).toBe(0)
        const lines = linesOf(run.stdout)
        expect(lines.every((l) => l.outcome === "ok"), run.stdout).toBe(true)
        expect(outcomes(lines)).toEqual({
          database: "ok",
          "event bus": "ok",
          imap: "ok",
          "sender checks": "ok",
          "sent folder": "ok",
          "drafts folder": "ok",
          smtp: "ok",
          "agent (openai)": "ok"
        })
        const detail = (check: string) => lines.find((l) => l.check === check)!.detail
        expect(detail("imap")).toMatch(new RegExp(`^${servers.dovecot.user} at ${servers.dovecot.host}:${servers.dovecot.port} \\(no TLS\\); INBOX holds \\d+ mail\\(s\\)$`))
        expect(detail("sender checks")).toMatch(/^\d+ of the newest \d+ mail\(s\) carry Authentication-Results from a trusted server \(TRUSTED_AUTHSERV_IDS=mx\.google\.com\)$/)
        expect(detail("sent folder")).toBe(SENT)
        expect(detail("smtp")).toBe(`${servers.dovecot.user} logged in at ${servers.sink.host}:${servers.sink.port} (no TLS); nothing was sent`)
        expect(detail("agent (openai)")).toMatch(/^test-model at http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions answered a one-word request$/)
        expect(servers.sink.messages.length).toBe(sent)
        expect(servers.llm.requests.length).toBe(asked + 1)
        expect((await servers.dovecot.flags()).get(uid!)?.has("\\Seen")).toBe(false)

        // The text form: one line a check.
        const text = await runCli(["check"], servers.env({ DATABASE_URL: db.url }))
        expect(text.code).toBe(0)
        expect(text.stdout.trim().split("\n").map((l) => l.split(/\s+/)[0])).toEqual(Array(8).fill("ok"))
      } finally {
        await db.drop()
      }
    }))

    it.effect("leaves a database in use as it is: on one this version has not migrated, it stops with one line; a start migrates it", () => withReplyServers(async (servers) => {
      const db = await createDatabase("check_pending")
      try {
        const env = servers.env({ DATABASE_URL: db.url })
        expect((await runCli(["check"], env)).code).toBe(0)
        // The version before this one's database: every migration but the last, which only records itself.
        await query(db.url, "DELETE FROM mailroom_migrations WHERE name = 'already_answered'")
        const ledger = async () => (await query<{ name: string }>(db.url, "SELECT name FROM mailroom_migrations ORDER BY name")).map((row) => row.name)
        const before = await ledger()
        for (const command of [["check"], ["status"], ["replies"]]) {
          const refused = await runCli(command, env)
          expect(refused.code, `${command.join(" ")}: ${refused.stderr}`).toBe(2)
          expect(refused.stdout).toBe("")
          expect(refused.stderr.trim().split("\n")).toEqual([
            "mailroom: the database has not had this version's migrations (0014_already_answered): stop every instance of the older version, " +
            "then start this one, which applies them; no other command changes the schema"
          ])
        }
        expect(await ledger()).toEqual(before)
        expect((await runCli(["--once"], servers.env({ DATABASE_URL: db.url, AGENT: "off" }))).code).toBe(0)
        expect(await ledger()).toContain("already_answered")
        expect((await runCli(["check"], env)).code).toBe(0)
      } finally {
        await db.drop()
      }
    }))

    it.effect("names what fails, with what to change, goes on to the rest, and exits 1", () => withReplyServers(async (servers) => {
      const db = await createDatabase("check_failed")
      try {
        servers.llm.setMode("error401")
        const run = await runCli(["check", "--json"], servers.env({ DATABASE_URL: db.url, SENT_MAILBOX: "Sent Elsewhere", SMTP_PORT: "1" }))
        expect(run.code).toBe(1)
        const lines = linesOf(run.stdout)
        expect(run.stderr.trim().split("\n").at(-1)).toBe("mailroom: 3 check(s) failed: each line above says what to change")
        expect(outcomes(lines)).toMatchObject({ imap: "ok", "sent folder": "failed", "drafts folder": "ok", smtp: "failed", "agent (openai)": "failed" })
        const detail = (check: string) => lines.find((l) => l.check === check)!.detail
        expect(detail("sent folder")).toMatch(/^the sent folder "Sent Elsewhere" does not exist on the IMAP server: check SENT_MAILBOX/)
        expect(detail("smtp")).toMatch(/^the SMTP server 127\.0\.0\.1 is unavailable \(.*ECONNREFUSED.*\): check SMTP_HOST, SMTP_PORT, SMTP_TLS and the network$/)
        expect(detail("agent (openai)")).toMatch(/HTTP 401/)
        expect(run.stdout).not.toContain("sk-test")
      } finally {
        servers.llm.setMode("ok")
        await db.drop()
      }
    }))

    it.effect("says when no recent mail carries a verdict answers trust, naming the receiving server's, and flags no mail", () => withReplyServers(async (servers) => {
      const db = await createDatabase("check_senders")
      try {
        const [uid] = await servers.dovecot.append([mail({ authenticated: true, subject: "from a verified sender" })])
        const run = await runCli(["check", "--json"], servers.env({ DATABASE_URL: db.url, TRUSTED_AUTHSERV_IDS: "mx.example.net" }))
        expect(run.code, run.stderr).toBe(0)
        const sender = linesOf(run.stdout).find((l) => l.check === "sender checks")!
        expect(sender.outcome).toBe("warning")
        expect(sender.detail).toMatch(
          /^none of the newest \d+ mail\(s\) carries Authentication-Results from a trusted server \(TRUSTED_AUTHSERV_IDS=mx\.example\.net\); every one has mx\.google\.com's topmost: if that is your receiving server, add it to TRUSTED_AUTHSERV_IDS, else set SENDER_VERIFY=dkim; until then no sender is authenticated, and no mail is answered \(REPLY_REQUIRE_AUTH\)$/
        )
        expect((await servers.dovecot.flags()).get(uid!)?.has("\\Seen")).toBe(false)
        // A sender's own header, on a mail the receiving server did not stamp: never offered as one to trust.
        await servers.dovecot.append([mail({ subject: "forged", headers: { "Authentication-Results": "evil.test; dkim=pass header.d=customer.test" } })])
        const forged = await runCli(["check", "--json"], servers.env({ DATABASE_URL: db.url, TRUSTED_AUTHSERV_IDS: "mx.example.net" }))
        const forgedLine = linesOf(forged.stdout).find((l) => l.check === "sender checks")!
        expect(forgedLine.outcome).toBe("warning")
        expect(forgedLine.detail).toContain("no one server's name is topmost on every one of them: set SENDER_VERIFY=dkim")
        expect(forgedLine.detail).not.toContain("evil.test")
        const dkim = await runCli(["check", "--json"], servers.env({ DATABASE_URL: db.url, TRUSTED_AUTHSERV_IDS: "mx.example.net", SENDER_VERIFY: "dkim" }))
        expect(linesOf(dkim.stdout).find((l) => l.check === "sender checks")).toMatchObject({ outcome: "ok", detail: expect.stringMatching(/^SENDER_VERIFY=dkim/) })
      } finally {
        await db.drop()
      }
    }))

    it.scoped("a login the SMTP server refuses, drafts without their folder, and AGENT=off", () =>
      Effect.gen(function*() {
        const servers = yield* ReplyServers
        const strict = yield* SmtpSinkResource({ user: servers.dovecot.user, password: "a-different-password" })
        yield* Effect.promise(async () => {
          const db = await createDatabase("check_login")
          try {
            const refused = await runCli(["check", "--json"], servers.env({ DATABASE_URL: db.url, AGENT: "knowledge", KNOWLEDGE_DIR: "/nonexistent/knowledge", SMTP_HOST: strict.host, SMTP_PORT: String(strict.port) }))
            expect(refused.code).toBe(1)
            const smtp = linesOf(refused.stdout).find((l) => l.check === "smtp")!
            expect(smtp).toMatchObject({ outcome: "failed" })
            expect(smtp.detail).toMatch(/^SMTP login failed for support@example\.com at 127\.0\.0\.1 \(.*\): check GMAIL_SENDER_PASSWORD/)
            expect(strict.messages).toHaveLength(0)
            // No knowledge folder: answers still go out, acknowledging the mail; a warning, not a failure.
            expect(linesOf(refused.stdout).find((l) => l.check === "agent (knowledge)")).toMatchObject({ outcome: "warning" })

            // Drafts need their folder; without SMTP nothing is logged in to there.
            const drafting = await runCli(["check", "--json"], servers.env({ DATABASE_URL: db.url, REPLY_MODE: "draft", DRAFTS_MAILBOX: "Nowhere", SMTP_HOST: strict.host, SMTP_PORT: String(strict.port) }))
            expect(drafting.code).toBe(1)
            expect(outcomes(linesOf(drafting.stdout))).toMatchObject({ imap: "ok", "sent folder": "ok", "drafts folder": "failed", "agent (openai)": "ok" })
            expect(linesOf(drafting.stdout).map((l) => l.check)).not.toContain("smtp")

            // A server that refuses the session at its greeting: no mail was offered, so not "refused the reply to".
            const closed = createServer((socket) => socket.end("554 5.7.1 No SMTP service here\r\n"))
            await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve))
            try {
              const port = (closed.address() as AddressInfo).port
              const refusing = await runCli(["check", "--json"], servers.env({ DATABASE_URL: db.url, SMTP_HOST: "127.0.0.1", SMTP_PORT: String(port) }))
              expect(linesOf(refusing.stdout).find((l) => l.check === "smtp")).toMatchObject({
                outcome: "failed",
                detail: expect.stringMatching(/^the SMTP server 127\.0\.0\.1 is unavailable \(.*554 5\.7\.1 No SMTP service here.*\): check SMTP_HOST/)
              })
            } finally {
              closed.close()
            }

            const off = await runCli(["check"], servers.env({ DATABASE_URL: db.url, AGENT: "off", SMTP_PORT: "not a port" }))
            expect(off.code, off.stderr).toBe(0)
            expect(off.stdout).toContain("answers: AGENT=off: mailroom answers nothing")
          } finally {
            await db.drop()
          }
        })
      }))
  })
})
