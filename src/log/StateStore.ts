import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer, Option, Ref } from "effect"

/**
 * Where intake stands in a mailbox. UIDs up to `backfillTo` existed before mailroom first looked and
 * are taken only if unread (IMAP_BACKFILL=unseen); `seenUid` trails `lastUid` until \Seen is set.
 */
export interface Cursor {
  readonly mailbox: string
  readonly uidValidity: number
  readonly lastUid: number
  readonly backfillTo: number
  readonly seenUid: number
}

/** How the instance watching a mailbox is doing, for `status`. */
export interface Health {
  readonly mailbox: string
  readonly instance: string
  readonly state: string
  readonly logins: number
  readonly lastError: string | null
  readonly lastErrorAt: Date | null
  readonly updatedAt: Date
}

export type HealthReport =
  | { readonly _tag: "State"; readonly state: string }
  | { readonly _tag: "Login" }
  | { readonly _tag: "Error"; readonly state: string; readonly error: string }

/** The mailbox_health row of a mailbox's answers (the responder's), beside the mailbox's own (the poller's). */
export const repliesHealthKey = (mailbox: string) => `replies:${mailbox}`

export interface StateStoreShape {
  readonly cursor: (mailbox: string) => Effect.Effect<Option.Option<Cursor>, SqlError>
  /** Replaces the cursor; used on the first start and after a UIDVALIDITY change. */
  readonly reset: (cursor: Cursor) => Effect.Effect<void, SqlError>
  /** Moves `lastUid` forward (never back) for the same UIDVALIDITY; false when it no longer matches. */
  readonly advance: (mailbox: string, uidValidity: number, lastUid: number) => Effect.Effect<boolean, SqlError>
  readonly markSeen: (mailbox: string, uidValidity: number, seenUid: number) => Effect.Effect<void, SqlError>
  readonly reportHealth: (mailbox: string, instance: string, report: HealthReport) => Effect.Effect<void, SqlError>
  readonly health: Effect.Effect<ReadonlyArray<Health>, SqlError>
}

interface CursorRow {
  readonly mailbox: string
  readonly uidvalidity: string
  readonly last_uid: string
  readonly backfill_to: string
  readonly seen_uid: string
}

const fromRow = (row: CursorRow): Cursor => ({
  mailbox: row.mailbox,
  uidValidity: Number(row.uidvalidity),
  lastUid: Number(row.last_uid),
  backfillTo: Number(row.backfill_to),
  seenUid: Number(row.seen_uid)
})

/**
 * Moves a cursor's last UID up, only under the UIDVALIDITY the caller read mail under; returns the
 * mailbox when it did. A statement of its own, or a clause of the commit that records the batch.
 */
export const advanceStatement = (sql: SqlClient.SqlClient, mailbox: string, uidValidity: number, lastUid: number, seenUid?: number) =>
  sql<{ readonly mailbox: string }>`
    UPDATE cursors SET last_uid = GREATEST(last_uid, ${lastUid}),
      ${seenUid === undefined ? sql.literal("") : sql`seen_uid = GREATEST(seen_uid, ${seenUid}),`} updated_at = now()
    WHERE mailbox = ${mailbox} AND uidvalidity = ${uidValidity}
    RETURNING mailbox
  `

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return StateStore.of({
    cursor: (mailbox) =>
      sql<CursorRow>`SELECT * FROM cursors WHERE mailbox = ${mailbox}`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), fromRow))
      ),
    reset: (cursor) =>
      sql`
        INSERT INTO cursors (mailbox, uidvalidity, last_uid, backfill_to, seen_uid)
        VALUES (${cursor.mailbox}, ${cursor.uidValidity}, ${cursor.lastUid}, ${cursor.backfillTo}, ${cursor.seenUid})
        ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = EXCLUDED.uidvalidity, last_uid = EXCLUDED.last_uid,
          backfill_to = EXCLUDED.backfill_to, seen_uid = EXCLUDED.seen_uid, updated_at = now()
      `.pipe(Effect.asVoid),
    advance: (mailbox, uidValidity, lastUid) =>
      advanceStatement(sql, mailbox, uidValidity, lastUid).pipe(Effect.map((rows) => rows.length === 1)),
    markSeen: (mailbox, uidValidity, seenUid) =>
      sql`
        UPDATE cursors SET seen_uid = GREATEST(seen_uid, ${seenUid})
        WHERE mailbox = ${mailbox} AND uidvalidity = ${uidValidity}
      `.pipe(Effect.asVoid),
    reportHealth: (mailbox, instance, report) => {
      const state = report._tag === "Login" ? "connected" : report.state
      const logins = report._tag === "Login" ? 1 : 0
      const error = report._tag === "Error" ? report.error : null
      return sql`
        INSERT INTO mailbox_health (mailbox, instance, state, logins, last_error, last_error_at)
        VALUES (${mailbox}, ${instance}, ${state}, ${logins}, ${error}, ${error === null ? null : new Date()})
        ON CONFLICT (mailbox) DO UPDATE SET instance = EXCLUDED.instance, state = EXCLUDED.state,
          logins = CASE WHEN mailbox_health.instance = EXCLUDED.instance THEN mailbox_health.logins ELSE 0 END + EXCLUDED.logins,
          last_error = COALESCE(EXCLUDED.last_error, mailbox_health.last_error),
          last_error_at = COALESCE(EXCLUDED.last_error_at, mailbox_health.last_error_at),
          updated_at = now()
        -- A standby saying so must not hide the instance that leads the mailbox: its row stays.
        WHERE EXCLUDED.state <> 'standby' OR mailbox_health.instance = EXCLUDED.instance
          OR mailbox_health.state IN ('standby', 'stopped')
      `.pipe(Effect.asVoid)
    },
    health: sql<{
      mailbox: string
      instance: string
      state: string
      logins: string
      last_error: string | null
      last_error_at: Date | null
      updated_at: Date
    }>`SELECT * FROM mailbox_health ORDER BY mailbox`.pipe(
      Effect.map((rows) =>
        rows.map((row) => ({
          mailbox: row.mailbox,
          instance: row.instance,
          state: row.state,
          logins: Number(row.logins),
          lastError: row.last_error,
          lastErrorAt: row.last_error_at,
          updatedAt: row.updated_at
        }))
      )
    )
  })
})

/** Cursors (where intake stands in each mailbox) and mailbox health, kept beside the events they describe. */
export class StateStore extends Context.Tag("mailroom/StateStore")<StateStore, StateStoreShape>() {
  static readonly Live = Layer.effect(StateStore, make)

  static readonly Test = Layer.effect(
    StateStore,
    Effect.gen(function*() {
      const cursors = yield* Ref.make(new Map<string, Cursor>())
      const health = yield* Ref.make(new Map<string, Health>())
      const update = (mailbox: string, uidValidity: number, f: (cursor: Cursor) => Cursor) =>
        Ref.modify(cursors, (map) => {
          const cursor = map.get(mailbox)
          if (!cursor || cursor.uidValidity !== uidValidity) return [false, map] as const
          return [true, new Map(map).set(mailbox, f(cursor))] as const
        })
      return StateStore.of({
        cursor: (mailbox) => Ref.get(cursors).pipe(Effect.map((map) => Option.fromNullable(map.get(mailbox)))),
        reset: (cursor) => Ref.update(cursors, (map) => new Map(map).set(cursor.mailbox, cursor)),
        advance: (mailbox, uidValidity, lastUid) =>
          update(mailbox, uidValidity, (c) => ({ ...c, lastUid: Math.max(c.lastUid, lastUid) })),
        markSeen: (mailbox, uidValidity, seenUid) =>
          update(mailbox, uidValidity, (c) => ({ ...c, seenUid: Math.max(c.seenUid, seenUid) })).pipe(Effect.asVoid),
        reportHealth: (mailbox, instance, report) =>
          Ref.update(health, (map) => {
            const before = map.get(mailbox)
            const next: Health = {
              mailbox,
              instance,
              state: report._tag === "Login" ? "connected" : report.state,
              logins: (before?.instance === instance ? before.logins : 0) + (report._tag === "Login" ? 1 : 0),
              lastError: report._tag === "Error" ? report.error : before?.lastError ?? null,
              lastErrorAt: report._tag === "Error" ? new Date() : before?.lastErrorAt ?? null,
              updatedAt: new Date()
            }
            return new Map(map).set(mailbox, next)
          }),
        health: Ref.get(health).pipe(Effect.map((map) => [...map.values()]))
      })
    })
  )
}
