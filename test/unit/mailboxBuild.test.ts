import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { andThen, startBuilding } from "../../src/Layers.js"

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
      const mailbox = startBuilding.pipe(andThen(first), andThen(second), Effect.map(({ context }) => context))

      const one = yield* mailbox
      expect(Context.get(one, First).token).toBe(1)
      expect(Context.get(one, Second).token).toBe(1)
      const other = yield* mailbox
      expect(Context.get(other, First).token).toBe(2)
      expect(Context.get(other, Second).token).toBe(2)
      expect(built).toBe(2)
    }))
})
