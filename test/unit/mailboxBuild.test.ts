import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import { mailboxServices, startBuilding, thenBuild } from "../../src/Layers.js"
import { Imap, MemoryMailbox } from "../../src/mailbox/Imap.js"
import { Leadership } from "../../src/mailbox/Leadership.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { Parser } from "../../src/mail/Parser.js"
import { SenderAuthenticator } from "../../src/mail/SenderAuth.js"
import { Agent } from "../../src/replies/Agent.js"
import { Drafts } from "../../src/replies/Drafts.js"
import { Mailer } from "../../src/replies/Mailer.js"
import { Responder } from "../../src/replies/Responder.js"
import { HealthState } from "../../src/telemetry/Health.js"
import { configLayer, storeLayer } from "./layers.js"

class Token extends Context.Tag("test/Token")<Token, { readonly id: number }>() {}
class First extends Context.Tag("test/First")<First, { readonly token: number }>() {}
class Second extends Context.Tag("test/Second")<Second, { readonly token: number }>() {}

describe("building a mailbox's services one after another", () => {
  it.scoped("builds what two of them share once per mailbox, and nothing across mailboxes", () =>
    Effect.gen(function*() {
      let built = 0
      // Like OAuth2Live under ImapLive and MailerLive: one refresh token, so one holder of it per mailbox.
      const token = Layer.sync(Token, () => ({ id: ++built }))
      const first = Layer.effect(First, Effect.map(Token, (t) => ({ token: t.id }))).pipe(Layer.provide(token))
      const second = Layer.effect(Second, Effect.map(Token, (t) => ({ token: t.id }))).pipe(Layer.provide(token))
      const mailbox = startBuilding.pipe(thenBuild(first), thenBuild(second), Effect.map(({ context }) => context))

      const one = yield* mailbox
      expect(Context.get(one, First).token).toBe(1)
      expect(Context.get(one, Second).token).toBe(1)
      const other = yield* mailbox
      expect(Context.get(other, First).token).toBe(2)
      expect(Context.get(other, Second).token).toBe(2)
      expect(built).toBe(2)
    }))
})

describe("a mailbox's replies side", () => {
  const build = (env: Record<string, string>) =>
    mailboxServices(Imap.Test(new MemoryMailbox())).pipe(
      Effect.provide(
        Layer.mergeAll(Parser.Default, SenderAuthenticator.Default, Leadership.Test, HealthState.Default).pipe(
          Layer.provideMerge(storeLayer),
          Layer.provideMerge(configLayer(env))
        )
      )
    )

  const built = (context: Context.Context<any>) => [Agent, Mailer, Drafts].map((tag: Context.Tag<any, any>) => Option.isSome(Context.getOption(context, tag)))

  it.scoped("with AGENT=off is a responder that answers nothing, without agent, SMTP mailer or drafts folder", () =>
    Effect.gen(function*() {
      const context = yield* build({ AGENT: "off" })
      expect(Context.get(context, Responder).enabled).toBe(false)
      expect(Option.isNone(yield* Context.get(context, Responder).drain)).toBe(true)
      expect(built(context)).toEqual([false, false, false])
      expect(Context.getOption(context, Poller)._tag).toBe("Some")
    }))

  it.scoped("with an agent has all of them", () =>
    Effect.gen(function*() {
      const context = yield* build({ AGENT: "knowledge" })
      expect(Context.get(context, Responder).enabled).toBe(true)
      expect(built(context)).toEqual([true, true, true])
    }))
})
