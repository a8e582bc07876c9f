#!/usr/bin/env node
// Before anything allocates: see lib/HeapGrowth. Before anything is optimized: lib/InliningBudget.
import "./lib/HeapGrowth.js"
import "./lib/InliningBudget.js"
import { Command } from "@effect/cli"
import * as PlatformConfigProvider from "@effect/platform/PlatformConfigProvider"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Layer } from "effect"
import { makeCli, refuseRepeatedWithoutValue, refuseWhenGmailApiOwnsReceiving } from "./cli/Cli.js"
import { describeFailure } from "./cli/Fatal.js"
import { checkFleetOn, CommandStoreLive, fleetOn, statusFleetOn } from "./Layers.js"
import { EarlyLogin } from "./mailbox/EarlyLogin.js"
import { checkSettings, checkStatusSettings } from "./mailbox/Fleet.js"
import { ImapLive } from "./mailbox/Imap.js"
import { EventBusLive } from "./bus/KafkaBus.js"
import { LoggingLive } from "./telemetry/Logging.js"
import { TracingLive } from "./telemetry/Tracing.js"

// Every setting is read before anything opens (mailbox/Fleet's checkSettings); the mailbox's login
// then starts before the database opens, and runs beside it (mailbox/EarlyLogin).
const AppLive = fleetOn(ImapLive, EventBusLive).pipe(
  Layer.provide(EarlyLogin.Live),
  Layer.provide(Layer.effectDiscard(checkSettings)),
  Layer.provide(Layer.effectDiscard(refuseWhenGmailApiOwnsReceiving))
)

// The mailbox over the database: with OAuth2 it reads the refresh token stored there.
const StatusLive = statusFleetOn(ImapLive).pipe(Layer.provide(Layer.effectDiscard(checkStatusSettings)))

// Every setting first, as a start reads them; then what a start would open, without taking mail.
const CheckLive = checkFleetOn(ImapLive).pipe(Layer.provide(Layer.effectDiscard(checkSettings)))

const cli = Command.run(makeCli({ app: AppLive, status: StatusLive, check: CheckLive, store: CommandStoreLive }), {
  name: "mailroom",
  version: "0.1.0"
})

const EnvironmentLive = Layer.mergeAll(LoggingLive, TracingLive).pipe(
  Layer.provideMerge(PlatformConfigProvider.layerDotEnvAdd(".env")),
  Layer.provideMerge(NodeContext.layer)
)

Effect.zipRight(refuseRepeatedWithoutValue(process.argv), cli(process.argv)).pipe(
  Effect.provide(EnvironmentLive),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return onExit(0)
      const fatal = describeFailure(exit.cause)
      if (fatal === undefined) console.error(Cause.pretty(exit.cause))
      else if (fatal.line) console.error(`mailroom: ${fatal.line}`)
      onExit(fatal?.exitCode ?? 1)
    }
  })
)
