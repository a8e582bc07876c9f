import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer } from "effect"
import type { EventData, ReplyEvent, ReplyIntended, ReplyOutcome, StoredEvent } from "../log/Event.js"
import { EventLog } from "../log/EventLog.js"
import type { NewEvent } from "../log/EventLog.js"
import { currentTraceparent } from "../telemetry/Tracing.js"
import { outboundStatements } from "../tickets/Projection.js"
import type { KeyRow, KeysRead } from "../log/Vault.js"
import { liveKeysJson } from "../log/Vault.js"
import { outboundRow } from "./Reply.js"

export interface ReplyState {
  readonly intent: ReplyIntended | undefined
  readonly outcome: ReplyOutcome | undefined
}

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

export interface ReplyStoreShape {
  /** The reply events recorded for one EmailReceived. */
  readonly replyState: (emailEventId: string) => Effect.Effect<ReplyState, SqlError>
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
   * ticket since `ticket`, and across the log since `all`. An intent is recorded before its answer
   * leaves, so the counts never lag behind what is on its way.
   */
  readonly answerCounts: (scope: AnswerScope, since: AnswerWindows) => Effect.Effect<AnswerCounts, SqlError>
}

const isIntent = (data: EventData): data is ReplyIntended => data._tag === "ReplyIntended"
const isOutcome = (data: EventData): data is ReplyOutcome =>
  data._tag === "ReplySent" || data._tag === "ReplyDrafted" || data._tag === "ReplySkipped" || data._tag === "ReplyFailed"

const replyStateOf = (events: ReadonlyArray<EventData>): ReplyState => ({
  intent: events.find(isIntent),
  outcome: events.find(isOutcome)
})

const replyEvent = (mailbox: string, data: ReplyEvent, trace: string | null): NewEvent => ({
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

  const replyState = (emailEventId: string) =>
    log.readWhere(sql`
      type IN ('ReplyIntended', 'ReplySent', 'ReplyDrafted', 'ReplySkipped', 'ReplyFailed') AND data->>'emailEventId' = ${emailEventId}
    `).pipe(Effect.map((events) => replyStateOf(events.map((event) => event.data))))

  /**
   * Appends `data` under the append lock. `before` runs first in the transaction and may read its
   * customer's keys ahead; a ReplySent carries its outbound `messages` row and the ticket's touch in
   * its INSERT's statement: one round trip where there were three.
   */
  const appendEvent = <E>(
    mailbox: string,
    data: ReplyEvent,
    before: Effect.Effect<KeysRead | undefined, E> = Effect.succeed(undefined),
    held?: ReplyIntended
  ) =>
    Effect.flatMap(currentTraceparent, (trace) =>
      log.transaction((append) =>
        Effect.gen(function*() {
          const keys = yield* before
          const event = replyEvent(mailbox, data, trace)
          const intent = data._tag === "ReplySent" ? held ?? (yield* replyState(data.emailEventId)).intent : undefined
          yield* append([event], {
            ...(keys === undefined ? {} : { keys }),
            ...(intent === undefined ? {} : { alongside: outboundStatements(sql, outboundRow(event.id, mailbox, intent, event.occurredAt)) })
          })
          return event.id
        })
      )).pipe(Effect.withSpan("ReplyStore.append", { kind: "client", attributes: { "mailroom.event.type": data._tag } }))

  /**
   * The mail's sealing key is destroyed: its customer was erased (mail recorded before 0010 has none
   * to check). Reads the customer's live keys in the same statement, for sealing the reply event.
   */
  const notErased = (emailEventId: string, customerId: string) =>
    sql<{ erased: boolean; keys: ReadonlyArray<KeyRow> }>`
      SELECT EXISTS (SELECT 1 FROM events e JOIN customer_keys k ON k.id = e.key_id WHERE e.id = ${emailEventId} AND k.key IS NULL) AS erased,
        ${liveKeysJson(sql, sql`SELECT ${customerId}::uuid`)} AS keys
    `.pipe(Effect.flatMap(([row]) =>
      row?.erased ? new CustomerErasedMeanwhile({ emailEventId }) : Effect.succeed({ customers: new Set([customerId]), rows: row?.keys ?? [] })
    ))

  return ReplyStore.of({
    replyState,
    intend: (mailbox, intent) => appendEvent(mailbox, intent, notErased(intent.emailEventId, intent.customerId)),
    append: (mailbox, data, intent) => appendEvent(mailbox, data, notErased(data.emailEventId, data.customerId), intent),
    answerCounts: (scope, since) =>
      // Three counts, each by its own index, in one statement: admission runs one mail at a time.
      // `to` is sealed since 0010; an older intent's is still in data, and counted by it for a day.
      sql<{ sender: string; ticket: string; all: string }>`
        SELECT
          (SELECT count(*) FROM events
           WHERE type = 'ReplyIntended' AND occurred_at > ${since.sender}
             AND (data->>'customerId' = ${scope.customerId} OR data->>'recipientId' = ${scope.recipient.id}
                  OR data->'to'->>'address' = ${scope.recipient.address}))
          + (SELECT count(*) FROM events
             WHERE type = 'ReplyFailed' AND data->>'stage' = 'agent' AND data->>'customerId' = ${scope.customerId}
               AND occurred_at > ${since.sender}) AS sender,
          (SELECT count(*) FROM events
           WHERE type = 'ReplyIntended' AND ticket_id = ${scope.ticketId} AND occurred_at > ${since.ticket}) AS ticket,
          (SELECT count(*) FROM events WHERE type = 'ReplyIntended' AND occurred_at > ${since.all}) AS "all"
      `.pipe(Effect.map(([row]) => ({ sender: Number(row?.sender ?? 0), ticket: Number(row?.ticket ?? 0), all: Number(row?.all ?? 0) })))
  })
})

const repliesTo = (all: ReadonlyArray<StoredEvent>, emailEventId: string) =>
  all.flatMap((e) => (isIntent(e.data) || isOutcome(e.data)) && e.data.emailEventId === emailEventId ? [e.data] : [])

/** The same contract over the in-memory log, with the database's one-intent, one-outcome rule. */
const makeMemory = Effect.gen(function*() {
  const log = yield* EventLog
  const all = log.read(0n, Number.MAX_SAFE_INTEGER)
  const appendEvent = (mailbox: string, data: ReplyEvent) =>
    log.transaction((append) =>
      Effect.gen(function*() {
        const before = replyStateOf(repliesTo(yield* all, data.emailEventId))
        if ((isIntent(data) && before.intent) || (isOutcome(data) && before.outcome)) {
          return yield* Effect.die(new Error(`a ${data._tag} for ${data.emailEventId} is already recorded`))
        }
        const event = replyEvent(mailbox, data, null)
        yield* append([event])
        return event.id
      })
    )
  return ReplyStore.of({
    replyState: (emailEventId) => Effect.map(all, (events) => replyStateOf(repliesTo(events, emailEventId))),
    // The in-memory log erases nobody.
    intend: appendEvent,
    append: appendEvent,
    answerCounts: (scope, since) =>
      Effect.map(all, (events) => {
        const intents = events.filter((e): e is StoredEvent & { readonly data: ReplyIntended } => isIntent(e.data))
        const agentFailures = events.filter((e) =>
          e.data._tag === "ReplyFailed" && e.data.stage === "agent" && e.data.customerId === scope.customerId && e.occurredAt > since.sender
        )
        return {
          sender: agentFailures.length + intents.filter((e) =>
            e.occurredAt > since.sender && (e.data.customerId === scope.customerId || e.data.recipientId === scope.recipient.id)
          ).length,
          ticket: intents.filter((e) => e.occurredAt > since.ticket && e.data.ticketId === scope.ticketId).length,
          all: intents.filter((e) => e.occurredAt > since.all).length
        }
      })
  })
})

/** The reply events of the log: what was answered, how, and how often. */
export class ReplyStore extends Context.Tag("mailroom/ReplyStore")<ReplyStore, ReplyStoreShape>() {
  static readonly Live = Layer.effect(ReplyStore, makeSql)
  static readonly Test = Layer.effect(ReplyStore, makeMemory)
}
