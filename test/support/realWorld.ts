import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { EventLog } from "../../src/log/EventLog.js"
import { MemoryMailbox } from "../../src/mailbox/Imap.js"
import { Poller } from "../../src/mailbox/Poller.js"
import { pipelineLayer } from "../unit/layers.js"

/**
 * Real-world mail that Debian packages (test/support/realWorld/fetch.sh, which `npm test` runs):
 * Python's email test messages, enmime's collection of malformed mail from its bug reports, and
 * SpamAssassin's spam and ham samples. Kept out of the repository and fetched like the other test servers.
 */
export interface RealWorldMail {
  /** `source/file`, e.g. `enmime/low-quality-bad-header-wrap.raw`. */
  readonly name: string
  readonly raw: Buffer
}

const repoRoot = fileURLToPath(new URL("../..", import.meta.url))
export const realWorldDir = join(process.env.MAILROOM_CACHE ?? join(repoRoot, ".cache"), "real-world-mail")

export const REAL_WORLD_SOURCES = ["python", "enmime", "spamassassin"] as const

/** Every mail, sorted by name; throws (never skips) when the corpus was not fetched. */
export const realWorldMail = (): ReadonlyArray<RealWorldMail> => {
  if (!existsSync(join(realWorldDir, ".complete"))) {
    throw new Error(`no real-world mail in ${realWorldDir}: run \`bash test/support/realWorld/fetch.sh\` (npm test does)`)
  }
  return REAL_WORLD_SOURCES.flatMap((source) =>
    readdirSync(join(realWorldDir, source)).sort().map((file) => ({ name: `${source}/${file}`, raw: readFileSync(join(realWorldDir, source, file)) }))
  )
}

/** The intake outcome of every real-world mail, in UID order, through the pipeline over the memory mailbox. */
export const realWorldOutcomes = (mails: ReadonlyArray<{ readonly raw: Buffer }>) => {
  const mailbox = new MemoryMailbox()
  const uids = mails.map((m) => mailbox.append(m.raw))
  const after = mailbox.append("From: after@customer.test\r\nSubject: after\r\nMessage-ID: <after@customer.test>\r\n\r\nstill here\r\n")
  return Effect.gen(function*() {
    yield* Effect.flatMap(Poller, (p) => p.once)
    const events = yield* Effect.flatMap(EventLog, (log) => log.read(0n, 100_000))
    return { uids, after, events }
  }).pipe(Effect.provide(pipelineLayer(mailbox)))
}
