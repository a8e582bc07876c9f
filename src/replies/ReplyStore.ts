import type { Statement } from "@effect/sql"
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer } from "effect"
import type { EventData, ReplyEvent, ReplyFailed, ReplyIntended, ReplyOutcome, ReplySkipped, StoredEvent } from "../log/Event.js"
import { answerKey, ReplyRetried } from "../log/Event.js"
import { EventLog } from "../log/EventLog.js"
import type { Append, NewEvent } from "../log/EventLog.js"
import { currentTraceparent } from "../telemetry/Tracing.js"
import { outboundStatements } from "../tickets/Projection.js"
import type { KeyRow, KeysRead } from "../log/Vault.js"
import { liveKeysJson } from "../log/Vault.js"
import { outboundRow } from "./Reply.js"

/**
 * SQL, of a reply outcome row of `events`: a person has asked for its mail's answer again since (a
 * ReplyRetried with a later retry), so it is no longer the last word on that mail.
 */
export const askedAgain = (sql: SqlClient.SqlClient) =>
  sql`EXISTS (
    SELECT 1 FROM events r WHERE r.type = 'ReplyRetried' AND r.data->>'emailEventId' = events.data->>'emailEventId'
      AND (r.data->>'retry')::int > coalesce(events.data->>'retry', '0')::int
  )`

/** SQL: the mail whose EmailReceived id is `mail` (text) was sealed under a key `mailroom erase` destroyed. */
export const mailErased = (sql: SqlClient.SqlClient, mail: Statement.Fragment) =>
  sql`EXISTS (SELECT 1 FROM events x JOIN customer_keys k ON k.id = x.key_id WHERE x.id = (${mail})::uuid AND k.key IS NULL)`

export interface ReplyState {
  readonly intent: ReplyIntended | undefined
  readonly outcome: ReplyOutcome | undefined
}

/** One answer to a mail: its first (`retry` 0) or a retry a person asked for. */
export interface AnswerAsked {
  readonly emailEventId: string
  readonly retry: number
}

/** The state of each answer `replyStates` was asked about. */
export type ReplyStates = (emailEventId: string, retry: number) => ReplyState

/**
 * `mailroom erase` erased the customer whose mail was being answered, after the responder had read
 * it: nothing of the answer is recorded (it would be sealed under a key made anew) or sent.
 */
export class CustomerErasedMeanwhile extends Data.TaggedError("CustomerErasedMeanwhile")<{ readonly emailEventId: string }> {
  override get message() {
    return `the customer whose mail ${this.emailEventId} was being answered has been erased: the answer is neither recorded nor sent`
  }
}

/** Whose answers the caps count. */
export interface AnswerScope {
  /** The mail being answered (its EmailReceived id): not counted, since a retry answers the same mail. */
  readonly mailId: string
  readonly customerId: string
  readonly recipient: { readonly id: string; readonly address: string }
  readonly ticketId: string
}

export interface AnswerWindows {
  readonly sender: Date
  readonly ticket: Date
  readonly all: Date
}

export interface AnswerCounts {
  readonly sender: number
  readonly ticket: number
  readonly all: number
}

/** Which answers `retryFailed` asks for again: those recorded since `since`, or the ones named. */
export interface RetryChoice {
  readonly since: Date
  /** Outcome event ids (ReplyFailed, or ReplySkipped as needs_human); when given, `since` is not looked at. */
  readonly ids?: ReadonlyArray<string>
}

/** The answers the responder asks for again by itself (ReplyFailed.autoRetry) in `mailbox`, due by `now`. */
export interface DueChoice {
  readonly mailbox: string
  readonly now: Date
  /** Failures recorded before this are long past SMTP_OUTAGE_WAIT (mailroom was stopped): only a person asks for them. */
  readonly since: Date
}

/** Whose earlier answer `waitingAhead` looks for. */
export interface AheadChoice {
  readonly mailbox: string
  readonly customerId: string
  /** The mail being answered (its EmailReceived id): only the customer's mail recorded before it counts. */
  readonly mailId: string
  /** As DueChoice's: a failure older than this is no longer asked for again by itself. */
  readonly since: Date
}

/** An earlier answer to the customer that waits for its automatic retry (ReplyFailed.autoRetry). */
export interface Ahead {
  readonly ticketId: string
  /** When it is asked for again; null when that retry is already asked for and not yet answered. */
  readonly at: string | null
}

export interface ReplyStoreShape {
  /**
   * The reply events recorded for each answer asked (an EmailReceived's, `retry` 0 its first, n its
   * n-th retry), in one round trip for a page of the log: what the responder already did for them.
   */
  readonly replyStates: (asked: ReadonlyArray<AnswerAsked>) => Effect.Effect<ReplyStates, SqlError>
  /**
   * Appends the intent to answer, unless the mail's customer has been erased since the responder
   * read it: checked under the log's append lock, which `erase` takes too, so no intent is ever
   * recorded for a customer erased before it. The database refuses a second intent.
   */
  readonly intend: (mailbox: string, intent: ReplyIntended) => Effect.Effect<string, SqlError | CustomerErasedMeanwhile>
  /**
   * Appends one outcome; a ReplySent also writes the answer's outbound `messages` row from its
   * ReplyIntended (`intent` when the caller holds it, else read from the log), in the same
   * transaction. The database refuses a second outcome. Nothing is recorded when the mail's
   * customer was erased since the intent (the answer was on its way): checked under the append lock,
   * as `intend` does, so no key is made anew to seal what the erasure removed.
   */
  readonly append: (
    mailbox: string,
    data: ReplyOutcome,
    intent?: ReplyIntended
  ) => Effect.Effect<string, SqlError | CustomerErasedMeanwhile>
  /**
   * Answers decided (ReplyIntended: sent, drafted, or failing) that the caps count, in one round
   * trip: for this customer or to this recipient (its keyed id and address) since `sender`, with
   * the customer's mail the LLM failed on (ReplyFailed at stage `agent`, which has no intent), on this
   * ticket since `ticket`, and across the log since `all`; each mail once, however often its answer
   * was asked for again, and not `scope.mailId`, the mail being answered. An intent is recorded
   * before its answer leaves, so the counts never lag behind what is on its way.
   */
  readonly answerCounts: (scope: AnswerScope, since: AnswerWindows) => Effect.Effect<AnswerCounts, SqlError>
  /**
   * Asks again for the answers `choice` names that failed, or that needed a person when no drafts
   * folder could take them (ReplySkipped as needs_human), and are still the last word on their mail
   * (no retry asked since, the customer not erased): a ReplyRetried each, in one transaction under
   * the append lock. The database refuses a retry asked twice. Other skips were the policy's
   * decision (a cap, an unauthenticated sender), which asking again must not undo.
   */
  readonly retryFailed: (choice: RetryChoice) => Effect.Effect<ReadonlyArray<ReplyRetried>, SqlError>
  /**
   * Asks again, as `retryFailed` does, for the failed answers whose automatic retry has come: a
   * ReplyRetried each with `automatic` set. Looked for without the append lock first, since nearly
   * always nothing is due.
   */
  readonly retryDue: (due: DueChoice) => Effect.Effect<ReadonlyArray<ReplyRetried>, SqlError>
  /**
   * The first of the customer's earlier answers in `mailbox` that waits for its automatic retry:
   * the failure is still the last word on its mail but for an automatic ReplyRetried (no outcome
   * since, no person's retry), and not past its retries. Answers to one customer go in order, so a
   * later one waits behind it.
   */
  readonly waitingAhead: (choice: AheadChoice) => Effect.Effect<Ahead | undefined, SqlError>
  /**
   * The customers with a failure in `mailbox` since `since` that was to be asked for again by itself:
   * the only ones `waitingAhead` can find anything for, read once for a page of answers.
   */
  readonly mayWait: (choice: Pick<AheadChoice, "mailbox" | "since">) => Effect.Effect<ReadonlySet<string>, SqlError>
  /** The EmailReceived events with these ids (a retry's mail). */
  readonly mails: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<StoredEvent>, SqlError>
}

const isIntent = (data: EventData): data is ReplyIntended => data._tag === "ReplyIntended"
const isOutcome = (data: EventData): data is ReplyOutcome =>
  data._tag === "ReplySent" || data._tag === "ReplyDrafted" || data._tag === "ReplySkipped" || data._tag === "ReplyFailed"

/** What may be asked for again: a failure, or an answer that needed a person and found no drafts folder. */
const mayRetry = (data: EventData): data is ReplyFailed | ReplySkipped =>
  data._tag === "ReplyFailed" || (data._tag === "ReplySkipped" && data.reason === "needs_human")

type Retriable = StoredEvent & { readonly data: ReplyFailed | ReplySkipped }

/** The retry an outcome is asked for again as: by a person, or by the responder as its failure said. */
const retryOf = (event: Retriable, automatic: boolean) => {
  const auto = automatic && event.data._tag === "ReplyFailed" ? event.data.autoRetry : null
  return new ReplyRetried({
    emailEventId: event.data.emailEventId,
    ticketId: event.data.ticketId,
    customerId: event.data.customerId,
    retry: event.data.retry + 1,
    failedEventId: event.id,
    automatic: auto === null ? null : { waitFrom: auto.waitFrom, count: auto.count }
  })
}

const isDue = (data: EventData, now: Date) =>
  data._tag === "ReplyFailed" && data.autoRetry !== null && Date.parse(data.autoRetry.at) <= now.getTime()

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

interface ErasureRow {
  readonly erased: boolean
  readonly keys: ReadonlyArray<KeyRow>
}

/** A statement built without parameters, as a simple query sends it. */
const constantSql = (statement: Statement.Statement<unknown>) => {
  const [text, params] = statement.compile()
  if (params.length > 0) throw new Error("constantSql: the statement has parameters")
  return text
}

const replyStateOf = (events: ReadonlyArray<EventData>): ReplyState => ({
  intent: events.find(isIntent),
  outcome: events.find(isOutcome)
})

/** Each answer's state, from the reply events of the mails asked about. */
const statesOf = (events: ReadonlyArray<EventData>): ReplyStates => {
  const byAnswer = new Map<string, Array<EventData>>()
  for (const data of events) {
    if (!isIntent(data) && !isOutcome(data)) continue
    const key = answerKey(data)
    byAnswer.set(key, [...(byAnswer.get(key) ?? []), data])
  }
  return (emailEventId, retry) => replyStateOf(byAnswer.get(answerKey({ emailEventId, retry })) ?? [])
}

const replyEvent = (mailbox: string, data: ReplyEvent | ReplyRetried, trace: string | null): NewEvent => ({
  id: crypto.randomUUID(),
  type: data._tag,
  mailbox,
  uidvalidity: null,
  uid: null,
  ticketId: data.ticketId,
  occurredAt: new Date(),
  data,
  trace
})

const makeSql = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const log = yield* EventLog
  /** The retry of the failure row `f` (events recorded before retries carry none: retry 0). */
  const retryOfRow = sql.literal("coalesce(f.data->>'retry', '0')::int")

  const replyState = (emailEventId: string, retry: number) =>
    log.readWhere(sql`
      type IN ('ReplyIntended', 'ReplySent', 'ReplyDrafted', 'ReplySkipped', 'ReplyFailed') AND data->>'emailEventId' = ${emailEventId}
        AND coalesce(data->>'retry', '0') = ${String(retry)}
    `).pipe(Effect.map((events) => replyStateOf(events.map((event) => event.data))))

  const replyStates = (asked: ReadonlyArray<AnswerAsked>) =>
    asked.length === 0 ? Effect.succeed(statesOf([])) : log.readWhere(sql`
      type IN ('ReplyIntended', 'ReplySent', 'ReplyDrafted', 'ReplySkipped', 'ReplyFailed')
        AND data->>'emailEventId' IN ${sql.in([...new Set(asked.map((answer) => answer.emailEventId))])}
    `).pipe(Effect.map((events) => statesOf(events.map((event) => event.data))))

  /**
   * Whether the mail's sealing key is destroyed (its customer was erased; mail recorded before 0010
   * has none to check), with the customer's live keys for sealing the reply event. `id` writes each
   * id into the statement: as a parameter, or as a literal where the statement must be constant SQL.
   */
  const erasureCheck = (emailEventId: string, customerId: string, id: (value: string) => Statement.Fragment) =>
    sql<ErasureRow>`SELECT EXISTS (SELECT 1 FROM events e JOIN customer_keys k ON k.id = e.key_id WHERE e.id = ${id(emailEventId)}::uuid AND k.key IS NULL) AS erased,
        ${liveKeysJson(sql, sql`SELECT ${id(customerId)}::uuid`)} AS keys`

  /** Only ids of this shape are written into SQL as literals: nothing in them can end the string. */
  const asLiteral = (value: string) => sql.literal(`'${value}'`)
  const asParameter = (value: string) => sql`${value}`

  /**
   * Appends `data` under the append lock, unless its mail's customer was erased: checked under the
   * lock, in the round trip that takes it (`transactionAfter`). A ReplySent carries its outbound
   * `messages` row and the ticket's touch in its INSERT's statement: one round trip where there were three.
   */
  const appendEvent = (mailbox: string, data: ReplyEvent, held?: ReplyIntended) =>
    Effect.flatMap(currentTraceparent, (trace) => {
      const { customerId, emailEventId } = data
      const write = (append: Append, rows: ReadonlyArray<ErasureRow>) =>
        Effect.gen(function*() {
          if (rows[0]?.erased) return yield* new CustomerErasedMeanwhile({ emailEventId })
          const keys: KeysRead = { customers: new Set([customerId]), rows: rows[0]?.keys ?? [] }
          const event = replyEvent(mailbox, data, trace)
          const intent = data._tag === "ReplySent" ? held ?? (yield* replyState(data.emailEventId, data.retry)).intent : undefined
          yield* append([event], {
            keys,
            ...(intent === undefined ? {} : { alongside: outboundStatements(sql, outboundRow(event.id, mailbox, intent, event.occurredAt)) })
          })
          return event.id
        })
      // The ids are UUIDs (the log's, and keyed customer ids), the only text written into the statement;
      // anything else goes as a parameter, in a round trip of its own, for the cast to refuse as before.
      return UUID.test(emailEventId) && UUID.test(customerId)
        ? log.transactionAfter(constantSql(erasureCheck(emailEventId, customerId, asLiteral)), write)
        : log.transaction((append) => Effect.flatMap(erasureCheck(emailEventId, customerId, asParameter), (rows) => write(append, rows)))
    }).pipe(Effect.withSpan("ReplyStore.append", { kind: "client", attributes: { "mailroom.event.type": data._tag } }))

  /** Of the outcomes `chosen` picks, those still the last word on a mail whose customer is not erased. */
  const lastWord = (chosen: Statement.Fragment) =>
    sql`${chosen} AND NOT ${askedAgain(sql)} AND NOT ${mailErased(sql, sql`events.data->>'emailEventId'`)}`

  /** The outcomes `chosen` picks that are still the last word on their mail, asked for again. */
  const askAgain = (chosen: Statement.Fragment, automatic: boolean) =>
    Effect.flatMap(currentTraceparent, (trace) =>
      log.transaction((append) =>
        Effect.gen(function*() {
          // Under the append lock: no retry or erasure can come between the choice and the append.
          const failures = (yield* log.readWhere(sql`
            (type = 'ReplyFailed' OR (type = 'ReplySkipped' AND data->>'reason' = 'needs_human')) AND ${lastWord(chosen)}
          `)).flatMap((event) => mayRetry(event.data) ? [event as Retriable] : [])
          const retries = failures.map((event) => ({ mailbox: event.mailbox, retry: retryOf(event, automatic) }))
          if (retries.length > 0) yield* append(retries.map(({ mailbox, retry }) => replyEvent(mailbox, retry, trace)))
          return retries.map(({ retry }) => retry)
        })
      ))

  const retryFailed = (choice: RetryChoice) =>
    askAgain(choice.ids === undefined ? sql`occurred_at > ${choice.since}` : sql`id IN ${sql.in(choice.ids)}`, false).pipe(
      Effect.withSpan("ReplyStore.retryFailed", { kind: "client" })
    )

  const retryDue = (due: DueChoice) => {
    // By the outcomes' time index: the failures of the last SMTP_OUTAGE_WAIT, not the log's years of them.
    const chosen = sql`type = 'ReplyFailed' AND mailbox = ${due.mailbox} AND occurred_at > ${due.since}
      AND (data->'autoRetry'->>'at')::timestamptz <= ${due.now}`
    return sql`SELECT 1 FROM events WHERE ${lastWord(chosen)} LIMIT 1`.pipe(
      Effect.flatMap((rows) => rows.length === 0 ? Effect.succeed([]) : askAgain(chosen, true)),
      Effect.withSpan("ReplyStore.retryDue", { kind: "client" })
    )
  }

  const waitingAhead = (choice: AheadChoice) =>
    sql<{ ticketId: string; at: string; underWay: boolean }>`
      SELECT f.ticket_id AS "ticketId", f.data->'autoRetry'->>'at' AS at,
        EXISTS (SELECT 1 FROM events r WHERE r.type = 'ReplyRetried' AND r.data->>'emailEventId' = f.data->>'emailEventId'
          AND (r.data->>'retry')::int > ${retryOfRow}) AS "underWay"
      FROM events f
      WHERE f.type = 'ReplyFailed' AND f.mailbox = ${choice.mailbox} AND f.occurred_at > ${choice.since}
        AND f.data->>'customerId' = ${choice.customerId} AND jsonb_typeof(f.data->'autoRetry') = 'object'
        AND (SELECT m.seq FROM events m WHERE m.id = (f.data->>'emailEventId')::uuid) < (SELECT m.seq FROM events m WHERE m.id = ${choice.mailId}::uuid)
        AND NOT EXISTS (SELECT 1 FROM events o WHERE o.type IN ('ReplySent', 'ReplyDrafted', 'ReplySkipped', 'ReplyFailed')
          AND o.data->>'emailEventId' = f.data->>'emailEventId' AND coalesce(o.data->>'retry', '0')::int > ${retryOfRow})
        AND NOT EXISTS (SELECT 1 FROM events r WHERE r.type = 'ReplyRetried' AND r.data->>'emailEventId' = f.data->>'emailEventId'
          AND (r.data->>'retry')::int > ${retryOfRow} AND jsonb_typeof(r.data->'automatic') IS DISTINCT FROM 'object')
        AND NOT ${mailErased(sql, sql`f.data->>'emailEventId'`)}
      ORDER BY f.seq LIMIT 1
    `.pipe(
      Effect.map(([row]) => row === undefined ? undefined : { ticketId: row.ticketId, at: row.underWay ? null : row.at }),
      Effect.withSpan("ReplyStore.waitingAhead", { kind: "client" })
    )

  const mayWait = (choice: Pick<AheadChoice, "mailbox" | "since">) =>
    sql<{ customerId: string }>`
      SELECT DISTINCT data->>'customerId' AS "customerId" FROM events
      WHERE type = 'ReplyFailed' AND mailbox = ${choice.mailbox} AND occurred_at > ${choice.since} AND jsonb_typeof(data->'autoRetry') = 'object'
    `.pipe(Effect.map((rows) => new Set(rows.map((row) => row.customerId))))

  return ReplyStore.of({
    replyStates,
    retryFailed,
    retryDue,
    waitingAhead,
    mayWait,
    mails: (ids) => ids.length === 0 ? Effect.succeed([]) : log.readWhere(sql`type = 'EmailReceived' AND id IN ${sql.in(ids)}`),
    intend: (mailbox, intent) => appendEvent(mailbox, intent),
    append: (mailbox, data, intent) => appendEvent(mailbox, data, intent),
    answerCounts: (scope, since) =>
      // Three counts, each by its own index, in one statement: admission runs one mail at a time.
      // `to` is sealed since 0010; an older intent's is still in data, and counted by it for a day.
      // Each mail once however often its answer was asked for again, and not the mail being answered:
      // a retry answers the same mail.
      sql<{ sender: string; ticket: string; all: string }>`
        SELECT
          (SELECT count(DISTINCT mail) FROM (
             SELECT data->>'emailEventId' AS mail FROM events
             WHERE type = 'ReplyIntended' AND occurred_at > ${since.sender}
               AND (data->>'customerId' = ${scope.customerId} OR data->>'recipientId' = ${scope.recipient.id}
                    OR data->'to'->>'address' = ${scope.recipient.address})
             UNION ALL
             SELECT data->>'emailEventId' FROM events
             WHERE type = 'ReplyFailed' AND data->>'stage' = 'agent' AND data->>'customerId' = ${scope.customerId}
               AND occurred_at > ${since.sender}) AS answers WHERE mail <> ${scope.mailId}) AS sender,
          (SELECT count(DISTINCT data->>'emailEventId') FROM events
           WHERE type = 'ReplyIntended' AND ticket_id = ${scope.ticketId} AND occurred_at > ${since.ticket}
             AND data->>'emailEventId' <> ${scope.mailId}) AS ticket,
          (SELECT count(DISTINCT data->>'emailEventId') FROM events
           WHERE type = 'ReplyIntended' AND occurred_at > ${since.all} AND data->>'emailEventId' <> ${scope.mailId}) AS "all"
      `.pipe(Effect.map(([row]) => ({ sender: Number(row?.sender ?? 0), ticket: Number(row?.ticket ?? 0), all: Number(row?.all ?? 0) })))
  })
})

const repliesTo = (all: ReadonlyArray<StoredEvent>, emailEventId: string, retry: number) =>
  all.flatMap((e) => (isIntent(e.data) || isOutcome(e.data)) && e.data.emailEventId === emailEventId && e.data.retry === retry ? [e.data] : [])

/** The same contract over the in-memory log, with the database's one-intent, one-outcome rule. */
const makeMemory = Effect.gen(function*() {
  const log = yield* EventLog
  const all = log.read(0n, Number.MAX_SAFE_INTEGER)
  const appendEvent = (mailbox: string, data: ReplyEvent) =>
    log.transaction((append) =>
      Effect.gen(function*() {
        const before = replyStateOf(repliesTo(yield* all, data.emailEventId, data.retry))
        if ((isIntent(data) && before.intent) || (isOutcome(data) && before.outcome)) {
          return yield* Effect.die(new Error(`a ${data._tag} for ${data.emailEventId} is already recorded`))
        }
        const event = replyEvent(mailbox, data, null)
        yield* append([event])
        return event.id
      })
    )
  const askAgain = (chosen: (event: StoredEvent) => boolean, automatic: boolean) =>
    log.transaction((append) =>
      Effect.gen(function*() {
        const events = yield* all
        const lastRetry = (emailEventId: string) =>
          Math.max(0, ...events.flatMap((e) => e.data._tag === "ReplyRetried" && e.data.emailEventId === emailEventId ? [e.data.retry] : []))
        const retries = events
          .flatMap((e) => mayRetry(e.data) ? [e as Retriable] : [])
          .filter((e) => chosen(e) && lastRetry(e.data.emailEventId) <= e.data.retry)
          .map((e) => ({ mailbox: e.mailbox, retry: retryOf(e, automatic) }))
        if (retries.length > 0) yield* append(retries.map(({ mailbox, retry }) => replyEvent(mailbox, retry, null)))
        return retries.map(({ retry }) => retry)
      })
    )
  return ReplyStore.of({
    replyStates: () => Effect.map(all, (events) => statesOf(events.map((event) => event.data))),
    // The in-memory log erases nobody.
    retryFailed: (choice) =>
      askAgain((e) => choice.ids === undefined ? e.occurredAt > choice.since : choice.ids.includes(e.id), false),
    retryDue: (due) => askAgain((e) => e.mailbox === due.mailbox && e.occurredAt > due.since && isDue(e.data, due.now), true),
    mayWait: (choice) =>
      Effect.map(all, (events) =>
        new Set(events.flatMap((e) =>
          e.data._tag === "ReplyFailed" && e.data.autoRetry !== null && e.mailbox === choice.mailbox && e.occurredAt > choice.since ? [e.data.customerId] : []
        ))),
    waitingAhead: (choice) =>
      Effect.map(all, (events) => {
        const seqOf = (id: string) => events.find((e) => e.id === id)?.seq ?? -1n
        const before = seqOf(choice.mailId)
        const later = (failed: ReplyFailed, e: StoredEvent) =>
          (isOutcome(e.data) || e.data._tag === "ReplyRetried") && e.data.emailEventId === failed.emailEventId && e.data.retry > failed.retry
        for (const f of events) {
          const failed = f.data
          if (failed._tag !== "ReplyFailed" || failed.autoRetry === null || f.mailbox !== choice.mailbox || f.occurredAt <= choice.since) continue
          if (failed.customerId !== choice.customerId || seqOf(failed.emailEventId) >= before) continue
          const since = events.filter((e) => later(failed, e))
          if (since.some((e) => isOutcome(e.data) || (e.data._tag === "ReplyRetried" && e.data.automatic === null))) continue
          return { ticketId: failed.ticketId, at: since.length > 0 ? null : failed.autoRetry.at }
        }
        return undefined
      }),
    mails: (ids) => Effect.map(all, (events) => events.filter((e) => e.data._tag === "EmailReceived" && ids.includes(e.id))),
    // The in-memory log erases nobody.
    intend: appendEvent,
    append: appendEvent,
    answerCounts: (scope, since) =>
      Effect.map(all, (events) => {
        const intents = events.filter((e): e is StoredEvent & { readonly data: ReplyIntended } => isIntent(e.data))
        const agentFailures = events.filter((e) =>
          e.data._tag === "ReplyFailed" && e.data.stage === "agent" && e.data.customerId === scope.customerId && e.occurredAt > since.sender
        )
        const mails = (events: ReadonlyArray<StoredEvent>) => {
          const ids = new Set(events.map((e) => (e.data as ReplyIntended | ReplyFailed).emailEventId))
          ids.delete(scope.mailId)
          return ids.size
        }
        return {
          sender: mails([
            ...agentFailures,
            ...intents.filter((e) =>
              e.occurredAt > since.sender && (e.data.customerId === scope.customerId || e.data.recipientId === scope.recipient.id)
            )
          ]),
          ticket: mails(intents.filter((e) => e.occurredAt > since.ticket && e.data.ticketId === scope.ticketId)),
          all: mails(intents.filter((e) => e.occurredAt > since.all))
        }
      })
  })
})

/** The reply events of the log: what was answered, how, and how often. */
export class ReplyStore extends Context.Tag("mailroom/ReplyStore")<ReplyStore, ReplyStoreShape>() {
  static readonly Live = Layer.effect(ReplyStore, makeSql)
  static readonly Test = Layer.effect(ReplyStore, makeMemory)
}
