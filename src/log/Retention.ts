import { SqlClient } from "@effect/sql"
import { Effect, Metric, Option, Schedule } from "effect"
import { retentionDays } from "../config/Config.js"
import { rawDropped } from "../telemetry/Metrics.js"
import { EventLog } from "./EventLog.js"

/** Rows per DELETE: a large table is dropped in many short transactions, never in one long one. */
export const retentionBatch = 200

/** After the pass at start. */
export const retentionSchedule = Schedule.spaced("1 hour")

export interface Dropped {
  readonly rows: number
  readonly bytes: number
}

/**
 * Drops raw mail stored more than `days` days ago that no event of the last `days` days refers to:
 * raw_messages is content-addressed, so a duplicate received yesterday of a mail stored a year ago
 * still needs the old row. Each batch holds the log's append lock, so no intake commit can come to
 * refer to a row between the check and the delete. The events themselves are never touched.
 */
export const dropExpiredRaw = Effect.fn("Retention.dropExpired")(function*(days: number, batch: number = retentionBatch) {
  const sql = yield* SqlClient.SqlClient
  const log = yield* EventLog
  const deleteBatch = log.transaction(() =>
    sql<{ bytes: string }>`
      DELETE FROM raw_messages WHERE sha256 IN (
        SELECT r.sha256 FROM raw_messages r
        WHERE r.stored_at < now() - make_interval(days => ${days})
          AND NOT EXISTS (
            SELECT 1 FROM events e
            WHERE e.occurred_at >= now() - make_interval(days => ${days}) AND e.data->>'rawSha256' = r.sha256
          )
        ORDER BY r.stored_at
        LIMIT ${batch}
      )
      RETURNING octet_length(bytes) AS bytes
    `
  )
  let rows = 0
  let bytes = 0
  while (true) {
    const deleted = yield* deleteBatch
    rows += deleted.length
    bytes += deleted.reduce((sum, row) => sum + Number(row.bytes), 0)
    if (deleted.length < batch) break
  }
  yield* Effect.annotateCurrentSpan({ rows, bytes })
  return { rows, bytes } satisfies Dropped
})

/** One pass: logs a line when it dropped anything; a failure is logged and left to the next pass. */
const pass = (days: number) =>
  dropExpiredRaw(days).pipe(
    Effect.tap(({ bytes, rows }) =>
      rows === 0 ? Effect.void : Effect.zipRight(
        Metric.incrementBy(rawDropped, rows),
        Effect.logInfo(`Dropped the raw bytes of ${rows} mail(s) older than ${days} days (RETENTION_DAYS): ${bytes} bytes`)
      )
    ),
    Effect.catchAll((error) => Effect.logWarning(`Dropping raw mail older than ${days} days failed (${error.message}); trying again in an hour`))
  )

/** With RETENTION_DAYS set: a pass at once, then every hour. Unset: returns at once and keeps everything. */
export const runRetention = Effect.gen(function*() {
  const days = yield* retentionDays
  if (Option.isNone(days)) return
  yield* pass(days.value).pipe(Effect.repeat(retentionSchedule))
}).pipe(Effect.annotateLogs({ service: "Retention" }))
