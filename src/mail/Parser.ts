import { availableParallelism } from "node:os"
import { Worker } from "node:worker_threads"
import { Config, Deferred, Effect, Layer } from "effect"
import type { Parsed, RawMail } from "./Email.js"
import { setting } from "../config/Settings.js"
import { withSpanWhenTracing } from "../telemetry/Tracing.js"
import type { ParseResult } from "./ParseMail.js"
import { parseWithHash, sha256, unparseable } from "./ParseMail.js"

export { sha256 }

const parserThreads = setting(
  "PARSER_THREADS",
  "Worker threads that parse MIME beside the main thread (0 parses on the main thread).",
  (name) => Config.integer(name).pipe(Config.validate({ message: "Expected 0 or more", validation: (n) => n >= 0 })),
  // The main thread and, usually, PostgreSQL need a core each: on 2 cores workers only add memory.
  { value: Math.max(0, Math.min(4, availableParallelism() - 2)), shown: "CPUs minus 2, at most 4" }
)

const span = (raw: RawMail) =>
  withSpanWhenTracing("Parser.parse", { captureStackTrace: false, attributes: { "mailroom.uid": raw.uid, "messaging.message.body.size": raw.size } })

const inline = (raw: RawMail): Effect.Effect<ParseResult> =>
  Effect.promise(() => parseWithHash(raw)).pipe(
    Effect.catchAllDefect((cause) => Effect.succeed({ parsed: unparseable(raw, cause), rawSha256: sha256(raw.source) })),
    span(raw)
  )

/** Spreads parsing over worker threads, so that MIME decoding uses every core while the main thread does I/O. */
const pooled = (threads: number) =>
  Effect.gen(function*() {
    const pending = new Map<number, Deferred.Deferred<ParseResult>>()
    const workers = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Array.from({ length: threads }, () => {
          const worker = new Worker(new URL("./parserWorker.js", import.meta.url))
          worker.on("message", ({ id, result }: { id: number; result: ParseResult }) => {
            const waiting = pending.get(id)
            pending.delete(id)
            if (waiting) Deferred.unsafeDone(waiting, Effect.succeed(result))
          })
          worker.unref()
          return worker
        })
      ),
      (workers) => Effect.promise(() => Promise.all(workers.map((w) => w.terminate())))
    )
    let next = 0
    return (raw: RawMail): Effect.Effect<ParseResult> =>
      Effect.gen(function*() {
        const id = next++
        const done = yield* Deferred.make<ParseResult>()
        pending.set(id, done)
        workers[id % workers.length]!.postMessage({ id, raw })
        const result = yield* Deferred.await(done)
        return result.rawSha256 ? result : { ...result, rawSha256: sha256(raw.source) }
      }).pipe(span(raw))
  })

/** Turns fetched bytes into a checked email or a reason to quarantine it, with the raw hash. It never fails. */
export class Parser extends Effect.Service<Parser>()("mailroom/Parser", {
  succeed: { parse: inline }
}) {
  /** Worker threads when running compiled (dist/), else the main thread: a worker cannot load TypeScript. */
  static readonly Live = Layer.unwrapScoped(
    Effect.gen(function*() {
      const threads = yield* parserThreads
      if (threads === 0 || import.meta.url.endsWith(".ts")) return Parser.Default
      return Layer.succeed(Parser, Parser.make({ parse: yield* pooled(threads) }))
    })
  )

  /** For tests: a parser that answers from a table, so that intake logic runs without MIME. */
  static readonly Test = (answer: (raw: RawMail) => Parsed) =>
    Layer.succeed(Parser, Parser.make({ parse: (raw) => Effect.sync(() => ({ parsed: answer(raw), rawSha256: sha256(raw.source) })) }))
}
