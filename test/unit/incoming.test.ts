import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { generateSmallCorpus } from "../../bench/smallCorpus.js"
import type { RawMail } from "../../src/mail/Email.js"
import { Parser } from "../../src/mail/Parser.js"
import { SenderAuthenticator } from "../../src/mail/SenderAuth.js"
import { readIncoming, readIncomingBatch } from "../../src/tickets/Incoming.js"
import { generateCorpus } from "../support/corpus.js"
import { hostileMails, mail } from "../support/mails.js"
import { configLayer } from "./layers.js"

const emls = (dir: string): Array<Buffer> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? emls(join(dir, entry.name)) : entry.name.endsWith(".eml") ? [readFileSync(join(dir, entry.name))] : []
  )

/** Simple and not: small support mail, real samples, attachments, hostile mail, an empty and a cut-off mail. */
const batch: ReadonlyArray<RawMail> = [
  ...Array.from(generateSmallCorpus(120, { to: "support@example.com" }), (m) => m.raw),
  ...emls("samples"),
  ...Array.from(generateCorpus(20), (m) => m.raw),
  ...hostileMails().map((m) => m.raw),
  mail({ text: "vouched for by a trusted server", authenticated: true }),
  Buffer.alloc(0)
].filter((source) => source.length < 500_000).map((source, i) => ({ uid: i + 1, size: source.length, source, headersOnly: false }))
  .concat([{ uid: 10_000, size: 40_000_000, source: Buffer.from("From: a@example.com\r\nSubject: huge\r\n\r\n"), headersOnly: true }])

/** The inline parser with a count of the mails it parsed as effects (mailparser's way). */
const counted = () => {
  const viaEffect: Array<number> = []
  const layer = Layer.effect(
    Parser,
    Effect.map(Parser, (parser) => Parser.make({ ...parser, parse: (raw) => Effect.zipRight(Effect.sync(() => viaEffect.push(raw.uid)), parser.parse(raw)) }))
  ).pipe(Layer.provide(Parser.Default))
  return { viaEffect, layer }
}

/** DNS that answers nothing, and counts what it was asked. */
const silentDns = () => {
  const asked: Array<string> = []
  return { asked, resolver: (name: string) => (asked.push(name), Promise.reject(Object.assign(new Error("no answer"), { code: "ENOTFOUND" }))) }
}

const compare = (verify: "headers" | "dkim", raws: ReadonlyArray<RawMail>) => {
  const { viaEffect, layer } = counted()
  const dns = silentDns()
  return Effect.gen(function*() {
    const parser = yield* Parser
    const senders = yield* SenderAuthenticator
    const one = readIncoming(parser, senders)
    const expected = yield* Effect.forEach(raws, (raw) => one(raw))
    viaEffect.length = 0
    const askedBefore = dns.asked.length
    const got = yield* readIncomingBatch(parser, senders)(raws)
    expect(got).toEqual(expected)
    expect(got.map((m) => m.uid)).toEqual(raws.map((raw) => raw.uid))
    return { viaEffect: [...viaEffect], lookups: dns.asked.length - askedBefore }
  }).pipe(Effect.provide(Layer.merge(layer, SenderAuthenticator.Test(dns.resolver).pipe(Layer.provide(configLayer({ SENDER_VERIFY: verify }))))))
}

describe("readIncomingBatch", () => {
  it.effect("reads a batch as readIncoming reads each mail, in order, the simple ones without a fiber each", () =>
    Effect.gen(function*() {
      const { viaEffect, lookups } = yield* compare("headers", batch)
      expect(lookups).toBe(0)
      // The small corpus goes the quick way; attachments, hostile MIME and the empty mail do not.
      expect(viaEffect.length).toBeGreaterThan(10)
      expect(viaEffect.length).toBeLessThan(batch.length / 2)
      expect(viaEffect.filter((uid) => uid <= 120).length).toBeLessThan(6)
      expect(viaEffect).toContain(batch.find((raw) => raw.source.length === 0)!.uid)
    }))

  it.effect("SENDER_VERIFY=dkim: a simple mail with no trusted verdict is verified as an effect, and parsed only once", () =>
    Effect.gen(function*() {
      const source = mail({ text: "nobody vouched for this sender" })
      const { viaEffect, lookups } = yield* compare("dkim", [{ uid: 1, size: source.length, source, headersOnly: false }])
      expect(lookups).toBeGreaterThan(0)
      expect(viaEffect).toEqual([])
    }))
})
