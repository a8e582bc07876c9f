import { Worker } from "node:worker_threads"
import { Duration, Effect, Exit, FiberId, Layer, Runtime } from "effect"
import { parserThreads } from "../config/Mail.js"
import type { Parsed, RawMail } from "./Email.js"
import { withSpanWhenTracing } from "../telemetry/Tracing.js"
import type { ParseResult } from "./ParseMail.js"
import { parseSimple, parseWithHash, sha256, unparseable } from "./ParseMail.js"

export { sha256 }

const span = (raw: RawMail) =>
  withSpanWhenTracing("Parser.parse", { captureStackTrace: false, attributes: { "mailroom.uid": raw.uid, "messaging.message.body.size": raw.size } })

const inline = (raw: RawMail): Effect.Effect<ParseResult> =>
  Effect.promise(() => parseWithHash(raw)).pipe(
    Effect.catchAllDefect((cause) => Effect.succeed({ parsed: unparseable(raw, cause), rawSha256: sha256(raw.source) })),
    span(raw)
  )

/**
 * What a parser worker posts back: once `ready` when it has loaded, then a `result` for each mail
 * posted alone and one `results` for each batch posted at once (in the batch's order).
 */
export type WorkerReply =
  | { readonly ready: true }
  | { readonly id: number; readonly result: ParseResult }
  | { readonly ids: ReadonlyArray<number>; readonly results: ReadonlyArray<ParseResult> }

export interface PoolOptions {
  readonly threads: number
  /** The worker script: dist/parserWorker.js when running compiled, a stand-in in tests. */
  readonly worker: URL
  /** How long a worker holding mail may go without answering before it is stopped; one minute unless told. */
  readonly stallTimeout?: Duration.DurationInput
}

interface Job {
  readonly raw: RawMail
  /** Called once: with the mail's result, or interrupted when the pool closes first. */
  readonly done: (exit: Exit.Exit<ParseResult>) => void
}

/** One worker thread and the mail it holds, by request id. */
interface Hand {
  readonly worker: Worker
  readonly held: Map<number, Job>
  ready: boolean
  /** When it started, said it was ready, last answered, or was given mail while idle: the stall watchdog's clock. */
  since: number
  error: unknown
  stopped: "stalled" | "unreadable" | "retired" | undefined
}

const messageOf = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * Spreads parsing over worker threads, so that MIME decoding uses every core while the main thread does I/O.
 *
 * Hand-made rather than @effect/platform's Worker pool: that one fails every request a dead worker held
 * with the same WorkerError and restarts it a second later, so the failover below would still be needed
 * on top, and it costs a fiber, a scope and framing per mail.
 *
 * When a worker dies (exit, uncaught exception, out of memory, an unreadable reply, or stopped by the
 * stall watchdog), every mail it held is retried one at a time on a worker of its own, so a second death
 * is pinned on the one mail that caused it, which is then `unparseable`. Its slot is refilled when next
 * needed. A worker that dies before it has loaded never read any mail: its mail goes elsewhere uncharged,
 * its slot is retired, and with no slot left mail is parsed on the main thread.
 */
export const makePool = (options: PoolOptions) =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const warn = (message: string, annotations: Record<string, unknown>) =>
      runFork(Effect.logWarning(message).pipe(Effect.annotateLogs({ service: "Parser", ...annotations })))
    const stallTimeout = Duration.decode(options.stallTimeout ?? "1 minute")
    const hands: Array<Hand | undefined> = []
    const retired = new Set<number>()
    const suspects: Array<Job> = []
    let lane: Hand | undefined
    let closed = false
    let nextId = 0

    const settle = (job: Job, result: ParseResult) =>
      job.done(Exit.succeed(result.rawSha256 ? result : { ...result, rawSha256: sha256(job.raw.source) }))
    const reject = (job: Job, parsed: Parsed) => settle(job, { parsed, rawSha256: "" })
    const parseHere = (job: Job) => {
      parseWithHash(job.raw).then((result) => settle(job, result), (cause: unknown) => reject(job, unparseable(job.raw, cause)))
    }
    const abandon = (jobs: Iterable<Job>) => {
      for (const job of jobs) job.done(Exit.interrupt(FiberId.none))
    }

    const stop = (hand: Hand, reason: NonNullable<Hand["stopped"]>) => {
      if (hand.stopped) return
      hand.stopped = reason
      void hand.worker.terminate()
    }

    const death = (hand: Hand, code: number): string =>
      hand.stopped === "stalled"
        ? `the parser worker stopped answering while reading this mail and was stopped after ${Duration.format(stallTimeout)}`
        : hand.stopped === "unreadable"
        ? `the parser worker's answer could not be read (${messageOf(hand.error)})`
        : `the parser worker died while reading this mail (exit code ${code}${hand.error === undefined ? "" : `: ${messageOf(hand.error)}`})`

    const why = (hand: Hand) => ({
      ...(hand.stopped ? { stopped: hand.stopped } : {}),
      ...(hand.error === undefined ? {} : { cause: messageOf(hand.error) })
    })

    const spawn = (onExit: (hand: Hand, code: number) => void): Hand => {
      const worker = new Worker(options.worker)
      const hand: Hand = { worker, held: new Map(), ready: false, since: Date.now(), error: undefined, stopped: undefined }
      worker.on("message", (reply: WorkerReply) => {
        if ("ready" in reply) {
          hand.ready = true
          hand.since = Date.now()
          return
        }
        const answered = "ids" in reply ? reply.ids.map((id, i) => [id, reply.results[i]!] as const) : [[reply.id, reply.result] as const]
        for (const [id, result] of answered) {
          const job = hand.held.get(id)
          if (!job) continue
          hand.held.delete(id)
          settle(job, result)
        }
        hand.since = Date.now()
        if (hand === lane) drainLane()
      })
      // Without a listener, an uncaught exception in the worker is rethrown here and ends the process.
      worker.on("error", (error) => {
        hand.error = error
      })
      worker.on("messageerror", (error) => {
        hand.error = error
        stop(hand, "unreadable")
      })
      worker.on("exit", (code) => onExit(hand, code))
      worker.unref()
      return hand
    }

    const give = (hand: Hand, job: Job) => {
      const id = nextId++
      if (hand.held.size === 0) hand.since = Date.now()
      hand.held.set(id, job)
      try {
        hand.worker.postMessage({ id, raw: job.raw })
      } catch (cause) {
        hand.held.delete(id)
        reject(job, unparseable(job.raw, cause))
      }
    }

    /** A batch in one message each way: the messages, not the parse, were what a worker cost per mail. */
    const giveAll = (hand: Hand, jobs: ReadonlyArray<Job>) => {
      const ids = jobs.map(() => nextId++)
      if (hand.held.size === 0) hand.since = Date.now()
      jobs.forEach((job, i) => hand.held.set(ids[i]!, job))
      try {
        hand.worker.postMessage({ ids, raws: jobs.map((job) => job.raw) })
      } catch {
        // One mail that cannot be posted (a clone failure) should not cost the rest: each alone.
        ids.forEach((id) => hand.held.delete(id))
        jobs.forEach((job) => give(hand, job))
      }
    }

    const handAt = (slot: number): Hand | undefined => {
      if (retired.has(slot)) return undefined
      const hand = hands[slot] ?? spawn((hand, code) => handDied(slot, hand, code))
      hands[slot] = hand
      return hand.stopped ? undefined : hand
    }

    /** To the worker holding the least mail, so that one slow mail does not hold up the others. */
    const dispatch = (job: Job) => {
      if (closed) return parseHere(job)
      let best: Hand | undefined
      for (let slot = 0; slot < options.threads; slot++) {
        const hand = handAt(slot)
        if (hand && (!best || hand.held.size < best.held.size)) best = hand
      }
      return best ? give(best, job) : parseHere(job)
    }

    const handDied = (slot: number, hand: Hand, code: number) => {
      if (hands[slot] === hand) hands[slot] = undefined
      const jobs = [...hand.held.values()]
      hand.held.clear()
      if (closed) return abandon(jobs)
      if (!hand.ready) {
        retired.add(slot)
        warn("A parser worker could not start; its share of mail is parsed elsewhere", { exitCode: code, ...why(hand) })
        return jobs.forEach(dispatch)
      }
      warn("A parser worker died; the mail it held is retried one at a time", { exitCode: code, mails: jobs.length, ...why(hand) })
      suspects.push(...jobs)
      drainLane()
    }

    /** The suspects, one at a time: a worker that dies here was killed by the mail it held. */
    const drainLane = () => {
      if (closed || (lane && lane.held.size > 0)) return
      const job = suspects.shift()
      if (!job) {
        if (lane) stop(lane, "retired")
        lane = undefined
        return
      }
      lane ??= spawn(laneDied)
      give(lane, job)
    }

    const laneDied = (hand: Hand, code: number) => {
      if (lane === hand) lane = undefined
      const jobs = [...hand.held.values()]
      hand.held.clear()
      if (closed) return abandon(jobs)
      for (const job of jobs) {
        if (!hand.ready) parseHere(job)
        else {
          warn("A mail killed a parser worker twice: it is kept as unparseable", { uid: job.raw.uid, exitCode: code, ...why(hand) })
          reject(job, unparseable(job.raw, death(hand, code)))
        }
      }
      drainLane()
    }

    // A worker still loading on a busy machine is slow, not stuck: stopping it would retire its slot.
    const startTimeout = Duration.max(stallTimeout, Duration.minutes(1))
    const watchdog = () => {
      const now = Date.now()
      for (const hand of [...hands, lane]) {
        const limit = hand?.ready ? stallTimeout : startTimeout
        if (hand && hand.held.size > 0 && now - hand.since > Duration.toMillis(limit)) stop(hand, "stalled")
      }
    }

    yield* Effect.acquireRelease(
      Effect.sync(() => {
        for (let slot = 0; slot < options.threads; slot++) handAt(slot)
        const timer = setInterval(watchdog, Math.max(10, Duration.toMillis(stallTimeout) / 4))
        timer.unref()
        return timer
      }),
      (timer) =>
        Effect.promise(() => {
          closed = true
          clearInterval(timer)
          abandon(suspects.splice(0))
          return Promise.all([...hands, lane].flatMap((hand) => (hand ? [hand.worker.terminate()] : [])))
        })
    )

    /**
     * A batch split evenly over the workers, one message to each. While none has loaded yet (a start's
     * first batch), the single-part text mail is read here at once, as with no pool, rather than wait.
     */
    const dispatchAll = (jobs: ReadonlyArray<Job>) => {
      const open = closed ? [] : Array.from({ length: options.threads }, (_, slot) => handAt(slot)).flatMap((hand) => hand ? [hand] : [])
      if (open.length === 0) return jobs.forEach(parseHere)
      const ready = open.filter((hand) => hand.ready)
      const waiting = ready.length > 0 ? jobs : jobs.filter((job) => {
        const result = parseSimple(job.raw)
        if (result !== undefined) settle(job, result)
        return result === undefined
      })
      const takers = ready.length > 0 ? ready : open
      const share = Math.ceil(waiting.length / takers.length)
      takers.forEach((hand, i) => {
        const part = waiting.slice(i * share, (i + 1) * share)
        if (part.length > 0) giveAll(hand, part)
      })
    }

    const parse = (raw: RawMail): Effect.Effect<ParseResult> =>
      Effect.async<ParseResult>((resume) => dispatch({ raw, done: resume })).pipe(span(raw))

    const parseMany = (raws: ReadonlyArray<RawMail>): Effect.Effect<Array<ParseResult>> =>
      Effect.async<Array<ParseResult>>((resume) => {
        const results = new Array<ParseResult>(raws.length)
        let left = raws.length
        let over = false
        if (left === 0) return resume(Effect.succeed(results))
        dispatchAll(raws.map((raw, i): Job => ({
          raw,
          done: (exit) => {
            if (over) return
            if (Exit.isFailure(exit)) {
              over = true
              return resume(Exit.failCause(exit.cause))
            }
            results[i] = exit.value
            if (--left === 0) resume(Effect.succeed(results))
          }
        })))
      })

    return { parse, parseMany }
  })

/** Turns fetched bytes into a checked email or a reason to quarantine it, with the raw hash. It never fails. */
export class Parser extends Effect.Service<Parser>()("mailroom/Parser", {
  succeed: {
    parse: inline,
    /**
     * What can be parsed on the spot, in one synchronous call (single-part text mail, the most
     * common kind): a batch reads those in a loop instead of a fiber and a promise per mail.
     * Undefined for the rest, which go through `parse`; a worker pool parses everything itself.
     */
    parseNow: parseSimple,
    /** A whole batch at once, by the worker pool: one message to a worker and one back. */
    parseMany: undefined as ((raws: ReadonlyArray<RawMail>) => Effect.Effect<Array<ParseResult>>) | undefined
  }
}) {
  /** Worker threads when running compiled (dist/), else the main thread: a worker cannot load TypeScript. */
  static readonly Live = Layer.unwrapScoped(
    Effect.gen(function*() {
      const threads = yield* parserThreads
      if (threads === 0 || import.meta.url.endsWith(".ts")) return Parser.Default
      const { parse, parseMany } = yield* makePool({ threads, worker: new URL("./parserWorker.js", import.meta.url) })
      return Layer.succeed(Parser, Parser.make({ parse, parseNow: () => undefined, parseMany }))
    })
  )

  /** For tests: a parser that answers from a table, so that intake logic runs without MIME. */
  static readonly Test = (answer: (raw: RawMail) => Parsed) =>
    Layer.succeed(Parser, Parser.make({ parse: (raw) => Effect.sync(() => ({ parsed: answer(raw), rawSha256: sha256(raw.source) })), parseNow: () => undefined, parseMany: undefined }))
}
