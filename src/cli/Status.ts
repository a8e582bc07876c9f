import { SqlClient } from "@effect/sql"
import { Effect, Option } from "effect"
import { DatabaseConfig } from "../config/Config.js"
import type { WatchedMailbox } from "../config/Mailboxes.js"
import type { MailboxRuntime } from "../mailbox/Fleet.js"
import { StatusFleet } from "../mailbox/Fleet.js"
import { Imap } from "../mailbox/Imap.js"
import { TicketRepo } from "../tickets/TicketRepo.js"
import { lockKey } from "../mailbox/Leadership.js"
import { repliesHealthKey, StateStore } from "../log/StateStore.js"
import { EventLog } from "../log/EventLog.js"
import { describeUids, findGaps } from "../mailbox/Reconcile.js"
import type { OutcomeCounts } from "../replies/Outcomes.js"
import { byItself, repliesReport } from "../replies/Outcomes.js"
import { autoRetrySince } from "../replies/Delivery.js"
import { smtpOutageWait } from "../config/Replies.js"
import { when } from "./Replies.js"

export interface MailboxReport {
  readonly mailbox: string
  readonly uidValidity: number | null
  readonly cursor: number | null
  readonly seenUpTo: number | null
  /** Mails on the server above the cursor; null when the server could not be asked. */
  readonly backlog: number | null
  readonly serverError: string | null
  /** UIDs the cursor has passed that have no event in the log (`mailroom reconcile` takes them in); null when the server could not be asked. */
  readonly gaps: ReadonlyArray<number> | null
  /** Seconds since the oldest mail without an event arrived, gaps and backlog alike; 0 when none. */
  readonly oldestUnprocessedAge: number | null
  readonly lockHolder: string | null
  readonly instance: string | null
  readonly connection: string
  readonly logins: number
  readonly lastError: string | null
  readonly lastErrorAt: string | null
  /** Whether its answers go out or wait, and why; null where no responder ever ran (AGENT=off). */
  readonly replies: { readonly state: string; readonly lastError: string | null; readonly lastErrorAt: string | null } | null
}

export interface StatusReport {
  readonly mailboxes: ReadonlyArray<MailboxReport>
  /** What the automatic answers came to in the last 24 hours, and how many a person should look at (`mailroom replies`). */
  readonly answers: OutcomeCounts & { readonly forAPerson: number }
  readonly events: Readonly<Record<string, number>>
  /** `deadLettered`: events the bus refused for their size or content, set aside in dead_letters. */
  readonly outbox: ReadonlyArray<
    { readonly consumer: string; readonly position: string; readonly lag: number; readonly deadLettered: number }
  >
}

/**
 * Who holds a mailbox's advisory lock, from PostgreSQL's own view of its sessions. pg_locks shows
 * every database of the server, and another mailroom's database uses the same keys.
 */
const lockHolder = (mailbox: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ holder: string }>`
      SELECT coalesce(a.application_name, '') || ' (pid ' || a.pid || coalesce(', ' || host(a.client_addr), '') || ')' AS holder
      FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND ((l.classid::bigint << 32) | l.objid::bigint) = ${lockKey(mailbox)}::bigint
    `
    return rows[0]?.holder ?? null
  })

const serverBacklog = (watched: WatchedMailbox, lastUid: number) =>
  Effect.scoped(Effect.gen(function*() {
    const session = yield* (yield* Imap).connect
    yield* session.open(watched.folder)
    const backlog = (yield* session.search({ from: lastUid + 1 }, { unseenOnly: false })).length
    const { gaps, oldestUnprocessedAge } = yield* findGaps(session, watched)
    return { backlog, gaps, oldestUnprocessedAge }
  }))

/** One mailbox's part of the report: its cursor and health from the database, its backlog from the server. */
const mailboxReport = (mailbox: MailboxRuntime<Imap>, embedded: boolean) =>
  Effect.gen(function*() {
    const state = yield* StateStore
    const key = mailbox.watched.key
    const cursor = yield* state.cursor(key)
    const all = yield* state.health
    const health = all.find((h) => h.mailbox === key)
    const replies = all.find((h) => h.mailbox === repliesHealthKey(key))
    const backlog = yield* mailbox.run(
      serverBacklog(mailbox.watched, Option.match(cursor, { onNone: () => 0, onSome: (c) => c.lastUid })).pipe(
        Effect.provideService(StateStore, state),
        Effect.provideService(TicketRepo, yield* TicketRepo),
        Effect.either
      )
    )
    return {
      mailbox: key,
      uidValidity: Option.getOrNull(Option.map(cursor, (c) => c.uidValidity)),
      cursor: Option.getOrNull(Option.map(cursor, (c) => c.lastUid)),
      seenUpTo: Option.getOrNull(Option.map(cursor, (c) => c.seenUid)),
      backlog: backlog._tag === "Right" ? backlog.right.backlog : null,
      gaps: backlog._tag === "Right" ? backlog.right.gaps : null,
      oldestUnprocessedAge: backlog._tag === "Right" ? backlog.right.oldestUnprocessedAge : null,
      serverError: backlog._tag === "Left" ? backlog.left.message : null,
      lockHolder: embedded ? "embedded database (one process)" : yield* lockHolder(key),
      instance: health?.instance ?? null,
      connection: health?.state ?? "never started",
      logins: health?.logins ?? 0,
      lastError: health?.lastError ?? null,
      lastErrorAt: health?.lastErrorAt?.toISOString() ?? null,
      replies: replies === undefined
        ? null
        : { state: replies.state, lastError: replies.lastError, lastErrorAt: replies.lastErrorAt?.toISOString() ?? null }
    } satisfies MailboxReport
  })

export const collectStatus = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const log = yield* EventLog
  const embedded = Option.isNone((yield* DatabaseConfig).url)
  const mailboxes = yield* Effect.forEach(yield* StatusFleet, (mailbox) => mailboxReport(mailbox, embedded), { concurrency: 8 })
  const maxSeq = BigInt((yield* sql<{ max: string | null }>`SELECT max(seq) AS max FROM events`)[0]?.max ?? 0)
  const positions = yield* sql<{ consumer: string; last_seq: string }>`SELECT consumer, last_seq FROM positions ORDER BY consumer`
  const deadLetters = new Map(
    (yield* sql<{ consumer: string; count: string }>`SELECT consumer, count(*) AS count FROM dead_letters GROUP BY consumer`)
      .map((row) => [row.consumer, Number(row.count)])
  )
  const answered = yield* repliesReport({
    since: new Date(Date.now() - 86_400_000),
    limit: 0,
    all: false,
    autoRetrySince: autoRetrySince({ smtpOutageWait: yield* smtpOutageWait }, Date.now())
  })
  const report: StatusReport = {
    mailboxes,
    answers: { ...answered.counts, forAPerson: answered.more },
    events: yield* log.countsByType,
    outbox: positions.map((p) => ({
      consumer: p.consumer,
      position: p.last_seq,
      lag: Number(maxSeq - BigInt(p.last_seq)),
      deadLettered: deadLetters.get(p.consumer) ?? 0
    }))
  }
  return report
})

const describeAnswers = (a: StatusReport["answers"]) =>
  `${a.sent} sent, ${a.drafted} left as drafts, ${a.failed} failed${byItself(a)}, ${Object.values(a.skipped).reduce((n, c) => n + c, 0)} not answered; ${a.waiting} waiting now` +
  (a.oldestWaiting === null ? "" : `, the oldest recorded ${when(a.oldestWaiting)}`)

const line = (label: string, value: unknown) => `  ${label.padEnd(14)} ${value ?? "-"}`

export const formatStatus = (report: StatusReport): string =>
  [
    ...report.mailboxes.flatMap((m) => [
      `${m.mailbox}`,
      line("uidvalidity", m.uidValidity),
      line("cursor", m.cursor === null ? "not started" : `UID ${m.cursor} (\\Seen set up to ${m.seenUpTo})`),
      line("backlog", m.backlog === null ? `unknown (${m.serverError})` : `${m.backlog} mail(s) on the server above the cursor`),
      ...(m.gaps === null ? [] : [
        line("gaps", m.gaps.length === 0 ? "none" : `${m.gaps.length} mail(s) passed without an event (UIDs ${describeUids(m.gaps)}): run mailroom reconcile`),
        line("unprocessed", m.oldestUnprocessedAge === 0 ? "nothing waiting" : `the oldest mail without an event arrived ${m.oldestUnprocessedAge} s ago`)
      ]),
      line("lock holder", m.lockHolder ?? "nobody"),
      line("connection", `${m.connection}${m.instance ? ` (${m.instance}, ${m.logins} login(s))` : ""}`),
      line("last error", m.lastError ? `${m.lastError} at ${m.lastErrorAt}` : "none"),
      line(
        "replies",
        m.replies === null
          ? "no answers yet (AGENT=off, or no responder has run)"
          : `${m.replies.state}${m.replies.lastError ? `; last error at ${m.replies.lastErrorAt}: ${m.replies.lastError}` : ""}`
      )
    ]),
    "answers, last 24 h",
    line("outcomes", describeAnswers(report.answers)),
    line("for a person", report.answers.forAPerson === 0 ? "none" : `${report.answers.forAPerson}: see mailroom replies --since 24h`),
    "events",
    ...Object.entries(report.events).sort().map(([type, n]) => line(type, n)),
    "outbox",
    ...(report.outbox.length === 0 ? [line("(none yet)", "")] : report.outbox.map((o) =>
      line(o.consumer, `${o.lag} event(s) behind (seq ${o.position}), ${o.deadLettered} dead-lettered`)
    ))
  ].join("\n")
