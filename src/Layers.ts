import { Layer } from "effect"
import { MigrationsLive } from "./db/Migrations.js"
import { SqlLive } from "./db/Sql.js"
import { Intake } from "./pipeline/Intake.js"
import { Poller } from "./pipeline/Poller.js"
import { Relay } from "./pipeline/Relay.js"
import { Responder } from "./pipeline/Responder.js"
import { AgentLive } from "./services/Agent.js"
import type { EventBus } from "./services/EventBus.js"
import type { Imap } from "./services/Imap.js"
import { LeadershipLive } from "./services/Leadership.js"
import { MailerLive } from "./services/Mailer.js"
import { Parser } from "./services/Parser.js"
import { StateStore } from "./services/StateStore.js"
import { TicketRepo } from "./services/TicketRepo.js"

/** PostgreSQL (or embedded PGlite), migrated before anything reads it. */
export const DatabaseLive = MigrationsLive.pipe(Layer.provideMerge(SqlLive))

/** The event log, its projections and the cursors. */
export const StoreLive = TicketRepo.Live.pipe(Layer.provideMerge(StateStore.Live), Layer.provideMerge(DatabaseLive))

/** The agent AGENT names and the SMTP mailer that sends its answers. */
export const RepliesLive = Layer.mergeAll(AgentLive, MailerLive)

/** The receive and reply paths over a given mailbox and bus; the stores stay visible for `status` and tests. */
export const pipelineOn = <E1, R1, E2, R2>(imap: Layer.Layer<Imap, E1, R1>, bus: Layer.Layer<EventBus, E2, R2>) =>
  Layer.mergeAll(Poller.Default, Relay.Default, Responder.Default).pipe(
    Layer.provide(Intake.Default),
    Layer.provide(Layer.mergeAll(imap, Parser.Live, bus, LeadershipLive, RepliesLive)),
    Layer.provideMerge(StoreLive)
  )
