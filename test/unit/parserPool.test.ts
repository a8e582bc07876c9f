import { mkdtempSync, rmSync } from "node:fs"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { build } from "esbuild"
import { Effect, Logger } from "effect"
import type { RawMail } from "../../src/mail/Email.js"
import type { ParseResult } from "../../src/mail/ParseMail.js"
import { parseWithHash } from "../../src/mail/ParseMail.js"
import { makePool, sha256 } from "../../src/mail/Parser.js"
import { mail } from "../support/mails.js"

const stub = new URL("../support/parserWorkerStub.mjs", import.meta.url)

/** A mail the stub worker reads, dies on or sits on, as its X-Stub header tells it. */
const stubMail = (uid: number, order = "read"): RawMail => {
  const source = Buffer.from(`From: a@example.com\r\nX-Stub: ${order}\r\nSubject: ${uid}\r\n\r\nhello\r\n`)
  return { uid, size: source.length, source, headersOnly: false }
}

const raw = (source: Buffer, uid = 1): RawMail => ({ uid, size: source.length, source, headersOnly: false })

/** The thread of the stub that read the mail, or undefined when the stub never answered for it. */
const readBy = (result: ParseResult, uid: number): number | undefined => {
  const match = result.parsed._tag === "Rejected" ? /^stub thread (\d+) read uid (\d+)$/.exec(result.parsed.detail) : null
  return match && Number(match[2]) === uid ? Number(match[1]) : undefined
}

const detailOf = (result: ParseResult) => (result.parsed._tag === "Rejected" ? `${result.parsed.reason}: ${result.parsed.detail}` : "accepted")

describe("the parser pool", () => {
  it.scopedLive.each([
    ["exits", "exit", "unparseable: the parser worker died while reading this mail (exit code 7)"],
    ["throws an uncaught exception", "throw", "unparseable: the parser worker died while reading this mail (exit code 1: stub choked on this mail)"]
  ] as const)("a worker that %s on one mail costs that mail only, and is replaced", ([, order, detail]) =>
    Effect.gen(function*() {
      const { parse } = yield* makePool({ threads: 1, worker: stub })
      const first = readBy(yield* parse(stubMail(0)), 0)
      expect(first).toBeTypeOf("number")

      const batch = Array.from({ length: 20 }, (_, i) => stubMail(i + 1, i === 9 ? order : "read"))
      const results = yield* Effect.forEach(batch, (mail) => parse(mail), { concurrency: 16 })

      expect(results).toHaveLength(20)
      expect(detailOf(results[9]!)).toBe(detail)
      expect(results[9]!.rawSha256).toBe(sha256(batch[9]!.source))
      results.forEach((result, i) => {
        if (i !== 9) expect(readBy(result, i + 1), `uid ${i + 1}: ${detailOf(result)}`).toBeTypeOf("number")
      })
      const later = yield* Effect.forEach([21, 22, 23], (uid) => Effect.map(parse(stubMail(uid)), (result) => readBy(result, uid)))
      later.forEach((thread) => {
        expect(thread).toBeTypeOf("number")
        expect(thread).not.toBe(first)
      })
    }), 8_000)

  it.scopedLive("mail held by a worker that died is retried one at a time on a fresh worker, not failed", () =>
    Effect.gen(function*() {
      const { parse } = yield* makePool({ threads: 1, worker: stub })
      const first = readBy(yield* parse(stubMail(0)), 0)
      // The worker holds 1 and 2 unanswered when 3 kills it; 4 and 5 are already posted to it.
      const batch = [stubMail(1, "delay:200"), stubMail(2, "delay:200"), stubMail(3, "exit"), stubMail(4), stubMail(5)]
      const results = yield* Effect.forEach(batch, (mail) => parse(mail), { concurrency: "unbounded" })

      expect(detailOf(results[2]!)).toBe("unparseable: the parser worker died while reading this mail (exit code 7)")
      const retried = [0, 1, 3, 4].map((i) => readBy(results[i]!, i + 1))
      retried.forEach((thread, i) => {
        expect(thread, detailOf(results[[0, 1, 3, 4][i]!]!)).toBeTypeOf("number")
        expect(thread).not.toBe(first)
      })
    }), 8_000)

  it.scopedLive("a worker that stops answering is stopped, and only the mail it was stuck on is lost", () =>
    Effect.gen(function*() {
      const { parse } = yield* makePool({ threads: 2, worker: stub, stallTimeout: "500 millis" })
      const batch = Array.from({ length: 8 }, (_, i) => stubMail(i + 1, i === 3 ? "hang" : "read"))
      const results = yield* Effect.forEach(batch, (mail) => parse(mail), { concurrency: 8 })

      expect(detailOf(results[3]!)).toBe(
        "unparseable: the parser worker stopped answering while reading this mail and was stopped after 500ms"
      )
      results.forEach((result, i) => {
        if (i !== 3) expect(readBy(result, i + 1), `uid ${i + 1}: ${detailOf(result)}`).toBeTypeOf("number")
      })
    }), 8_000)

  it.scopedLive("a batch goes to each worker in one message and comes back in its order", () =>
    Effect.gen(function*() {
      const { parse, parseMany } = yield* makePool({ threads: 2, worker: stub })
      // Both loaded: a first mail to each.
      yield* Effect.forEach([stubMail(0, "delay:50"), stubMail(0, "delay:50")], (mail) => parse(mail), { concurrency: 2 })
      const batch = Array.from({ length: 10 }, (_, i) => stubMail(i + 1, i === 2 ? "delay:100" : "read"))
      const threads = (yield* parseMany(batch)).map((result, i) => readBy(result, i + 1))

      // Each half went to one worker whole: the late mail held back its own half's answer, in order.
      expect(new Set(threads.slice(0, 5)).size).toBe(1)
      expect(new Set(threads.slice(5)).size).toBe(1)
      expect(threads[0]).toBeTypeOf("number")
      expect(threads[5]).toBeTypeOf("number")
      expect(threads[0]).not.toBe(threads[5])
    }), 8_000)

  it.scopedLive("a mail that kills the worker holding its batch costs that mail only: the rest are read one at a time", () =>
    Effect.gen(function*() {
      const { parse, parseMany } = yield* makePool({ threads: 1, worker: stub })
      const first = readBy(yield* parse(stubMail(0)), 0)
      const batch = Array.from({ length: 12 }, (_, i) => stubMail(i + 1, i === 6 ? "exit" : "read"))
      const results = yield* parseMany(batch)

      expect(results).toHaveLength(12)
      expect(detailOf(results[6]!)).toBe("unparseable: the parser worker died while reading this mail (exit code 7)")
      expect(results[6]!.rawSha256).toBe(sha256(batch[6]!.source))
      results.forEach((result, i) => {
        if (i === 6) return
        const thread = readBy(result, i + 1)
        expect(thread, `uid ${i + 1}: ${detailOf(result)}`).toBeTypeOf("number")
        expect(thread).not.toBe(first)
      })
    }), 8_000)

  it.scopedLive("before any worker has loaded, a batch's single-part text is read on the main thread at once", () =>
    Effect.gen(function*() {
      const { parseMany } = yield* makePool({ threads: 1, worker: stub })
      // A batch read here whole answers at once.
      const [alone] = yield* parseMany([raw(mail({ subject: "all read here", text: "hi" }), 3)])
      expect(alone!.parsed._tag === "Accepted" && alone!.parsed.email.subject).toBe("all read here")
      const plain = raw(mail({ subject: "read here", text: "hi" }), 1)
      const latin = raw(mail({ subject: "latin-1", text: "Grüße", charset: "iso-8859-1" }), 2)
      const [here, there] = yield* parseMany([plain, latin])

      expect(here!.parsed._tag === "Accepted" && here!.parsed.email.subject).toBe("read here")
      expect(here!.rawSha256).toBe(sha256(plain.source))
      // Not what the fast path reads (another charset): it waits for the worker.
      expect(readBy(there!, 2)).toBeTypeOf("number")
    }), 8_000)

  it.scopedLive.each([
    ["fails as it loads", new URL("../support/parserWorkerBroken.mjs", import.meta.url)],
    ["is missing", new URL("../support/noSuchParserWorker.mjs", import.meta.url)]
  ] as const)("when the worker script %s, mail is parsed on the main thread and no worker is started again", ([, worker]) => {
    const logs: Array<string> = []
    const logger = Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => logs.push(String(message))))
    return Effect.gen(function*() {
      const { parse } = yield* makePool({ threads: 2, worker })
      const subjectOf = (uid: number) =>
        Effect.map(parse(raw(mail({ subject: `hello ${uid}`, text: "hi" }), uid)), ({ parsed }) => parsed._tag === "Accepted" && parsed.email.subject)
      const together = yield* Effect.forEach([1, 2, 3], subjectOf, { concurrency: "unbounded" })
      const oneByOne = yield* Effect.forEach([4, 5, 6], subjectOf)

      expect([...together, ...oneByOne]).toEqual(["hello 1", "hello 2", "hello 3", "hello 4", "hello 5", "hello 6"])
      expect(logs).toEqual(Array(2).fill("A parser worker could not start; its share of mail is parsed elsewhere"))
    }).pipe(Effect.provide(logger))
  }, 8_000)

  it.scopedLive("the real worker, bundled as npm run build does, parses mail and speaks the pool's protocol", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => mkdtempSync(join("node_modules", ".cache", "parser-worker-"))),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      )
      const outfile = join(dir, "parserWorker.mjs")
      yield* Effect.promise(() =>
        build({
          entryPoints: ["src/mail/parserWorker.ts"],
          outfile,
          bundle: true,
          format: "esm",
          platform: "node",
          target: "node20",
          packages: "external",
          logLevel: "silent"
        })
      )
      const { parse, parseMany } = yield* makePool({ threads: 2, worker: pathToFileURL(outfile) })
      const source = mail({ subject: "from a worker", text: "hi" })
      // Bytes that are not bytes make the worker throw: its death is charged to the mail only if it said it was ready.
      const choking: RawMail = { ...raw(source, 3), source: "not bytes" as unknown as Buffer }
      const results = yield* Effect.forEach([raw(source, 1), raw(Buffer.alloc(0), 2), choking], (mail) => parse(mail), {
        concurrency: "unbounded"
      })

      expect(results[0]!.parsed._tag === "Accepted" && results[0]!.parsed.email.subject).toBe("from a worker")
      expect(results[0]!.rawSha256).toBe(sha256(source))
      expect(detailOf(results[1]!)).toBe("unparseable: empty message")
      expect(detailOf(results[2]!)).toMatch(/^unparseable: the parser worker died while reading this mail \(exit code 1: /)

      // A batch, once the workers have loaded: what the main thread would make of each mail.
      const mixed = [
        raw(mail({ subject: "plain", text: "hello there" }), 4),
        raw(mail({ subject: "with a file", text: "see attached", attachments: [{ filename: "a.txt", contentType: "text/plain", content: Buffer.from("data") }] }), 5),
        raw(mail({ subject: "html", text: "hi", html: "<p>hi <b>there</b></p>" }), 6),
        raw(Buffer.alloc(0), 7)
      ]
      const inWorkers = yield* parseMany(mixed)
      const onMain = yield* Effect.promise(() => Promise.all(mixed.map(parseWithHash)))
      expect(inWorkers).toEqual(onMain)
      expect(inWorkers.map((result) => result.parsed._tag)).toEqual(["Accepted", "Accepted", "Accepted", "Rejected"])
    }), 8_000)
})
