import { Layer } from "effect"
import { MigrationsLive } from "./log/Migrations.js"
import { SqlLive } from "./log/Sql.js"
import { Intake } from "./tickets/Intake.js"
import { Poller } from "./mailbox/Poller.js"
import { Relay } from "./bus/Relay.js"
import { Responder } from "./replies/Responder.js"
import { AgentLive } from "./replies/Agent.js"
import type { EventBus } from "./bus/EventBus.js"
import type { Imap } from "./mailbox/Imap.js"
import { LeadershipLive } from "./mailbox/Leadership.js"
import { MailerLive } from "./replies/Mailer.js"
import { Parser } from "./mail/Parser.js"
import { SenderAuthenticator } from "./mail/SenderAuth.js"
import { Drafts } from "./replies/Drafts.js"
import { EventLog } from "./log/EventLog.js"
import { StateStore } from "./log/StateStore.js"
import { VaultLive } from "./log/Vault.js"
import { ReplyStore } from "./replies/ReplyStore.js"
import { TicketRepo } from "./tickets/TicketRepo.js"
import { HealthState } from "./telemetry/Health.js"

/** PostgreSQL (or embedded PGlite), migrated before anything reads it. */
export const DatabaseLive = MigrationsLive.pipe(Layer.provideMerge(SqlLive))

/** The event log, the stores over it (tickets and their projections, reply events) and the cursors. */
export const StoreLive = Layer.mergeAll(TicketRepo.Live, ReplyStore.Live).pipe(
  Layer.provideMerge(Layer.mergeAll(EventLog.Live, StateStore.Live)),
  Layer.provideMerge(VaultLive),
  Layer.provideMerge(DatabaseLive)
)

/** The agent AGENT names, the SMTP mailer that sends its answers and the drafts folder for the rest. */
export const RepliesLive = Layer.mergeAll(AgentLive, MailerLive, Drafts.Live)

/** The receive and reply paths over a given mailbox and bus; the stores stay visible for `status` and tests. */
export const pipelineOn = <E1, R1, E2, R2>(imap: Layer.Layer<Imap, E1, R1>, bus: Layer.Layer<EventBus, E2, R2>) =>
  Layer.mergeAll(Poller.Default, Relay.Default, Responder.Default, HealthState.Default).pipe(
    Layer.provide(Intake.Default),
    Layer.provide(Layer.mergeAll(imap, Parser.Live, SenderAuthenticator.Default, bus, LeadershipLive, RepliesLive)),
    Layer.provideMerge(StoreLive)
  )
