import { Context, Effect, ExecutionStrategy, Exit, Fiber, Layer, Option, Redacted, Ref, Scope } from "effect"
import type { ImapFlow } from "imapflow"
import { ImapConfig } from "../config/Config.js"
import { mailboxesFile } from "../config/Mailboxes.js"
import type { ImapError } from "./ImapErrors.js"
import { login, passwordCredentials } from "./Login.js"

export interface EarlyLoginShape {
  /**
   * The login begun as the process started, once, and only for the account it was begun for: its
   * connection (logged out when the caller's scope closes), its failure, or none (another account,
   * taken already, dropped meanwhile, or given up on).
   */
  readonly take: (config: ImapConfig) => Effect.Effect<Option.Option<ImapFlow>, ImapError, Scope.Scope>
}

/**
 * A start logs in to the mailbox of the settings while the database opens and migrates, rather than
 * after: at a distant server a login is several round trips (ID, AUTHENTICATE, NAMESPACE, and more
 * where the server says less), and a cold `--once` otherwise waits for both in turn
 * (docs/performance.md). Not for MAILBOXES_FILE (each mailbox logs in as its pipeline starts) nor
 * OAuth2 (the token may be the database's).
 */
export class EarlyLogin extends Context.Tag("mailroom/EarlyLogin")<EarlyLogin, EarlyLoginShape>() {
  static readonly Live: Layer.Layer<EarlyLogin> = Layer.scoped(EarlyLogin, Effect.suspend(() => make))
}

/** A login nobody took by then (a standby that does not lead, say) is closed rather than left open. */
const UNCLAIMED = "30 seconds"

const none: EarlyLoginShape = { take: () => Effect.succeedNone }

const sameAccount = (a: ImapConfig, b: ImapConfig) =>
  a.host === b.host && a.port === b.port && a.tls === b.tls && a.user === b.user && a.auth === b.auth &&
  Redacted.value(a.password) === Redacted.value(b.password)

const make = Effect.gen(function*() {
  // A setting that does not read stops the start later, where it is read for the mailbox, with its own message.
  const file = yield* Effect.option(mailboxesFile)
  const config = yield* Effect.option(ImapConfig)
  if (Option.isNone(file) || Option.isSome(file.value) || Option.isNone(config) || config.value.auth !== "password") return none
  const account = config.value
  const connection = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
  const pending = yield* login(account, passwordCredentials(account)).pipe(
    Scope.extend(connection),
    Effect.exit,
    Effect.forkScoped
  )
  const claimed = yield* Ref.make(false)
  const claim = Ref.getAndSet(claimed, true).pipe(Effect.map((before) => !before))
  yield* Effect.sleep(UNCLAIMED).pipe(
    Effect.zipRight(claim),
    Effect.flatMap((mine) => mine ? Scope.close(connection, Exit.void) : Effect.void),
    Effect.forkScoped
  )
  return EarlyLogin.of({
    take: (wanted) =>
      !sameAccount(account, wanted) ? Effect.succeedNone : Effect.gen(function*() {
        if (!(yield* claim)) return Option.none()
        yield* Effect.addFinalizer(() => Scope.close(connection, Exit.void))
        const client = yield* Effect.flatten(Fiber.join(pending))
        return client.usable ? Option.some(client) : Option.none()
      })
  })
})
