import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { MigrationsCheckedLive, MigrationsLive } from "./log/Migrations.js"
import { CommandSqlLive, SqlLive } from "./log/Sql.js"
import { Intake } from "./tickets/Intake.js"
import { Poller } from "./mailbox/Poller.js"
import { Relay } from "./bus/Relay.js"
import { Responder } from "./replies/Responder.js"
import { Agent, AgentLive, AgentOff } from "./replies/Agent.js"
import { agentKind } from "./config/Replies.js"
import type { EventBus } from "./bus/EventBus.js"
import type { Imap } from "./mailbox/Imap.js"
import { LeadershipLive, Slots } from "./mailbox/Leadership.js"
import { MailerLive } from "./replies/Mailer.js"
import { Parser } from "./mail/Parser.js"
import { SenderAuthenticator } from "./mail/SenderAuth.js"
import { Drafts } from "./replies/Drafts.js"
import { EventLog } from "./log/EventLog.js"
import { StateStore } from "./log/StateStore.js"
import { Vault } from "./log/Vault.js"
import { ReplyStore } from "./replies/ReplyStore.js"
import { TicketRepo } from "./tickets/TicketRepo.js"
import { HealthState } from "./telemetry/Health.js"
import { Reconciler } from "./mailbox/Reconcile.js"
import { Watched } from "./mailbox/Watched.js"
import { buildFleet, CheckFleet, Fleet, fleetOfOne, StatusFleet, statusFleetOfOne } from "./mailbox/Fleet.js"

/** PostgreSQL (or embedded PGlite), migrated before anything reads it: a start's. */
export const DatabaseLive = MigrationsLive.pipe(Layer.provideMerge(SqlLive))

/**
 * The same for every other command: a new database is set up, an existing one must have had this
 * version's migrations (a start applies them, once the older instances are stopped).
 */
export const CommandDatabaseLive = MigrationsCheckedLive.pipe(Layer.provideMerge(CommandSqlLive))

/** The event log, the stores over it (tickets and their projections, reply events) and the cursors. */
const storeOn = <E, R>(database: Layer.Layer<Layer.Layer.Success<typeof DatabaseLive>, E, R>) =>
  Layer.mergeAll(TicketRepo.Live, ReplyStore.Live).pipe(
    Layer.provideMerge(Layer.mergeAll(EventLog.Live, StateStore.Live)),
    Layer.provideMerge(Vault.Live),
    Layer.provideMerge(database)
  )

export const StoreLive = storeOn(DatabaseLive)

/** The store for commands other than a start (CommandDatabaseLive). */
export const CommandStoreLive = storeOn(CommandDatabaseLive)

/** A build of one mailbox's services so far: what they provide, and the memo map they share. */
export interface Building<B> {
  readonly context: Context.Context<B>
  readonly memoMap: Layer.MemoMap
}

export const startBuilding: Effect.Effect<Building<never>> = Effect.map(Layer.makeMemoMap, (memoMap) => ({ context: Context.empty(), memoMap }))

/** Adds what `layer` builds to the context so far; the rest of what it needs comes from the fiber. */
export const thenBuild = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
<B, E2, R2>(built: Effect.Effect<Building<B>, E2, R2>): Effect.Effect<Building<A | B>, E | E2, Exclude<R, B> | R2 | Scope.Scope> =>
  Effect.flatMap(built, ({ context, memoMap }) =>
    Effect.flatMap(Effect.scope, (scope) => Layer.buildWithMemoMap(layer, memoMap, scope)).pipe(
      Effect.provide(context),
      Effect.map((added) => ({ context: Context.merge(context, added), memoMap }))
    ))

/**
 * What each watched mailbox runs on its own: its IMAP connection, intake, reconciliation, poller,
 * and the responder with its agent, SMTP and drafts folder (with AGENT=off, a responder that answers
 * nothing, and none of those). Everything else is shared.
 *
 * Built one service after another rather than as one composed Layer: every node of a composed
 * Layer keeps a memo entry (a scope, two refs and a deferred) for as long as the mailbox runs, and a
 * thousand mailboxes multiply them (docs/performance.md, "Many mailboxes"). One memo map per
 * mailbox still builds what two services share (OAuth2, for IMAP and SMTP) once.
 */
export const mailboxServices = <E, R>(imap: Layer.Layer<Imap, E, R>) =>
  Effect.gen(function*() {
    const withImap = startBuilding.pipe(thenBuild(imap))
    const withReplies = (yield* agentKind) === "off"
      ? yield* withImap.pipe(thenBuild(Responder.Off))
      : yield* withImap.pipe(thenBuild(AgentLive), thenBuild(MailerLive), thenBuild(Drafts.Live), thenBuild(Responder.Default))
    // One branch builds more than the other; what follows needs only these two.
    const built = yield* Effect.succeed(withReplies as Building<Imap | Responder>).pipe(
      thenBuild(Intake.Default),
      thenBuild(Reconciler.Default),
      thenBuild(Poller.DefaultWithoutDependencies)
    )
    return built.context
  })

export const mailboxLayer = <E, R>(imap: Layer.Layer<Imap, E, R>) => Layer.scopedContext(mailboxServices(imap))

/** What every mailbox of the process shares: the parser pool, sender checks, the bus and the locks. */
const sharedLayer = <E, R>(bus: Layer.Layer<EventBus, E, R>) =>
  Layer.mergeAll(Parser.Live, SenderAuthenticator.Default, bus, LeadershipLive, Slots.Live, HealthState.Default)

/** The receive and reply paths over one mailbox (GMAIL_SENDER_EMAIL, IMAP_MAILBOX) and a bus; the stores stay visible for `status` and tests. */
export const pipelineOn = <E1, R1, E2, R2>(imap: Layer.Layer<Imap, E1, R1>, bus: Layer.Layer<EventBus, E2, R2>) =>
  Layer.mergeAll(fleetOfOne, statusFleetOfOne).pipe(
    Layer.provideMerge(Layer.merge(mailboxLayer(imap), Relay.Default)),
    Layer.provideMerge(Watched.Single),
    Layer.provideMerge(sharedLayer(bus)),
    Layer.provideMerge(StoreLive)
  )

/** Every mailbox this process watches (MAILBOXES_FILE, or the one of the settings), each with its pipeline, one relay. */
export const fleetOn = <E1, R1, E2, R2>(imap: Layer.Layer<Imap, E1, R1>, bus: Layer.Layer<EventBus, E2, R2>) =>
  Layer.merge(Layer.scoped(Fleet, buildFleet(mailboxLayer(imap))), Relay.Default).pipe(
    Layer.provideMerge(sharedLayer(bus)),
    Layer.provideMerge(StoreLive)
  )

/**
 * Each mailbox's connection, agent and SMTP server, for `check`: what its pipeline would answer
 * with, built the same way (the SMTP server only unless AGENT=off), and nothing that takes mail.
 */
export const checkFleetOn = <E, R>(imap: Layer.Layer<Imap, E, R>) =>
  Layer.scoped(
    CheckFleet,
    buildFleet(Layer.scopedContext(Effect.gen(function*() {
      const withImap = startBuilding.pipe(thenBuild(imap))
      const built = (yield* agentKind) === "off"
        ? yield* withImap.pipe(thenBuild(AgentOff))
        : yield* withImap.pipe(thenBuild(AgentLive), thenBuild(MailerLive))
      return (built as Building<Imap | Agent>).context
    })))
  ).pipe(Layer.provideMerge(CommandStoreLive))

/** Each mailbox's connection alone, for `status`: it needs no agent or SMTP settings. */
export const statusFleetOn = <E, R>(imap: Layer.Layer<Imap, E, R>) =>
  Layer.scoped(StatusFleet, buildFleet(imap)).pipe(Layer.provideMerge(CommandStoreLive))
