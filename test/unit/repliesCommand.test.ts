import { describe, expect, it } from "@effect/vitest"
import { formatReplies, parseSince } from "../../src/cli/Replies.js"
import type { AnswerOutcome, RepliesReport } from "../../src/replies/Outcomes.js"

const outcome = (over: Partial<AnswerOutcome>): AnswerOutcome => ({
  at: new Date("2026-12-06T10:41:07Z"),
  mailbox: "support@example.com",
  ticket: "0a1b2c3d4e5f",
  outcome: "skipped",
  reason: "unauthenticated",
  detail: "no trusted server vouched for the sender",
  from: "ada@customer.test",
  subject: "Refund?",
  erased: false,
  eventId: "o1",
  emailEventId: "e1",
  retry: 0,
  ...over
})

const report = (over: Partial<RepliesReport>): RepliesReport => ({
  since: new Date("2026-11-29T10:00:00Z"),
  counts: { sent: 12, drafted: 1, failed: 0, skipped: { auto_reply_header: 4, unauthenticated: 1 }, waiting: 2, oldestWaiting: new Date("2026-12-06T09:40:00Z"), retried: 0, retryingByItself: 0 },
  outcomes: [],
  more: 0,
  all: false,
  customer: null,
  ...over
})

describe("mailroom replies", () => {
  it("reads --since as minutes, hours, days or weeks, and nothing else", () => {
    expect(parseSince("30m")).toBe(30 * 60_000)
    expect(parseSince("24h")).toBe(86_400_000)
    expect(parseSince(" 7D ")).toBe(7 * 86_400_000)
    expect(parseSince("2w")).toBe(14 * 86_400_000)
    for (const bad of ["", "7", "d", "7 days", "-1d", "1.5h", "7d2h", "9999999d"]) expect(parseSince(bad), bad).toBeUndefined()
  })

  it("says what the answers came to, and each mail for a person with why", () => {
    const text = formatReplies(report({
      outcomes: [
        outcome({}),
        outcome({ outcome: "drafted", reason: "[Gmail]/Drafts", detail: "it holds a link", from: "bo@customer.test", subject: "Link" }),
        outcome({ outcome: "drafted", reason: "[Gmail]/Drafts", detail: "" }),
        outcome({ outcome: "failed", reason: "smtp", detail: "550 mailbox unavailable", retry: 2 }),
        outcome({ erased: true, from: "", subject: "" })
      ],
      more: 3
    }))
    expect(text.split("\n")).toEqual([
      "Answers since 2026-11-29 10:00 UTC: 12 sent, 1 left as drafts, 0 failed, 5 not answered (4 auto_reply_header, 1 unauthenticated); 2 mail(s) waiting for an answer now, the oldest recorded 2026-12-06 09:40 UTC",
      "For a person, newest first (8):",
      `  2026-12-06 10:41 UTC  [#0a1b2c3d4e5f]  ada@customer.test  "Refund?"`,
      "    not answered (unauthenticated): no trusted server vouched for the sender",
      `  2026-12-06 10:41 UTC  [#0a1b2c3d4e5f]  bo@customer.test  "Link"`,
      "    left as a draft in [Gmail]/Drafts: it holds a link",
      `  2026-12-06 10:41 UTC  [#0a1b2c3d4e5f]  ada@customer.test  "Refund?"`,
      "    left as a draft in [Gmail]/Drafts (REPLY_MODE=draft)",
      `  2026-12-06 10:41 UTC  [#0a1b2c3d4e5f]  ada@customer.test  "Refund?"`,
      "    failed at SMTP (retry 2): 550 mailbox unavailable",
      "  2026-12-06 10:41 UTC  [#0a1b2c3d4e5f]  (customer erased)",
      "    not answered (unauthenticated): no trusted server vouched for the sender",
      "  … and 3 more: --limit 8 shows them"
    ])
  })

  it("counts the failures mailroom still offers again by itself apart from a person's", () => {
    const counts = { ...report({}).counts, failed: 3, retryingByItself: 2 }
    expect(formatReplies(report({ counts })).split("\n")[0]).toContain(": 12 sent, 1 left as drafts, 3 failed (2 offered again by itself), 5 not answered")
    expect(formatReplies(report({})).split("\n")[0]).toContain(": 12 sent, 1 left as drafts, 0 failed, 5 not answered")
  })

  it("writes the control characters a sender put in a subject, an address or a detail as escapes", () => {
    const text = formatReplies(report({
      outcomes: [outcome({ subject: "Hi\u001b[2J\u202e", from: "x\n@customer.test", detail: "x-autoreply: \u0007yes" })]
    }))
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u202e]/)
    expect(text).toContain(`x\\u000a@customer.test  "Hi\\u001b[2J\\u202e"`)
    expect(text).toContain("x-autoreply: \\u0007yes")
  })

  it("names the mailbox only when the list holds several, and says when there is nothing", () => {
    const two = formatReplies(report({ outcomes: [outcome({}), outcome({ mailbox: "billing@example.com" })] }))
    expect(two).toContain(`[#0a1b2c3d4e5f]  billing@example.com  ada@customer.test`)
    expect(formatReplies(report({ outcomes: [outcome({})] }))).not.toContain("support@example.com")
    expect(formatReplies(report({}))).toContain("\nNothing for a person in that time.")
    expect(formatReplies(report({ all: true }))).toContain("\nNo answer in that time.")
    expect(formatReplies(report({ counts: { sent: 0, drafted: 0, failed: 0, skipped: {}, waiting: 0, oldestWaiting: null, retried: 0, retryingByItself: 0 } }))).toContain(": 0 sent, 0 left as drafts, 0 failed, 0 not answered; 0 mail(s) waiting for an answer now\n")
  })
})
