import { Context, Effect, Layer } from "effect"
import type { ConfigError } from "effect"
import { IntakeConfig, mailboxUser } from "../config/Config.js"
import type { WatchedMailbox } from "../config/Mailboxes.js"

/**
 * The mailbox a pipeline watches: the account, the folder to SELECT, and the key that names it in
 * events, cursors, locks, positions, status, metrics and spans. Several mailboxes each get their
 * own pipeline, and with it their own Watched.
 */
export class Watched extends Context.Tag("mailroom/Watched")<Watched, WatchedMailbox>() {
  /**
   * The one mailbox of GMAIL_SENDER_EMAIL and IMAP_MAILBOX. Its key is the folder alone, as every
   * row was keyed before several mailboxes: an existing database is its own without a rewrite.
   */
  static readonly single: Effect.Effect<WatchedMailbox, ConfigError.ConfigError> = Effect.gen(function*() {
    const { mailbox } = yield* IntakeConfig
    return { account: (yield* mailboxUser).toLowerCase(), folder: mailbox, key: mailbox }
  })

  static readonly Single = Layer.effect(Watched, Watched.single)

  static readonly Test = (mailbox: WatchedMailbox = { account: "support@example.com", folder: "INBOX", key: "INBOX" }) =>
    Layer.succeed(Watched, mailbox)
}
