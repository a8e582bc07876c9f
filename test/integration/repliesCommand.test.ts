import { describe, expect, layer } from "@effect/vitest"
import type { RepliesReport } from "../../src/replies/Outcomes.js"
import { runCli } from "../support/cli.js"
import { mail } from "../support/mails.js"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createDatabase, query } from "../support/postgres.js"
import { DRAFTS, ReplyServers, withReplyServers } from "../support/replyStack.js"

// `mailroom replies` over a real run: Dovecot, PostgreSQL, the SMTP sink and the OpenAI-compatible
// server, every command a whole process as an operator runs it.

const reportOf = async (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const run = await runCli(["replies", "--json", ...args], env)
  expect(run.code, run.stderr).toBe(0)
  return JSON.parse(run.stdout) as RepliesReport
}

layer(ReplyServers.layer(), { excludeTestServices: true })((it) => {
  describe("mailroom replies", () => {
    it.effect("counts every outcome, lists the mails a person should look at with why, and never prints a sender's escape codes", () => withReplyServers(async (servers) => {
      const db = await createDatabase("replies_command")
      try {
        const env = servers.env({ DATABASE_URL: db.url })
        expect((await runCli(["--once"], env)).code).toBe(0)
        servers.llm.setResponder((request) => {
          const prompt = JSON.stringify(request.body)
          return prompt.includes("Zorro") ? "" : prompt.includes("callback") ? "Call us on +1 888 555 0147 and we sort it out." : "It ships tomorrow."
        })
        await servers.dovecot.append([
          mail({ authenticated: true, from: "Ann <ann@customer.test>", subject: "Where is my order?" }),
          mail({ authenticated: true, from: "Bob <bob@customer.test>", subject: "Phone me", text: "Please give me a callback number." }),
          mail({ from: "Cat <cat@customer.test>", subject: "Unsigned question" }),
          mail({ authenticated: true, from: "Dan <dan@customer.test>", headers: { "X-Autoresponder": "yes" }, subject: "Away" }),
          mail({ authenticated: true, from: "Eve <eve@customer.test>", subject: "Odd one", text: "Zorro was here." }),
          mail({ from: "Fay <fay@customer.test>", subject: "\u001b[2J\u001b]0;pwned\u0007Hello\u202e" })
        ])
        const pass = await runCli(["--once"], env)
        expect(pass.code, pass.stderr).toBe(0)
        expect(pass.stdout).toContain("Replies: 1 sent, 3 skipped, 1 failed, 1 left as drafts")

        const report = await reportOf([], env)
        expect(report.counts).toEqual({ sent: 1, drafted: 1, failed: 1, skipped: { unauthenticated: 2, auto_reply_header: 1 }, waiting: 0, oldestWaiting: null, retried: 0, retryingByItself: 0 })
        // Ann was answered and Dan's was an auto-reply: neither is a person's to look at. Answers
        // go out side by side, so their outcomes' order is not the mails'.
        const person = (r: RepliesReport) => Object.fromEntries(r.outcomes.map((o) => [o.from, `${o.outcome} ${o.reason}`]))
        expect(person(report)).toEqual({
          "bob@customer.test": "drafted Drafts",
          "cat@customer.test": "skipped unauthenticated",
          "eve@customer.test": "failed agent",
          "fay@customer.test": "skipped unauthenticated"
        })
        const times = report.outcomes.map((o) => new Date(o.at).getTime())
        expect(times).toEqual([...times].sort((a, b) => b - a))
        const bob = report.outcomes.find((o) => o.from === "bob@customer.test")!
        expect(bob.detail).toContain("phone number")
        expect(bob.subject).toBe("Phone me")
        expect(report.more).toBe(0)

        // `status` points at them.
        const status = await runCli(["status", "--json"], env)
        expect(status.code, status.stderr).toBe(0)
        expect(JSON.parse(status.stdout).answers).toEqual({ ...report.counts, forAPerson: 4 })
        expect((await runCli(["status"], env)).stdout).toMatch(/answers, last 24 h\n {2}outcomes +1 sent, 1 left as drafts, 1 failed, 3 not answered; 0 waiting now\n {2}for a person +4: see mailroom replies --since 24h\n/)

        const text = await runCli(["replies"], env)
        expect(text.code, text.stderr).toBe(0)
        expect(text.stdout).toContain("1 sent, 1 left as drafts, 1 failed, 3 not answered (2 unauthenticated, 1 auto_reply_header)")
        expect(text.stdout).toContain("For a person, newest first (4):")
        expect(text.stdout).toMatch(/\[#[0-9a-f]{12}\] {2}bob@customer\.test {2}"Phone me"\n {4}left as a draft in Drafts: .*phone number/)
        expect(text.stdout).toContain("not answered (unauthenticated): ")
        expect(text.stdout).not.toContain("ann@customer.test")
        // A subject is the sender's text: no escape sequence, bell or bidi override reaches the terminal.
        expect(text.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f\u202e]/)
        expect(text.stdout).toContain(`"\\u001b[2J\\u001b]0;pwned\\u0007Hello\\u202e"`)

        const every = await reportOf(["--all"], env)
        expect(every.outcomes.map((o) => o.from).sort()).toEqual(["ann", "bob", "cat", "dan", "eve", "fay"].map((n) => `${n}@customer.test`))
        const two = await reportOf(["--all", "--limit", "2"], env)
        expect(two.outcomes).toEqual(every.outcomes.slice(0, 2))
        expect(two.more).toBe(4)
        expect((await runCli(["replies", "--all", "--limit", "2"], env)).stdout).toContain("… and 4 more: --limit 6 shows them")

        // One customer's mail, every answer of it: "I wrote and heard nothing".
        const ann = await reportOf(["--customer", " Ann@Customer.test "], env)
        expect(ann.counts).toEqual({ sent: 1, drafted: 0, failed: 0, skipped: {}, waiting: 0, oldestWaiting: null, retried: 0, retryingByItself: 0 })
        expect(ann.outcomes.map((o) => [o.from, o.outcome, o.subject])).toEqual([["ann@customer.test", "sent", "Where is my order?"]])
        const dan = await runCli(["replies", "--customer", "dan@customer.test"], env)
        expect(dan.stdout).toContain("Answers to dan@customer.test since ")
        expect(dan.stdout).toMatch(/dan@customer\.test {2}"Away"\n {4}not answered \(auto_reply_header\): x-autoresponder: yes/)
        expect(dan.stdout).not.toContain("bob@customer.test")
        expect((await reportOf(["--customer", "nobody@customer.test"], env)).outcomes).toEqual([])

        // An erased customer's mail is still counted and listed, with nothing of theirs.
        expect((await runCli(["erase", "--customer", "cat@customer.test"], env)).code).toBe(0)
        const afterErasure = (await reportOf([], env)).outcomes
        expect(afterErasure.map((o) => o.from).sort()).toEqual(["", "bob@customer.test", "eve@customer.test", "fay@customer.test"])
        const cat = afterErasure.find((o) => o.erased)!
        expect(cat).toMatchObject({ erased: true, from: "", subject: "", outcome: "skipped", reason: "unauthenticated" })
        expect((await runCli(["replies"], env)).stdout).toContain("(customer erased)")

        // Only the span asked for: an outcome of eight days ago is outside the default week.
        await query(db.url, `
          INSERT INTO events (id, type, mailbox, ticket_id, occurred_at, data)
          VALUES (gen_random_uuid(), 'ReplySkipped', '${servers.dovecot.user}', gen_random_uuid(), now() - interval '8 days',
            jsonb_build_object('_tag', 'ReplySkipped', 'emailEventId', gen_random_uuid(), 'ticketId', gen_random_uuid(),
              'customerId', gen_random_uuid(), 'reason', 'rate_limited', 'detail', E'old \\u001b[2Jone'))
        `)
        expect((await reportOf([], env)).counts.skipped).toEqual({ unauthenticated: 2, auto_reply_header: 1 })
        const fortnight = await reportOf(["--since", "2w"], env)
        expect(fortnight.counts.skipped).toEqual({ unauthenticated: 2, auto_reply_header: 1, rate_limited: 1 })
        expect(fortnight.outcomes.find((o) => o.reason === "rate_limited")).toMatchObject({ reason: "rate_limited", detail: "old \u001b[2Jone", from: "" })
        // Whatever a field holds (an older version's detail, say), no escape code reaches the terminal.
        const fortnightText = (await runCli(["replies", "--since", "2w"], env)).stdout
        expect(fortnightText).toContain("not answered (rate_limited): old \\u001b[2Jone")
        expect(fortnightText).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f\u202e]/)

        // Mail recorded while the LLM is down waits, and is counted as waiting.
        servers.llm.setMode("error500")
        await servers.dovecot.append([mail({ authenticated: true, from: "Gus <gus@customer.test>", subject: "Still there?" })])
        const beforeOutage = Date.now()
        const outage = await runCli(["--once"], env)
        expect(outage.stdout).toContain("Replies: waiting for the LLM")
        const waitingNow = (await reportOf([], env)).counts
        expect(waitingNow.waiting).toBe(1)
        // When it was recorded, so a person can tell when LLM_OUTAGE_WAIT hands it to them.
        expect(Date.parse(String(waitingNow.oldestWaiting))).toBeGreaterThanOrEqual(beforeOutage - 1000)
        expect(Date.parse(String(waitingNow.oldestWaiting))).toBeLessThanOrEqual(Date.now())
        expect((await runCli(["status"], env)).stdout).toMatch(/1 waiting now, the oldest recorded \d{4}-\d\d-\d\d \d\d:\d\d UTC\n/)
        // Erased while it waits, it waits for nothing: it will never be answered.
        expect((await runCli(["erase", "--customer", "gus@customer.test"], env)).code).toBe(0)
        expect((await reportOf([], env)).counts.waiting).toBe(0)

        const bad = await runCli(["replies", "--since", "a week"], env)
        expect(bad.code).toBe(2)
        expect(bad.stderr).toContain("--since takes a span such as 30m, 24h, 7d or 2w")
        const notAnAddress = await runCli(["replies", "--customer", "ann"], env)
        expect(notAnAddress.code).toBe(2)
        expect(notAnAddress.stderr).toContain("--customer takes an email address")
      } finally {
        servers.llm.setMode("ok")
        await db.drop()
      }
    }))

    it.effect("replies retry: a failed answer asked for again goes out once, and is then no longer a person's to look at", () => withReplyServers(async (servers) => {
      const db = await createDatabase("replies_retry")
      try {
        const env = servers.env({ DATABASE_URL: db.url })
        expect((await runCli(["--once"], env)).code).toBe(0)
        let down = true
        servers.llm.setResponder(() => down ? "" : "Here is your answer.")
        await servers.dovecot.append([mail({ authenticated: true, from: "Eve <eve@customer.test>", subject: "Odd one" })])
        expect((await runCli(["--once"], env)).stdout).toContain("Replies: 0 sent, 0 skipped, 1 failed")
        const failed = (await reportOf([], env)).outcomes
        expect(failed.map((o) => [o.from, o.outcome])).toEqual([["eve@customer.test", "failed"]])

        down = false
        const sentBefore = servers.sink.messages.length
        const asked = await runCli(["replies", "retry", "--id", failed[0]!.eventId], env)
        expect(asked.code, asked.stderr).toBe(0)
        expect(asked.stdout).toMatch(/Asked again for 1 answer\(s\) that failed or found no drafts folder.*\n {2}\[#[0-9a-f]{12}\] {2}mail [0-9a-f-]{36}, retry 1/)
        expect((await runCli(["replies", "retry"], env)).stdout).toContain("No failed answer to ask for again")
        const waiting = await reportOf([], env)
        // Counted by its last word: asked for again, the failure is no longer a failure.
        expect(waiting.counts).toMatchObject({ waiting: 1, retried: 1, failed: 0 })
        // Asked for again, the failure is no longer the last word on the mail.
        expect(waiting.outcomes).toEqual([])

        const pass = await runCli(["--once"], env)
        expect(pass.stdout).toContain("Replies: 1 sent, 0 skipped, 0 failed")
        expect((await runCli(["--once"], env)).stdout).toContain("Replies: 0 sent, 0 skipped, 0 failed")
        await new Promise((resolve) => setTimeout(resolve, 200))
        expect(servers.sink.messages.length).toBe(sentBefore + 1)
        expect((await servers.received(sentBefore)).text).toContain("Here is your answer.")
        const after = await reportOf(["--all"], env)
        expect(after.counts).toMatchObject({ sent: 1, failed: 0, retried: 1, waiting: 0 })
        expect(after.outcomes.map((o) => [o.outcome, o.retry])).toEqual([["sent", 1], ["failed", 0]])
        expect((await runCli(["replies", "--all"], env)).stdout).toContain("sent (smtp, retry 1)")
        expect((await runCli(["replies", "retry", "--id", "nope"], env)).code).toBe(2)
        // Named by its id, the retry's outcome (sent) is no failure to ask about; the first failure has a retry already.
        const ids = after.outcomes.flatMap((o) => ["--id", o.eventId])
        expect((await runCli(["replies", "retry", ...ids], env)).stdout).toContain("No failed answer to ask for again")
      } finally {
        servers.llm.setMode("ok")
        await db.drop()
      }
    }))

    it.effect("replies retry: an answer skipped for want of a drafts folder is left there once DRAFTS_MAILBOX is fixed", () => withReplyServers(async (servers) => {
      const db = await createDatabase("replies_retry_drafts")
      try {
        const wrong = servers.env({ DATABASE_URL: db.url, DRAFTS_MAILBOX: "No such folder" })
        expect((await runCli(["--once"], wrong)).code).toBe(0)
        servers.llm.setResponder(() => "Call us on +1 888 555 0147.")
        await servers.dovecot.append([mail({ authenticated: true, from: "Fay <fay@customer.test>", subject: "Phone?" })])
        expect((await runCli(["--once"], wrong)).stdout).toContain("Replies: 0 sent, 1 skipped, 0 failed")
        expect((await reportOf([], wrong)).outcomes.map((o) => [o.outcome, o.reason])).toEqual([["skipped", "needs_human"]])
        const draftsBefore = (await servers.dovecot.uids({ mailbox: DRAFTS })).length
        const right = servers.env({ DATABASE_URL: db.url })
        expect((await runCli(["replies", "retry"], right)).stdout).toContain("Asked again for 1")
        expect((await runCli(["--once"], right)).stdout).toContain("1 left as drafts")
        expect((await servers.dovecot.uids({ mailbox: DRAFTS })).length).toBe(draftsBefore + 1)
        const drafted = await reportOf([], right)
        expect(drafted.outcomes.map((o) => [o.outcome, o.retry])).toEqual([["drafted", 1]])
        expect(drafted.counts).toMatchObject({ drafted: 1, skipped: {}, retried: 1 })
      } finally {
        servers.llm.setResponder((request) => `Thanks for reaching out. ${String(request.body?.messages?.length ?? "")}`)
        await db.drop()
      }
    }))

    it.effect("reads the embedded database as well, the erased customer's mail included", () => withReplyServers(async (servers) => {
      const dataDir = await mkdtemp(join(tmpdir(), "mailroom-replies-"))
      try {
        const env = servers.env({ MAILROOM_DATA_DIR: dataDir })
        expect((await runCli(["--once"], env)).code).toBe(0)
        await servers.dovecot.append([
          mail({ from: "Hal <hal@customer.test>", subject: "Unsigned, embedded" }),
          mail({ from: "Ivy <ivy@customer.test>", subject: "Unsigned too" })
        ])
        expect((await runCli(["--once"], env)).code).toBe(0)
        expect((await runCli(["erase", "--customer", "ivy@customer.test"], env)).code).toBe(0)
        const report = await reportOf([], env)
        expect(report.counts.skipped).toEqual({ unauthenticated: 2 })
        expect(report.outcomes.map((o) => [o.from, o.subject, o.erased]).sort()).toEqual([
          ["", "", true],
          ["hal@customer.test", "Unsigned, embedded", false]
        ])
      } finally {
        await rm(dataDir, { recursive: true, force: true })
      }
    }))
  })
})
