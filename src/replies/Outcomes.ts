import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import type { EmailReceived, ReplyOutcome, SkipReason, StoredEvent } from "../log/Event.js"
import { EventLog } from "../log/EventLog.js"
import { customerIds } from "../tickets/CustomerIds.js"
import { ticketToken } from "./Reply.js"
import { askedAgain, mailErased } from "./ReplyStore.js"

/**
 * What the automatic answers came to over a span of time, and the mails among them a person should
 * look at: `mailroom replies`. Read from the log alone (personal fields opened as any reader opens
 * them, an erased customer's reading as erased): on PostgreSQL while mailroom runs, on the embedded
 * database (which one process holds) while it is stopped.
 */

/**
 * Skips that leave a customer's question unanswered: someone of the team answers it by hand. The
 * others (auto-replies, bounces, bulk mail, spam, loops, our own address, a person who answered
 * first) are no one's question, or already answered.
 */
export const skipsForAPerson: ReadonlyArray<SkipReason> = [
  "needs_human",
  "unauthenticated",
  "rate_limited",
  "ticket_limit",
  "global_limit"
]

/** Each mail by its last word: an outcome asked for again (`replies retry`) counts only among `retried`. */
export interface OutcomeCounts {
  readonly sent: number
  readonly drafted: number
  readonly failed: number
  /** By reason. */
  readonly skipped: Readonly<Record<string, number>>
  /** Mail recorded for a mailbox that answers, with no outcome yet (an LLM or SMTP outage, a backlog, a retry asked for). */
  readonly waiting: number
  /** When the longest-waiting of those was recorded: past LLM_OUTAGE_WAIT or SMTP_OUTAGE_WAIT its answer goes to a person. */
  readonly oldestWaiting: Date | null
  /** Failed answers asked for again: by a person (`mailroom replies retry`), or by mailroom itself (ReplyFailed.autoRetry). */
  readonly retried: number
  /** Of `failed`, those mailroom still asks for again by itself (ReplyFailed.autoRetry): not yet a person's. */
  readonly retryingByItself: number
}

/** " (n offered again by itself)" when some failures are still mailroom's to ask for again. */
export const byItself = (counts: Pick<OutcomeCounts, "retryingByItself">) =>
  counts.retryingByItself === 0 ? "" : ` (${counts.retryingByItself} offered again by itself)`

export interface AnswerOutcome {
  readonly at: Date
  readonly mailbox: string
  /** The `[#token]` customers see in the subject. */
  readonly ticket: string
  readonly outcome: "sent" | "drafted" | "skipped" | "failed"
  /** The skip's reason, the failure's stage, the draft's folder, or how it was sent. */
  readonly reason: string
  /** Why, in words: the draft's note for the team, the skip's detail, the failure. */
  readonly detail: string
  /** The customer's address and the mail's subject, as written (the text report escapes control characters); "" once the customer is erased (`erased`). */
  readonly from: string
  readonly subject: string
  readonly erased: boolean
  /** The outcome's own event (`replies retry --id` takes a ReplyFailed's), and the mail's. */
  readonly eventId: string
  readonly emailEventId: string
  /** 0: the mail's first answer; n: its n-th retry. */
  readonly retry: number
}

export interface RepliesReport {
  readonly since: Date
  readonly counts: OutcomeCounts
  /** Newest first, at most `limit`; `more` are left out. */
  readonly outcomes: ReadonlyArray<AnswerOutcome>
  readonly more: number
  /** Every outcome, or only those a person should look at. */
  readonly all: boolean
  /** Only this customer's mail (`--customer`), as given. */
  readonly customer: string | null
}

const outcomeTypes = ["ReplySent", "ReplyDrafted", "ReplySkipped", "ReplyFailed"] as const

const kindOf = { ReplySent: "sent", ReplyDrafted: "drafted", ReplySkipped: "skipped", ReplyFailed: "failed" } as const

const reasonAndDetail = (data: ReplyOutcome): { readonly reason: string; readonly detail: string } => {
  switch (data._tag) {
    case "ReplySent":
      return { reason: data.foundInSent ? "found in the sent folder after a restart" : "smtp", detail: "" }
    case "ReplyDrafted":
      return { reason: data.mailbox, detail: data.reason ?? "" }
    case "ReplySkipped":
      return { reason: data.reason, detail: data.detail }
    case "ReplyFailed":
      return { reason: data.stage, detail: data.reason }
  }
}

/** At most `max` characters of what a sender wrote: a report lists many. */
const cut = (text: string, max: number) => text.length > max ? `${text.slice(0, max - 1)}…` : text

const describe = (event: StoredEvent & { readonly data: ReplyOutcome }, email: StoredEvent | undefined): AnswerOutcome => {
  const received = email?.data._tag === "EmailReceived" ? email.data as EmailReceived : undefined
  const { detail, reason } = reasonAndDetail(event.data)
  return {
    at: event.occurredAt,
    mailbox: event.mailbox,
    ticket: ticketToken(event.data.ticketId),
    outcome: kindOf[event.data._tag],
    reason,
    detail: cut(detail, 300),
    from: cut(received?.from.address ?? "", 200),
    subject: cut(received?.subject ?? "", 120),
    erased: (event.erased ?? false) || (email?.erased ?? false),
    eventId: event.id,
    emailEventId: event.data.emailEventId,
    retry: event.data.retry
  }
}

const isOutcome = (event: StoredEvent): event is StoredEvent & { readonly data: ReplyOutcome } =>
  (outcomeTypes as ReadonlyArray<string>).includes(event.data._tag)

export interface ReportOptions {
  readonly since: Date
  readonly limit: number
  readonly all: boolean
  readonly customer?: string
  /** Failures recorded before this are no longer asked for again by itself (Delivery.autoRetrySince). */
  readonly autoRetrySince: Date
}

/**
 * The report over the outcomes recorded since `since`: every one with `all`, else those for a
 * person (not a failure mailroom still asks for again by itself); with `customer` (trimmed, lower
 * case), only that address's mail.
 */
export const repliesReport = (options: ReportOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const log = yield* EventLog
    const address = options.customer
    const whose = address === undefined ? sql`TRUE` : sql`data->>'customerId' = ANY(${yield* customerIds(address)})`
    const inSpan = sql`occurred_at > ${options.since} AND ${whose}`
    // An outcome asked for again (a failure, a needs_human skip) is no longer the last word on its mail: its retry is.
    const lastWord = sql`NOT (type IN ('ReplyFailed', 'ReplySkipped') AND ${askedAgain(sql)})`
    // A failure whose recipient the SMTP server refused for now, that the responder asks for again
    // by itself (`retryDue` takes those recorded since `autoRetrySince`): a person need not act yet.
    const byItself = sql`(type = 'ReplyFailed' AND jsonb_typeof(data->'autoRetry') = 'object' AND occurred_at > ${options.autoRetrySince})`
    const chosen = options.all
      ? sql`type IN ${sql.in(outcomeTypes)} AND ${inSpan}`
      : sql`type IN ('ReplyDrafted', 'ReplyFailed', 'ReplySkipped') AND ${inSpan}
          AND (type <> 'ReplySkipped' OR data->>'reason' IN ${sql.in(skipsForAPerson)}) AND ${lastWord} AND NOT ${byItself}`
    const [byType, [waiting], [chosenCount]] = yield* Effect.all([
      // Each mail counts by its last word: a failure asked for again counts among `retried`, and its
      // retry's outcome as what the answer came to.
      sql<{ type: string; reason: string | null; count: string }>`
        SELECT type, CASE WHEN type = 'ReplySkipped' THEN data->>'reason' WHEN ${byItself} THEN 'by itself' END AS reason, count(*) AS count
        FROM events WHERE type IN ${sql.in([...outcomeTypes, "ReplyRetried"])} AND ${inSpan} AND ${lastWord}
        GROUP BY 1, 2
      `,
      // Mail (or a retry asked for) past a responder's position is answered in its next page; before
      // it, each has its outcome. An erased customer's mail is never answered (Responder), so it
      // waits for nothing.
      sql<{ count: string; oldest: Date | string | null }>`
        SELECT count(*) AS count, min(e.occurred_at) AS oldest FROM events e JOIN positions p ON p.consumer = 'responder:' || e.mailbox
        CROSS JOIN LATERAL (SELECT CASE WHEN e.type = 'EmailReceived' THEN e.id::text ELSE e.data->>'emailEventId' END AS mail) m
        WHERE e.type IN ('EmailReceived', 'ReplyRetried') AND e.seq > p.last_seq AND ${whose}
          AND NOT EXISTS (
            SELECT 1 FROM events o WHERE o.data->>'emailEventId' = m.mail AND o.type IN ${sql.in(outcomeTypes)}
              AND coalesce(o.data->>'retry', '0') = coalesce(e.data->>'retry', '0')
          )
          AND NOT ${mailErased(sql, sql`m.mail`)}
      `,
      sql<{ count: string }>`SELECT count(*) AS count FROM events WHERE ${chosen}`
    ])
    const events = options.limit === 0 ? [] : (yield* log.readWhere(
      sql`seq IN (SELECT seq FROM events WHERE ${chosen} ORDER BY seq DESC LIMIT ${options.limit})`
    )).filter(isOutcome).reverse()
    const ids = [...new Set(events.map((e) => e.data.emailEventId))]
    const emails = ids.length === 0 ? [] : yield* log.readWhere(sql`id IN ${sql.in(ids)}`)
    const byId = new Map(emails.map((e) => [e.id, e]))
    const count = (type: string) => byType.filter((row) => row.type === type).reduce((n, row) => n + Number(row.count), 0)
    return {
      since: options.since,
      counts: {
        sent: count("ReplySent"),
        drafted: count("ReplyDrafted"),
        failed: count("ReplyFailed"),
        skipped: Object.fromEntries(
          byType.filter((row) => row.type === "ReplySkipped")
            .sort((a, b) => Number(b.count) - Number(a.count))
            .map((row) => [row.reason ?? "unknown", Number(row.count)])
        ),
        waiting: Number(waiting?.count ?? 0),
        oldestWaiting: waiting?.oldest == null ? null : new Date(waiting.oldest),
        retried: count("ReplyRetried"),
        retryingByItself: byType.filter((row) => row.type === "ReplyFailed" && row.reason === "by itself").reduce((n, row) => n + Number(row.count), 0)
      },
      outcomes: events.map((event) => describe(event, byId.get(event.data.emailEventId))),
      more: Math.max(0, Number(chosenCount?.count ?? 0) - events.length),
      all: options.all,
      customer: address ?? null
    } satisfies RepliesReport
  }).pipe(Effect.withSpan("Outcomes.report", { attributes: { "mailroom.replies.all": options.all } }))
