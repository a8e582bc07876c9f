import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { simpleParser } from "mailparser"
import { ticketToken } from "../../src/replies/Reply.js"
import { runCli, spawnCli } from "../support/cli.js"
import { mail } from "../support/mails.js"
import { createDatabase, query, serverUrl } from "../support/postgres.js"
import { DRAFTS, ofType, ReplyServers, replyPipeline, SENT, withReplyServers } from "../support/replyStack.js"
import { SmtpSinkResource } from "../support/smtpSink.js"

layer(ReplyServers.layer(), { excludeTestServices: true })((it) => {
  describe("AI replies over SMTP", () => {
    it.effect("sends one threaded reply with the loop headers, and the customer's answer joins the ticket", () => withReplyServers(async (servers) => {
      const p = await replyPipeline(servers, "reply_thread")
      try {
        const before = servers.sink.messages.length
        const hostileSubject = "=?utf-8?B?" + Buffer.from("Cannot log in\r\nBcc: evil@attacker.test").toString("base64") + "?="
        await servers.dovecot.append([
          mail({ authenticated: true, messageId: "<c1@customer.test>", references: ["<c0@customer.test>"], subject: hostileSubject, text: "I forgot my password.", headers: { Cc: "Bob <bob@customer.test>" } })
        ])
        servers.llm.setResponder(() => "Hello Ada, use Forgot password on the sign-in page.")
        expect(await p.ingest()).toMatchObject({ received: 1 })
        expect(await p.reply()).toEqual({ sent: 1, drafted: 0, skipped: 0, failed: 0 })
        await servers.sink.waitFor(before + 1)
        const all = await p.events()
        const [email] = ofType(all, "EmailReceived")
        const [intent] = ofType(all, "ReplyIntended")
        const out = await servers.received(before)
        const token = ticketToken(email!.ticketId)
        expect(out.from?.value[0]?.address).toBe(servers.dovecot.user)
        expect(out.to && !Array.isArray(out.to) ? out.to.value.map((a) => a.address) : []).toEqual(["ada@customer.test"])
        expect(servers.sink.messages[before]!.to).toEqual(["ada@customer.test"])
        expect(out.subject).toBe(`Re: Cannot log in Bcc: evil@attacker.test [#${token}]`)
        expect(out.headers.get("bcc")).toBeUndefined()
        expect(out.inReplyTo).toBe("<c1@customer.test>")
        expect(out.references).toEqual(["<c0@customer.test>", "<c1@customer.test>"])
        expect(out.headers.get("auto-submitted")).toBe("auto-replied")
        expect(out.messageId).toBe(intent!.messageId)
        expect(out.text).toContain("use Forgot password")
        const prompt = JSON.stringify(servers.llm.requests.at(-1)!.body)
        expect(prompt).toContain("I forgot my password.")
        expect(prompt).toContain("ada@customer.test")
        const outbound = await p.run(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ message_id: string; ticket_id: string }>`SELECT message_id, ticket_id FROM messages WHERE direction = 'outbound'`
        ))
        expect(outbound).toEqual([{ message_id: intent!.messageId, ticket_id: email!.ticketId }])

        // The customer answers our reply; later a colleague she put in Cc writes with only the token in the subject.
        await servers.dovecot.append([
          mail({ authenticated: true, messageId: "<c2@customer.test>", inReplyTo: intent!.messageId, references: ["<c1@customer.test>", intent!.messageId], subject: out.subject! }),
          mail({ authenticated: true, messageId: "<c3@colleague.test>", from: "Bob <bob@customer.test>", subject: `Fwd: about [#${token}]` })
        ])
        expect(await p.ingest()).toMatchObject({ received: 2, ticketsCreated: 0 })
        expect(ofType(await p.events(), "EmailReceived").map((e) => e.ticketId)).toEqual([email!.ticketId, email!.ticketId, email!.ticketId])
        expect(await p.reply()).toEqual({ sent: 2, drafted: 0, skipped: 0, failed: 0 })
        await servers.sink.waitFor(before + 3)
        // Answers to two customers go out side by side (SMTP_CONCURRENCY): the sink's order is not theirs.
        const answers = await Promise.all([servers.received(before + 1), servers.received(before + 2)])
        const answer = answers.find((a) => (a.to && !Array.isArray(a.to) ? a.to.value[0]?.address : undefined) === "ada@customer.test")!
        expect(answers.map((a) => (a.to && !Array.isArray(a.to) ? a.to.value[0]?.address : undefined)).sort()).toEqual(["ada@customer.test", "bob@customer.test"])
        expect(answer.subject).toBe(`Re: Cannot log in Bcc: evil@attacker.test [#${token}]`)
        expect(answer.references).toEqual(["<c1@customer.test>", intent!.messageId, "<c2@customer.test>"])
      } finally {
        await p.runtime.dispose()
      }
    }))

    it.effect("skips every loop case with its reason, and holds the rate limit", () => withReplyServers(async (servers) => {
      const p = await replyPipeline(servers, "reply_loops", { REPLY_RATE_LIMIT: "2" })
      try {
        const before = servers.sink.messages.length
        const loops: Array<[Parameters<typeof mail>[0], string]> = [
          [{ headers: { "Auto-Submitted": "auto-replied" } }, "auto_submitted"],
          [{ headers: { Precedence: "junk" } }, "precedence"],
          [{ headers: { "List-Id": "Shop news <news.shop.test>" } }, "mailing_list"],
          [{ headers: { "List-Unsubscribe": "<https://shop.test/leave>" } }, "mailing_list"],
          [{ headers: { "X-Autoreply": "yes" } }, "auto_reply_header"],
          [{ headers: { "X-Autorespond": "yes" } }, "auto_reply_header"],
          [{ headers: { "X-Auto-Response-Suppress": "OOF, AutoReply" } }, "auto_reply_header"],
          [{ from: "Mail Delivery System <MAILER-DAEMON@mx.test>" }, "bounce"],
          [{ from: "postmaster@mx.test" }, "bounce"],
          [{ from: "Shop <noreply@shop.test>" }, "no_reply_sender"],
          [{ from: `Support <${servers.dovecot.user}>` }, "own_address"]
        ]
        const dsn = Buffer.from(
          `From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\nTo: ${servers.dovecot.user}\r\nSubject: Delivery Status Notification (Failure)\r\n` +
            "Message-ID: <dsn1@mx.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n" +
            "--b\r\nContent-Type: text/plain\r\n\r\nAddress not found\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n--b--\r\n"
        )
        await servers.dovecot.append([...loops.map(([options]) => mail(options)), dsn])
        await servers.dovecot.append([0, 1, 2].map((i) => mail({ authenticated: true, from: "Hasty <hasty@customer.test>", subject: `Again ${i}` })))
        await p.ingest()
        expect(await p.reply()).toEqual({ sent: 2, drafted: 0, skipped: loops.length + 2, failed: 0 })
        const skipped = ofType(await p.events(), "ReplySkipped")
        expect(skipped.map((s) => s.reason).sort()).toEqual([...loops.map(([, reason]) => reason), "bounce", "rate_limited"].sort())
        await servers.sink.waitFor(before + 2)
        await new Promise((resolve) => setTimeout(resolve, 300))
        expect(servers.sink.messages.slice(before).map((m) => m.to)).toEqual([["hasty@customer.test"], ["hasty@customer.test"]])
      } finally {
        await p.runtime.dispose()
      }
    }))

    it.effect("an LLM outage leaves the answer waiting and the run ends 0; once the LLM is back it is sent once; past LLM_OUTAGE_WAIT it is ReplyFailed; a long Retry-After is not asked again; a revoked key waits for the fix", () => withReplyServers(async (servers) => {
      const db = await createDatabase("reply_llm_down")
      const types = async () => (await query<{ type: string }>(db.url, "SELECT type FROM events ORDER BY seq")).map((row) => row.type)
      try {
        const cliEnv = servers.env({ DATABASE_URL: db.url })
        expect((await runCli(["--once"], cliEnv)).code).toBe(0)
        const before = servers.sink.messages.length
        servers.llm.setMode("error500")
        await servers.dovecot.append([mail({ authenticated: true, subject: "Is anyone there?" })])
        const down = await runCli(["--once"], cliEnv)
        expect(down.code, down.stderr).toBe(0)
        expect(down.stdout).toContain("Summary: 1 received")
        expect(down.stdout).toContain("Replies: waiting for the LLM; they go out on the next run")
        expect(down.stderr).toMatch(/the LLM at http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions is unavailable \(server_error: HTTP 500: internal error\)/)
        expect(down.stderr).not.toContain("sk-test")
        expect(await types()).toEqual(["EmailReceived"])
        expect(servers.sink.messages.length).toBe(before)
        const replies = async () => {
          const status = await runCli(["status", "--json"], cliEnv)
          expect(status.code, status.stderr).toBe(0)
          return JSON.parse(status.stdout).mailboxes[0].replies
        }
        const waiting = await replies()
        expect(waiting.state).toBe("waiting (LlmUnavailable)")
        expect(waiting.lastError).toContain("is unavailable (server_error: HTTP 500: internal error)")

        servers.llm.setMode("ok")
        const back = await runCli(["--once"], cliEnv)
        expect(back.code, back.stderr).toBe(0)
        expect(back.stdout).toContain("Replies: 1 sent, 0 skipped, 0 failed")
        expect((await replies()).state).toBe("answering")
        expect(await types()).toEqual(["EmailReceived", "ReplyIntended", "ReplySent"])
        await servers.sink.waitFor(before + 1)

        // The three quick retries alone take longer than a second: a mail that waited past
        // LLM_OUTAGE_WAIT is given up on in the same run, for a person to answer.
        servers.llm.setMode("error500")
        await servers.dovecot.append([mail({ authenticated: true, subject: "Still nobody?" })])
        const given = await runCli(["--once"], { ...cliEnv, LLM_OUTAGE_WAIT: "1" })
        expect(given.code, given.stderr).toBe(0)
        expect(given.stdout).toContain("Replies: 0 sent, 0 skipped, 1 failed")
        expect(given.stderr).toMatch(/failed \(agent\): the LLM at .* gave no answer after 4 attempt\(s\) \(server_error: HTTP 500: internal error\).*it waited \d+s, LLM_OUTAGE_WAIT/)
        expect(await types()).toEqual(["EmailReceived", "ReplyIntended", "ReplySent", "EmailReceived", "ReplyFailed"])
        const [failed] = await query<{ stage: string; attempts: string }>(db.url, "SELECT data->>'stage' AS stage, data->>'attempts' AS attempts FROM events WHERE type = 'ReplyFailed'")
        expect(failed).toEqual({ stage: "agent", attempts: "4" })
        expect(servers.sink.messages.length).toBe(before + 1)

        // A rate limit that asks for two minutes is not asked again within the run: the answer waits.
        servers.llm.setMode("error429")
        await servers.dovecot.append([mail({ authenticated: true, subject: "Rate limited?" })])
        const asked = servers.llm.requests.length
        const limited = await runCli(["--once"], cliEnv)
        expect(limited.code, limited.stderr).toBe(0)
        expect(limited.stdout).toContain("Replies: waiting for the LLM; they go out on the next run")
        expect(limited.stderr).toContain("is unavailable (rate_limited: HTTP 429: rate limited, Retry-After 2m)")
        expect(servers.llm.requests.length - asked).toBe(1)
        expect((await replies()).lastError).toContain("Retry-After 2m")

        // A revoked key: the run stops with the setting named (exit 2, as for any setting that is wrong),
        // after one request; the mail stays recorded and waits for the fix.
        servers.llm.setMode("error401")
        const refusedFrom = servers.llm.requests.length
        const refused = await runCli(["--once"], cliEnv)
        expect(refused.code, refused.stderr).toBe(2)
        expect(refused.stderr).toContain("refuses mailroom's requests (unauthorized: HTTP 401: Incorrect API key provided): check LLM_API_KEY")
        expect(servers.llm.requests.length - refusedFrom).toBe(1)
        expect((await replies()).state).toBe("waiting (LlmRefused)")
        expect(await types()).toEqual(["EmailReceived", "ReplyIntended", "ReplySent", "EmailReceived", "ReplyFailed", "EmailReceived"])
        servers.llm.setMode("ok")
        const fixed = await runCli(["--once"], cliEnv)
        expect(fixed.stdout).toContain("Replies: 1 sent, 0 skipped, 0 failed")
      } finally {
        servers.llm.setMode("ok")
        await db.drop()
      }
    }))

    it.effect("a mail the model chokes on is left for a person once the LLM answers a request of mailroom's own, counts against the sender's cap, and the next customer is answered", () => withReplyServers(async (servers) => {
      const p = await replyPipeline(servers, "reply_chokes", { LLM_TIMEOUT: "1", REPLY_RATE_LIMIT: "1" })
      try {
        const before = servers.sink.messages.length
        // The model never finishes on this one mail, and answers everything else at once.
        servers.llm.setResponder((request) => JSON.stringify(request.body).includes("Zalgo") ? new Promise<string>(() => {}) : "Thanks, we are on it.")
        await servers.dovecot.append([
          mail({ authenticated: true, subject: "Zalgo", text: "Z̷a̷l̷g̷o̷ ".repeat(50) }),
          mail({ authenticated: true, from: "Bob <bob@customer.test>", subject: "Invoice", text: "Where is my invoice?" })
        ])
        expect(await p.ingest()).toMatchObject({ received: 2 })
        const asked = servers.llm.requests.length
        expect(await p.reply()).toEqual({ sent: 1, drafted: 0, skipped: 0, failed: 1 })
        const [failed] = ofType(await p.events(), "ReplyFailed")
        expect(failed).toMatchObject({ stage: "agent", attempts: 4, messageId: null })
        expect(failed!.reason).toMatch(/\(timeout: no answer within 1s\).*\(the LLM answers other requests: it fails on this mail\)$/)
        // Four tries of the mail, mailroom's own small request, Bob's answer.
        expect(servers.llm.requests.length - asked).toBe(6)
        await servers.sink.waitFor(before + 1)
        expect(servers.sink.messages.slice(before).map((m) => m.to)).toEqual([["bob@customer.test"]])
        // The failure counts against Ada's REPLY_RATE_LIMIT (PostgreSQL's count): her next mail costs no retries.
        await servers.dovecot.append([mail({ authenticated: true, subject: "Zalgo again", text: "Z̷a̷l̷g̷o̷ ".repeat(50) })])
        expect(await p.ingest()).toMatchObject({ received: 1 })
        const again = servers.llm.requests.length
        expect(await p.reply()).toEqual({ sent: 0, drafted: 0, skipped: 1, failed: 0 })
        expect(ofType(await p.events(), "ReplySkipped")).toMatchObject([{ reason: "rate_limited" }])
        expect(servers.llm.requests.length).toBe(again)
      } finally {
        servers.llm.setResponder(() => "Thanks for reaching out.")
        await p.runtime.dispose()
      }
    }))

    it.effect("a person's answer in the sent folder: the mail it answers, if that waited, and a follow-up to it are left to the person; the others are answered", () => withReplyServers(async (servers) => {
      const p = await replyPipeline(servers, "reply_person")
      try {
        const before = servers.sink.messages.length
        const asked = `<asked.${Date.now()}@customer.test>`
        // What Gmail's web client files when a person answers: the customer's id in In-Reply-To and References.
        const person = mail({ from: "Support <support@example.com>", to: "Ada Customer <ada@customer.test>", subject: "Re: Refund", inReplyTo: asked, references: [asked], text: "Refunded, Ada." })
        await servers.dovecot.append([person], { mailbox: SENT, seen: true })
        const yesterday = new Date(Date.now() - 24 * 3_600_000)
        await servers.dovecot.append([
          mail({ authenticated: true, subject: "Refund", messageId: asked, date: yesterday }),
          mail({ authenticated: true, from: "Bob <bob@customer.test>", subject: "Invoice", date: yesterday })
        ])
        expect(await p.ingest()).toMatchObject({ received: 2 })
        expect(await p.reply()).toEqual({ sent: 1, drafted: 0, skipped: 1, failed: 0 })
        const [skipped] = ofType(await p.events(), "ReplySkipped")
        expect(skipped).toMatchObject({ reason: "answered_by_person" })
        expect(skipped!.detail).toMatch(new RegExp(`^a person's answer to it is already in ${SENT} \\(UID \\d+\\)$`))
        await servers.sink.waitFor(before + 1)
        await new Promise((resolve) => setTimeout(resolve, 300))
        expect(servers.sink.messages.slice(before).map((m) => m.to)).toEqual([["bob@customer.test"]])

        // Follow-ups as they arrive: to mailroom's own answer (which Gmail files in the sent folder
        // too), answered; to the person's answer, left to the person.
        const ours = await servers.received(before)
        await servers.dovecot.append([servers.sink.messages[before]!.raw], { mailbox: SENT, seen: true })
        const personId = (await simpleParser(person)).messageId!
        await servers.dovecot.append([
          mail({ authenticated: true, from: "Bob <bob@customer.test>", subject: "Re: Invoice", inReplyTo: ours.messageId!, references: [ours.messageId!], date: new Date() }),
          mail({ authenticated: true, subject: "Re: Refund", inReplyTo: personId, references: [asked, personId], date: new Date() })
        ])
        expect(await p.ingest()).toMatchObject({ received: 2 })
        expect(await p.reply()).toEqual({ sent: 1, drafted: 0, skipped: 1, failed: 0 })
        const [, conversation] = ofType(await p.events(), "ReplySkipped")
        expect(conversation).toMatchObject({ reason: "answered_by_person" })
        expect(conversation!.detail).toMatch(/^it answers a person's mail in Sent \(UID \d+\): a person has this conversation$/)
        await servers.sink.waitFor(before + 2)
        await new Promise((resolve) => setTimeout(resolve, 300))
        expect(servers.sink.messages.slice(before).map((m) => m.to)).toEqual([["bob@customer.test"], ["bob@customer.test"]])
      } finally {
        await p.runtime.dispose()
      }
    }))

    it.effect("MARK_SEEN=after-reply flags the mail only once its reply is sent", () => withReplyServers(async (servers) => {
      const p = await replyPipeline(servers, "reply_seen", { MARK_SEEN: "after-reply" })
      try {
        const [uid] = await servers.dovecot.append([mail({ authenticated: true, subject: "Flag me later" })])
        await p.ingest()
        expect((await servers.dovecot.flags()).get(uid!)?.has("\\Seen") ?? false).toBe(false)
        expect(await p.reply()).toEqual({ sent: 1, drafted: 0, skipped: 0, failed: 0 })
        expect((await servers.dovecot.flags()).get(uid!)?.has("\\Seen")).toBe(true)
      } finally {
        await p.runtime.dispose()
      }
    }))
  })

  describe("the mailroom command with replies", () => {
    const waitFor = async (check: () => Promise<boolean>, timeoutMs = 30_000) => {
      const until = Date.now() + timeoutMs
      while (!(await check())) {
        if (Date.now() > until) throw new Error("timed out waiting")
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }

    it.effect("a crash between ReplyIntended and the send does not send twice", () => withReplyServers(async (servers) => {
      const db = await createDatabase("reply_crash")
      try {
        const cliEnv = servers.env({ DATABASE_URL: db.url, IMAP_BACKFILL: "none", AGENT: "knowledge", SMTP_TIMEOUT: "2" })
        expect((await runCli(["--once"], cliEnv)).code).toBe(0)
        const intents = async () =>
          query<{ message_id: string; email: string }>(db.url, `SELECT data->>'messageId' AS message_id, data->>'emailEventId' AS email FROM events WHERE type = 'ReplyIntended' ORDER BY seq`)
        const crashWhileSending = async (subject: string) => {
          await servers.dovecot.append([mail({ authenticated: true, subject, from: "Crash Test <crash@customer.test>" })])
          servers.sink.failNext(50, 421)
          const child = spawnCli(["--once"], cliEnv)
          const count = (await intents()).length
          await waitFor(async () => (await intents()).length > count)
          child.kill("SIGKILL")
          await new Promise((resolve) => child.once("exit", resolve))
          servers.sink.failNext(0)
          return (await intents()).at(-1)!.message_id
        }
        const before = servers.sink.messages.length

        // The server took the first reply before the crash: Gmail filed it in the sent folder.
        const first = await crashWhileSending("crash after send")
        await servers.dovecot.append([`Message-ID: ${first}\r\nFrom: ${servers.dovecot.user}\r\nTo: crash@customer.test\r\nSubject: Re: crash after send\r\n\r\nanswer\r\n`], { mailbox: SENT, seen: true })
        const resumed = await runCli(["--once"], cliEnv)
        expect(resumed.code).toBe(0)
        expect(resumed.stdout).toContain("Replies: 1 sent, 0 skipped, 0 failed")
        expect(resumed.stderr).toContain(`is already in ${SENT}`)
        expect(servers.sink.messages.length).toBe(before)

        // The second never left: it is sent, once.
        const second = await crashWhileSending("crash before send")
        expect((await runCli(["--once"], cliEnv)).code).toBe(0)
        expect(servers.sink.messages.slice(before).map((m) => m.messageId ?? "")).toEqual([second])
        const sent = await query<{ message_id: string; found: string }>(
          db.url,
          `SELECT data->>'messageId' AS message_id, data->>'foundInSent' AS found FROM events WHERE type = 'ReplySent' ORDER BY seq`
        )
        expect(sent).toEqual([{ message_id: first, found: "true" }, { message_id: second, found: "false" }])
      } finally {
        servers.sink.failNext(0)
        await db.drop()
      }
    }))

    it.effect("a database restored from an older backup records the mail since again and answers none of it twice", () => withReplyServers(async (servers) => {
      const db = await createDatabase("reply_restore")
      const backup = `${db.name}_backup`
      try {
        const cliEnv = (url: string) => servers.env({ DATABASE_URL: url, IMAP_BACKFILL: "none", AGENT: "knowledge" })
        expect((await runCli(["--once"], cliEnv(db.url))).code).toBe(0)
        const before = servers.sink.messages.length
        // Mail as the backups find it: written some minutes before, answered, and the answer filed in
        // the sent folder by the SMTP server, as Gmail files it.
        const answered = async (subject: string, url: string) => {
          await servers.dovecot.append([mail({ authenticated: true, subject, from: `Restore Test <restore@customer.test>`, date: new Date(Date.now() - 10 * 60_000) })])
          const run = await runCli(["--once"], cliEnv(url))
          expect(run.stdout, run.stderr).toContain("Replies: 1 sent, 0 skipped, 0 failed")
          await servers.sink.waitFor(servers.sink.messages.length)
          await servers.dovecot.append([servers.sink.messages.at(-1)!.raw], { mailbox: SENT, seen: true })
        }
        await answered("before the backup", db.url)
        await query(serverUrl, `CREATE DATABASE ${backup} TEMPLATE ${db.name}`)
        await answered("after the backup", db.url)
        expect(servers.sink.messages.length).toBe(before + 2)
        const sinceBackup = servers.sink.messages.at(-1)!.messageId!

        // The backup is restored: the mail since it is taken again, and its answer found in the sent folder.
        const restoredUrl = db.url.replace(`/${db.name}`, `/${backup}`)
        const restored = await runCli(["--once"], cliEnv(restoredUrl))
        expect(restored.code, restored.stderr).toBe(0)
        expect(restored.stdout).toContain("Summary: 1 received")
        expect(restored.stdout).toContain("Replies: 0 sent, 1 skipped, 0 failed")
        await new Promise((resolve) => setTimeout(resolve, 300))
        expect(servers.sink.messages.length).toBe(before + 2)
        const skipped = await query<{ reason: string }>(restoredUrl, `SELECT data->>'reason' AS reason FROM events WHERE type = 'ReplySkipped'`)
        expect(skipped).toEqual([{ reason: "already_answered" }])
        expect(restored.stderr).toMatch(new RegExp(`mailroom's own answer to it is already in ${SENT} \\(UID \\d+\\)`))

        // The customer answers the answer sent after the backup, which the restored log does not know:
        // a follow-up to mailroom's own answer, answered, not left to a person as a person's conversation.
        await servers.dovecot.append([mail({ authenticated: true, subject: "Re: after the backup", from: `Restore Test <restore@customer.test>`, inReplyTo: sinceBackup, references: [sinceBackup] })])
        const followUp = await runCli(["--once"], cliEnv(restoredUrl))
        expect(followUp.stdout, followUp.stderr).toContain("Replies: 1 sent, 0 skipped, 0 failed")
        await servers.sink.waitFor(before + 3)
        expect(servers.sink.messages.at(-1)!.to).toEqual(["restore@customer.test"])
        expect(servers.sink.messages.at(-1)!.headers.get("references")).toContain(sinceBackup)
      } finally {
        await query(serverUrl, `DROP DATABASE IF EXISTS ${backup} WITH (FORCE)`)
        await db.drop()
      }
    }))

    it.effect("a sending limit, then a refused sender, hold the answers back without failing them; once lifted each goes out once", () => withReplyServers(async (servers) => {
      const db = await createDatabase("reply_limit")
      const types = async () => (await query<{ type: string }>(db.url, "SELECT type FROM events ORDER BY seq")).map((row) => row.type)
      try {
        const cliEnv = servers.env({ DATABASE_URL: db.url, IMAP_BACKFILL: "none", AGENT: "knowledge" })
        expect((await runCli(["--once"], cliEnv)).code).toBe(0)
        const before = servers.sink.messages.length
        await servers.dovecot.append([
          mail({ authenticated: true, subject: "Limit one", from: "Lim Customer <lim@customer.test>" }),
          mail({ authenticated: true, subject: "Limit two", from: "Lim Customer <lim@customer.test>" })
        ])
        // Gmail's words, at the end of DATA as Gmail says them.
        servers.sink.failNext(1, 550, "5.4.5 Daily user sending quota exceeded. o65sm25351206pga.71 - gsmtp")
        const limited = await runCli(["--once"], cliEnv)
        expect(limited.code, limited.stderr).toBe(0)
        expect(limited.stdout).toContain("Replies: waiting for the SMTP server's sending limit to reset")
        expect(limited.stderr).toContain("Daily user sending quota exceeded")
        expect(limited.stderr).toContain("its sending limit is reached")
        expect(await types()).toEqual(["EmailReceived", "EmailReceived", "ReplyIntended"])
        const status = JSON.parse((await runCli(["status", "--json"], cliEnv)).stdout)
        expect(status.mailboxes[0].replies.state).toBe("waiting (SmtpLimitReached)")
        expect(status.answers).toMatchObject({ failed: 0, waiting: 2 })

        // Microsoft 365's refusal of the From: a setting to fix, so the run stops with it (exit 2).
        servers.sink.failNext(1, 554, "5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message")
        const refused = await runCli(["--once"], cliEnv)
        expect(refused.code, refused.stderr).toBe(2)
        expect(refused.stderr).toMatch(/^mailroom: the SMTP server 127\.0\.0\.1 refuses \S+ as the sender of answers \(554 .*SendAsDenied.*\): set REPLY_FROM/m)
        expect(await types()).toEqual(["EmailReceived", "EmailReceived", "ReplyIntended"])
        expect(servers.sink.messages.length).toBe(before)

        const lifted = await runCli(["--once"], cliEnv)
        expect(lifted.code, lifted.stderr).toBe(0)
        expect(lifted.stdout).toContain("Replies: 2 sent, 0 skipped, 0 failed")
        await servers.sink.waitFor(before + 2)
        expect(servers.sink.messages.slice(before).map((m) => m.headers.get("subject"))).toEqual([
          expect.stringContaining("Limit one"),
          expect.stringContaining("Limit two")
        ])
        expect(await types()).toEqual(["EmailReceived", "EmailReceived", "ReplyIntended", "ReplySent", "ReplyIntended", "ReplySent"])
        expect((await runCli(["--once"], cliEnv)).stdout).toContain("Replies: 0 sent, 0 skipped, 0 failed")
        expect(servers.sink.messages.length).toBe(before + 2)
      } finally {
        servers.sink.failNext(0)
        await db.drop()
      }
    }))

    it.effect("an answer the SMTP server still holds back SMTP_OUTAGE_WAIT after its mail arrived is left as a draft for a person, saying why, and never sent", () => withReplyServers(async (servers) => {
      const db = await createDatabase("reply_handover")
      const types = async () => (await query<{ type: string }>(db.url, "SELECT type FROM events ORDER BY seq")).map((row) => row.type)
      const gmail = "5.4.5 Daily user sending quota exceeded. o65sm25351206pga.71 - gsmtp"
      try {
        const cliEnv = servers.env({ DATABASE_URL: db.url, IMAP_BACKFILL: "none", AGENT: "knowledge", SMTP_OUTAGE_WAIT: "5" })
        expect((await runCli(["--once"], cliEnv)).code).toBe(0)
        const before = servers.sink.messages.length
        await servers.dovecot.append([mail({ authenticated: true, subject: "Held answer", from: "Held Customer <held@customer.test>" })])
        servers.sink.failNext(1, 550, gmail)
        const limited = await runCli(["--once"], cliEnv)
        expect(limited.code, limited.stderr).toBe(0)
        expect(limited.stdout).toContain("Replies: waiting for the SMTP server's sending limit to reset")
        expect(limited.stderr).toContain("one still held SMTP_OUTAGE_WAIT after its mail arrived is left as a draft for a person")
        expect(await types()).toEqual(["EmailReceived", "ReplyIntended"])

        // Five seconds: the first run on a slow machine must find the answer still within its wait.
        await new Promise((resolve) => setTimeout(resolve, 5_100))
        servers.sink.failNext(1, 550, gmail)
        const handed = await runCli(["--once"], cliEnv)
        expect(handed.code, handed.stderr).toBe(0)
        expect(handed.stdout).toContain("Replies: 0 sent, 0 skipped, 0 failed, 1 left as drafts")
        expect(await types()).toEqual(["EmailReceived", "ReplyIntended", "ReplyDrafted"])
        const [intent] = await query<{ message_id: string }>(db.url, "SELECT data->>'messageId' AS message_id FROM events WHERE type = 'ReplyIntended'")
        const drafts = await Promise.all((await servers.dovecot.messages({ mailbox: DRAFTS })).map((m) => simpleParser(m.source)))
        const draft = drafts.find((d) => d.messageId === intent!.message_id)
        expect(draft?.text).toMatch(/^\[mailroom, for the team: the SMTP server held this answer back for \d+s \(the account's sending limit was reached, SMTP_OUTAGE_WAIT\), so it was not sent\. Check it/)
        expect(draft?.to).toMatchObject({ value: [{ address: "held@customer.test" }] })
        const report = JSON.parse((await runCli(["replies", "--json"], cliEnv)).stdout)
        expect(report.counts).toMatchObject({ sent: 0, drafted: 1, failed: 0, waiting: 0 })
        expect(report.outcomes).toMatchObject([{ outcome: "drafted", detail: expect.stringContaining("held this answer back") }])

        // The server takes mail again: the draft is the person's, and nothing goes out on its own.
        const after = await runCli(["--once"], cliEnv)
        expect(after.stdout).toContain("Replies: 0 sent, 0 skipped, 0 failed")
        expect(await types()).toEqual(["EmailReceived", "ReplyIntended", "ReplyDrafted"])
        expect(servers.sink.messages.length).toBe(before)
      } finally {
        servers.sink.failNext(0)
        await db.drop()
      }
    }))

    it.scoped("an SMTP login failure gives one clear line, after the mail is recorded", () =>
      Effect.gen(function*() {
        const servers = yield* ReplyServers
        const strict = yield* SmtpSinkResource({ user: servers.dovecot.user, password: "a-different-password" })
        yield* Effect.promise(async () => {
          const db = await createDatabase("reply_login")
          try {
            const cliEnv = servers.env({ DATABASE_URL: db.url, AGENT: "knowledge", SMTP_PORT: String(strict.port), SMTP_HOST: strict.host })
            expect((await runCli(["--once"], cliEnv)).code).toBe(0)
            await servers.dovecot.append([mail({ authenticated: true, subject: "Login trouble" })])
            const result = await runCli(["--once"], cliEnv)
            expect(result.code).toBe(1)
            expect(result.stdout).toContain("Summary: 1 received")
            const lines = result.stderr.trim().split("\n").filter((line) => line.startsWith("mailroom:"))
            expect(lines).toHaveLength(1)
            expect(lines[0]).toMatch(/^mailroom: SMTP login failed for support@example\.com at 127\.0\.0\.1 \(.*\): check GMAIL_SENDER_PASSWORD/)
            expect(result.stderr).not.toContain(servers.dovecot.password)
            expect(strict.authAttempts).toBe(1)
            expect(strict.messages).toHaveLength(0)
          } finally {
            await db.drop()
          }
        })
      }))

    it.effect("an SMTP server that cannot be reached leaves the replies waiting; the run still ends 0", () => withReplyServers(async (servers) => {
      const db = await createDatabase("reply_down")
      try {
        const cliEnv = servers.env({ DATABASE_URL: db.url, AGENT: "knowledge", SMTP_HOST: "127.0.0.1", SMTP_PORT: "1" })
        expect((await runCli(["--once"], cliEnv)).code).toBe(0)
        await servers.dovecot.append([mail({ authenticated: true, subject: "Anyone there?" })])
        const result = await runCli(["--once"], cliEnv)
        expect(result.code, result.stderr).toBe(0)
        expect(result.stdout).toContain("Summary: 1 received")
        expect(result.stdout).toContain("Replies: waiting for the SMTP server")
        expect(result.stderr).toMatch(/the SMTP server 127\.0\.0\.1 is unavailable/)
      } finally {
        await db.drop()
      }
    }))
  })
})
