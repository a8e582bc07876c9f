import { Console, Effect, Option } from "effect"
import type { AnswerOutcome, RepliesReport } from "../replies/Outcomes.js"
import { byItself, repliesReport } from "../replies/Outcomes.js"
import { autoRetrySince } from "../replies/Delivery.js"
import { smtpOutageWait } from "../config/Replies.js"
import type { ReplyRetried } from "../log/Event.js"
import { ReplyStore } from "../replies/ReplyStore.js"
import { ticketToken } from "../replies/Reply.js"
import { visible } from "../lib/Visible.js"
import { customerArgument, StartupRefused } from "./Fatal.js"

const units: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** `--since 30m | 24h | 7d | 2w`: how far back, in milliseconds; undefined for anything else. */
export const parseSince = (value: string): number | undefined => {
  const match = /^\s*(\d{1,6})\s*([mhdw])\s*$/i.exec(value)
  return match ? Number(match[1]) * units[match[2]!.toLowerCase()]! : undefined
}

/** A time as the reports print it: to the minute, in UTC. */
export const when = (at: Date) => `${at.toISOString().slice(0, 16).replace("T", " ")} UTC`

const stages: Readonly<Record<string, string>> = { agent: "the LLM", smtp: "SMTP", drafts: "the drafts folder" }

/** " (a, b)" of the notes that apply, or nothing. */
const notes = (...parts: ReadonlyArray<string | false>) => {
  const kept = parts.filter((part): part is string => part !== false && part !== "")
  return kept.length === 0 ? "" : ` (${kept.join(", ")})`
}

const describeOutcome = (o: AnswerOutcome): string => {
  const why = o.detail === "" ? "" : `: ${visible(o.detail)}`
  const retry = o.retry > 0 && `retry ${o.retry}`
  switch (o.outcome) {
    case "sent":
      return `sent${notes(o.reason, retry)}`
    case "drafted":
      return `left as a draft in ${o.reason}${notes(o.detail === "" && "REPLY_MODE=draft", retry)}${why}`
    case "skipped":
      return `not answered${notes(o.reason, retry)}${why}`
    case "failed":
      return `failed at ${stages[o.reason] ?? o.reason}${notes(retry)}${why}`
  }
}

const describeMail = (o: AnswerOutcome, showMailbox: boolean) =>
  [
    `  ${when(o.at)}`,
    `[#${o.ticket}]`,
    ...(showMailbox ? [o.mailbox] : []),
    o.erased ? "(customer erased)" : o.from === "" ? "(sender unknown)" : visible(o.from),
    // Quoted as written, its control and bidi characters escaped (JSON.stringify leaves a bidi override be).
    ...(o.erased ? [] : [`"${visible(o.subject)}"`])
  ].join("  ")

const describeCounts = (report: RepliesReport) => {
  const { counts } = report
  const skipped = Object.entries(counts.skipped)
  const total = skipped.reduce((n, [, count]) => n + count, 0)
  return `${counts.sent} sent, ${counts.drafted} left as drafts, ${counts.failed} failed${byItself(counts)}, ${total} not answered` +
    (total === 0 ? "" : ` (${skipped.map(([reason, n]) => `${n} ${reason}`).join(", ")})`) +
    (counts.retried === 0 ? "" : `, ${counts.retried} failure(s) asked for again`) +
    `; ${counts.waiting} mail(s) waiting for an answer now` +
    (counts.oldestWaiting === null ? "" : `, the oldest recorded ${when(counts.oldestWaiting)}`)
}

export const formatReplies = (report: RepliesReport): string => {
  const mailboxes = new Set(report.outcomes.map((o) => o.mailbox))
  const listed = report.outcomes.length + report.more
  return [
    `Answers${report.customer === null ? "" : ` to ${report.customer}`} since ${when(report.since)}: ${describeCounts(report)}`,
    listed === 0
      ? report.all ? "No answer in that time." : "Nothing for a person in that time."
      : `${report.all ? "Every answer" : "For a person"}, newest first (${listed}):`,
    ...report.outcomes.flatMap((o) => [describeMail(o, mailboxes.size > 1), `    ${describeOutcome(o)}`]),
    ...(report.more > 0 ? [`  … and ${report.more} more: --limit ${listed} shows them`] : [])
  ].join("\n")
}

/** `mailroom replies [--since 7d] [--all] [--customer ADDRESS] [--limit N] [--json]`. */
export const repliesCommand = (
  options: {
    readonly since: string
    readonly all: boolean
    readonly limit: number
    readonly json: boolean
    readonly customer: Option.Option<string>
  }
) =>
  Effect.gen(function*() {
    const span = parseSince(options.since)
    if (span === undefined) {
      return yield* new StartupRefused({ reason: `--since takes a span such as 30m, 24h, 7d or 2w, not ${JSON.stringify(options.since)}` })
    }
    if (!(options.limit > 0)) return yield* new StartupRefused({ reason: "--limit takes a whole number above 0" })
    const customer = Option.isSome(options.customer) ? yield* customerArgument(options.customer.value) : undefined
    // One customer's mail is looked into whole: every answer, sent ones too.
    const report = yield* repliesReport({
      since: new Date(Date.now() - span),
      limit: options.limit,
      all: options.all || customer !== undefined,
      autoRetrySince: autoRetrySince({ smtpOutageWait: yield* smtpOutageWait }, Date.now()),
      ...(customer === undefined ? {} : { customer })
    })
    yield* Console.log(options.json ? JSON.stringify(report, null, 2) : formatReplies(report))
    return report
  })

export const formatRetries = (retries: ReadonlyArray<ReplyRetried>): string =>
  retries.length === 0
    ? "No failed answer to ask for again in that span (one asked for already, or answered since, is left out)"
    : [
      `Asked again for ${retries.length} answer(s) that failed or found no drafts folder; a running mailroom answers them now, or the next run does:`,
      ...retries.map((r) => `  [#${ticketToken(r.ticketId)}]  mail ${r.emailEventId}, retry ${r.retry}`)
    ].join("\n")

/**
 * `mailroom replies retry [--since 24h] [--id EVENT_ID…]`: asks again for the answers of the span
 * that failed or needed a person with no drafts folder to take them, or for the outcomes named. Each is answered anew from who gets an answer on, so a
 * person's answer in the sent folder meanwhile, a cap or the checks still hold.
 */
export const retryCommand = (options: { readonly since: string; readonly ids: ReadonlyArray<string> }) =>
  Effect.gen(function*() {
    const span = parseSince(options.since)
    if (span === undefined) {
      return yield* new StartupRefused({ reason: `--since takes a span such as 30m, 24h, 7d or 2w, not ${JSON.stringify(options.since)}` })
    }
    const bad = options.ids.find((id) => !UUID.test(id))
    if (bad !== undefined) {
      return yield* new StartupRefused({ reason: `--id ${JSON.stringify(bad)} is not an event id: give the id of a ReplyFailed, or of a ReplySkipped as needs_human (a UUID)` })
    }
    const store = yield* ReplyStore
    const retries = yield* store.retryFailed({ since: new Date(Date.now() - span), ...(options.ids.length === 0 ? {} : { ids: options.ids }) })
    yield* Console.log(formatRetries(retries))
    return retries
  })

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
