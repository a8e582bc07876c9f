import { ConfigProvider, Context, Effect, identity, Layer, Option, Redacted } from "effect"
import type { ConfigError, Scope } from "effect"
import type { MailboxAccount, WatchedMailbox } from "../config/Mailboxes.js"
import { configuredMailboxes } from "../config/Mailboxes.js"
import { mailboxLogin, mailboxSettings, processSettings } from "../config/Startup.js"
import { DatabaseConfig } from "../config/Config.js"
import type { MailboxesFileInvalid } from "../config/MailboxesFile.js"
import { Watched } from "./Watched.js"
import { fitHeapGrowth } from "../lib/HeapGrowth.js"
import type { Imap } from "./Imap.js"
import type { Poller } from "./Poller.js"
import type { Reconciler } from "./Reconcile.js"
import type { Responder } from "../replies/Responder.js"
import type { Agent } from "../replies/Agent.js"

/**
 * One watched mailbox with the services built for it alone (its IMAP connection, intake, poller,
 * responder), over the services the process shares (database, log, parser pool, bus, locks).
 */
export interface MailboxRuntime<A> {
  readonly watched: WatchedMailbox
  /** Runs an effect of this mailbox, under its own settings. */
  readonly run: <X, E>(effect: Effect.Effect<X, E, A | Watched>) => Effect.Effect<X, E>
}

/**
 * An account's settings, as the variables its services read: each mailbox's pipeline is the
 * single-mailbox pipeline under a ConfigProvider of its own, so that every setting keeps one
 * declaration and one meaning. What the file leaves out falls back to the environment.
 */
export const settingsOf = (account: MailboxAccount, folder: string): Map<string, string> => {
  const settings = new Map<string, string>([
    ["GMAIL_SENDER_EMAIL", account.user],
    // Customers write to the address; the login (`user`) may differ, and answers must not come from it.
    ["REPLY_FROM", account.address],
    ["IMAP_HOST", account.imap.host],
    ["IMAP_PORT", String(account.imap.port)],
    ["IMAP_TLS", String(account.imap.tls)],
    ["IMAP_MAILBOX", folder]
  ])
  if (account.auth._tag === "password") {
    settings.set("MAILBOX_AUTH", "password")
    settings.set("GMAIL_SENDER_PASSWORD", Redacted.value(account.auth.password))
  } else {
    settings.set("MAILBOX_AUTH", "oauth2")
    settings.set("OAUTH2_PROVIDER", account.auth.provider)
    settings.set("OAUTH2_CLIENT_ID", account.auth.clientId)
    settings.set("OAUTH2_TENANT", account.auth.tenant)
    Option.map(account.auth.clientSecret, (secret) => settings.set("OAUTH2_CLIENT_SECRET", Redacted.value(secret)))
    Option.map(account.auth.tokenUrl, (url) => settings.set("OAUTH2_TOKEN_URL", url))
    Option.map(account.auth.refreshToken, (token) => settings.set("OAUTH2_REFRESH_TOKEN", Redacted.value(token)))
  }
  Option.map(account.smtp, (smtp) => {
    settings.set("SMTP_HOST", smtp.host)
    settings.set("SMTP_PORT", String(smtp.port))
    settings.set("SMTP_TLS", String(smtp.tls))
  })
  Option.map(account.replies.agent, (agent) => settings.set("AGENT", agent))
  Option.map(account.replies.mode, (mode) => settings.set("REPLY_MODE", mode))
  Option.map(account.replies.knowledgeDir, (dir) => settings.set("KNOWLEDGE_DIR", dir))
  return settings
}

/** Every mailbox this process watches, with the settings its services read (see `settingsOf`). */
const fleetEntries = Effect.gen(function*() {
  const outer = yield* Effect.configProviderWith(Effect.succeed)
  const accounts = yield* configuredMailboxes
  return Option.match(accounts, {
    onNone: () => [{ provider: outer, watched: Option.none<WatchedMailbox>() }],
    onSome: (accounts) =>
      accounts.flatMap((account) =>
        account.mailboxes.map((watched) => ({
          provider: ConfigProvider.fromMap(settingsOf(account, watched.folder)).pipe(ConfigProvider.orElse(() => outer)),
          watched: Option.some(watched)
        }))
      )
  })
})

/**
 * Every setting a start reads, for the process and under each mailbox's settings, before anything
 * is opened: a value that does not read stops the start with its one line, and no database is made
 * or migrated for a start that cannot go on.
 */
export const checkSettings: Effect.Effect<void, ConfigError.ConfigError | MailboxesFileInvalid> = Effect.gen(function*() {
  yield* processSettings
  for (const { provider } of yield* fleetEntries) yield* Effect.withConfigProvider(mailboxSettings, provider)
})

/** `status`'s: the database's and each mailbox's login, and no more (it sends nothing, and has a report to give). */
export const checkStatusSettings: Effect.Effect<void, ConfigError.ConfigError | MailboxesFileInvalid> = Effect.gen(function*() {
  yield* DatabaseConfig
  for (const { provider } of yield* fleetEntries) yield* Effect.withConfigProvider(mailboxLogin, provider)
})

/**
 * Builds `perMailbox` once for every mailbox this process watches: each folder of each account in
 * MAILBOXES_FILE, or the one mailbox of GMAIL_SENDER_EMAIL and IMAP_MAILBOX (keyed by its folder
 * alone, as before). A mailbox whose services cannot be built fails the whole start: settings are
 * checked before anything connects.
 */
export const buildFleet = <A, E, R>(
  perMailbox: Layer.Layer<A, E, R | Watched>
): Effect.Effect<ReadonlyArray<MailboxRuntime<A>>, E | ConfigError.ConfigError | MailboxesFileInvalid, Exclude<R, Watched> | Scope.Scope> =>
  Effect.gen(function*() {
    const shared = yield* Effect.context<Exclude<R, Watched>>()
    const scope = yield* Effect.scope
    const entries = yield* fleetEntries
    const several = entries.length > 1
    // A thousand mailboxes' live heap is six times one's: V8 must not let garbage grow in proportion.
    yield* Effect.sync(() => fitHeapGrowth(entries.length))
    return yield* Effect.forEach(entries, ({ provider, watched }) =>
      Effect.gen(function*() {
        const mailbox = yield* Option.match(watched, { onNone: () => Watched.single, onSome: Effect.succeed })
        // A memo map of its own per build: nothing of one mailbox's services is shared with another's.
        // The shared services, the mailbox and its settings come from the building fiber rather than
        // from layers around `perMailbox`: every layer node costs a few kilobytes for as long as the
        // mailbox runs, and a thousand mailboxes multiply them.
        const built = yield* Layer.buildWithScope(perMailbox, scope).pipe(
          Effect.provide(Context.add(shared as Context.Context<Exclude<R, Watched>>, Watched, mailbox)),
          Effect.withConfigProvider(provider)
        ) as Effect.Effect<Context.Context<A>, E | ConfigError.ConfigError>
        const context = Context.add(built, Watched, mailbox)
        const key = mailbox.key
        const runtime: MailboxRuntime<A> = {
          watched: mailbox,
          // Every metric it updates carries its mailbox; with several, so does every log line.
          run: (effect) =>
            effect.pipe(
              Effect.provide(context),
              Effect.withConfigProvider(provider),
              Effect.tagMetrics("mailbox", key),
              several ? Effect.annotateLogs("mailbox", key) : identity
            )
        }
        return runtime
      }), { concurrency: 16 })
  })

/** The mailboxes `mailroom` runs: each with its poller, reconciler, responder and connection. */
export class Fleet extends Context.Tag("mailroom/Fleet")<Fleet, ReadonlyArray<MailboxRuntime<Poller | Reconciler | Responder | Imap>>>() {}

/** The mailboxes `check` looks at: each with its connection, its agent, and its SMTP server unless AGENT=off. */
export class CheckFleet extends Context.Tag("mailroom/CheckFleet")<CheckFleet, ReadonlyArray<MailboxRuntime<Imap | Agent>>>() {}

/** The mailboxes `status` reports on: each with its connection only. */
export class StatusFleet extends Context.Tag("mailroom/StatusFleet")<StatusFleet, ReadonlyArray<MailboxRuntime<Imap>>>() {}

/** The one mailbox of a pipeline already built (tests, the single-mailbox `pipelineOn`), as a fleet of one. */
export const fleetOfOne = Layer.effect(
  Fleet,
  Effect.map(Effect.context<Poller | Reconciler | Responder | Imap | Watched>(), (context) => [{
    watched: Context.get(context, Watched),
    run: <X, E>(effect: Effect.Effect<X, E, Poller | Reconciler | Responder | Imap | Watched>) => Effect.provide(effect, context)
  }])
)

export const statusFleetOfOne = Layer.effect(
  StatusFleet,
  Effect.map(Effect.context<Imap | Watched>(), (context) => [{
    watched: Context.get(context, Watched),
    run: <X, E>(effect: Effect.Effect<X, E, Imap | Watched>) => Effect.provide(effect, context)
  }])
)
