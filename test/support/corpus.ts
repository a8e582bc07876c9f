import { realpathSync } from "node:fs"
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { mail, mulberry32, pseudoRandomBytes } from "./mails.js"
import type { MailAttachment } from "./mails.js"

export type CorpusKind = "plain" | "html" | "attachment" | "reply" | "auto-reply" | "list"

export interface CorpusMail {
  readonly index: number
  readonly raw: Buffer
  readonly messageId: string
  /** The sender's address. Replies come from any customer, as the guide's corpus has them. */
  readonly from: string
  /** The Message-ID this mail answers, always an earlier one of the corpus. */
  readonly threadOf?: string
  /** The most telling of its traits: auto-reply, list, reply, attachment, html, else plain. */
  readonly kind: CorpusKind
}

export interface CorpusOptions {
  readonly seed?: number
  /** Attachments are 2 KB, 50 KB, 300 KB or 1.5 MB, cut to this (default 1.5 MB). */
  readonly maxAttachmentBytes?: number
}

const words = ("account password reset invoice billing error login api key webhook refund subscription upgrade plan " +
  "export data timeout crash mobile app dashboard report integration slack sso saml token limit quota").split(" ")

const subjects = [
  "How do I reset my password?",
  "API question",
  "Invoice #{n} is wrong",
  "Réclamation: facture incorrecte",
  "Проблема со входом",
  "ログインできません",
  "Export to CSV fails",
  "Webhook retries",
  "Cancel my subscription 😞"
]

const attachmentSizes = [2_000, 50_000, 300_000, 1_500_000]

// gen_corpus.py's clock: one mail every 37 seconds from this second on.
const baseSeconds = 1_763_000_000

type Random = () => number

const int = (random: Random, below: number) => Math.floor(random() * below)
const pick = <A>(random: Random, list: ReadonlyArray<A>): A => list[int(random, list.length)]!

interface Traits {
  readonly kind: CorpusKind
  readonly parent: string | undefined
  readonly headers: Record<string, string>
  readonly subjectPrefix: string
}

// One roll decides, as in gen_corpus.py: under 0.15 a reply, over 0.97 an auto-reply, over 0.95 list mail.
const traits = (random: Random, ids: ReadonlyArray<string>): Traits => {
  const roll = random()
  if (ids.length > 0 && roll < 0.15) return { kind: "reply", parent: pick(random, ids), headers: {}, subjectPrefix: "Re: " }
  if (roll > 0.97) {
    return { kind: "auto-reply", parent: undefined, headers: { "Auto-Submitted": "auto-replied" }, subjectPrefix: "Out of office: " }
  }
  if (roll > 0.95) {
    return { kind: "list", parent: undefined, headers: { "List-Id": "<news.example.net>", Precedence: "list" }, subjectPrefix: "" }
  }
  return { kind: "plain", parent: undefined, headers: {}, subjectPrefix: "" }
}

// Each size once in every four attachments, in random order: gen_corpus.py picks freely, but then one
// seed's average can land 50% off the ~65 KB the mix is meant to have.
const sizeBag = (random: Random) => {
  const bag: Array<number> = []
  return () => {
    if (bag.length === 0) {
      bag.push(...attachmentSizes)
      for (let i = bag.length - 1; i > 0; i--) {
        const j = int(random, i + 1)
        const held = bag[i]!
        bag[i] = bag[j]!
        bag[j] = held
      }
    }
    return bag.pop()!
  }
}

interface Context {
  readonly n: number
  readonly seed: number
  readonly max: number
  readonly random: Random
  readonly nextSize: () => number
  readonly ids: ReadonlyArray<string>
}

const attachmentFor = ({ random, nextSize, seed, max }: Context, index: number): Array<MailAttachment> => {
  if (random() >= 0.1) return []
  const size = Math.min(max, nextSize())
  // A stream of its own per mail: the cap changes attachment bytes, never the rest of the corpus.
  const content = pseudoRandomBytes(size, (seed + Math.imul(index + 1, 0x9e3779b1)) >>> 0)
  return [{ filename: `doc${index}.pdf`, contentType: "application/pdf", content }]
}

const kindOf = (traits: Traits, html: boolean, attachments: boolean): CorpusKind =>
  traits.kind !== "plain" ? traits.kind : attachments ? "attachment" : html ? "html" : "plain"

const corpusMail = (context: Context, index: number): CorpusMail => {
  const { random, n, ids } = context
  const who = int(random, Math.max(1, Math.floor(n / 5)))
  const subject = pick(random, subjects).replace("{n}", String(int(random, 10000)))
  const messageId = `<${index}.${Math.floor(random() * 2 ** 40).toString(16)}@example.org>`
  const found = traits(random, ids)
  const body = Array.from({ length: 20 + int(random, 380) }, () => pick(random, words)).join(" ")
  const html = random() < 0.4
  const attachments = attachmentFor(context, index)
  const raw = mail({
    from: `Customer ${who} <customer${who}@example.org>`,
    subject: found.subjectPrefix + subject,
    messageId,
    text: `Hello support,\n\n${body}\n\nThanks,\nCustomer ${who}\n`,
    date: new Date((baseSeconds + index * 37) * 1000),
    headers: found.headers,
    boundary: `=_corpus_${index}`,
    ...(html ? { html: `<html><body><p>Hello support,</p><p>${body}</p><p>Thanks</p></body></html>` } : {}),
    ...(found.parent ? { inReplyTo: found.parent, references: [found.parent] } : {}),
    ...(attachments.length > 0 ? { attachments } : {})
  })
  const kind = kindOf(found, html, attachments.length > 0)
  return { index, raw, messageId, from: `customer${who}@example.org`, kind, ...(found.parent ? { threadOf: found.parent } : {}) }
}

/**
 * Realistic support mail in the mix of gen_corpus.py (../shared/bench): plain and HTML, attachments,
 * French, Russian, Japanese and emoji subjects, replies, auto-replies and list mail. The same n and
 * seed give the same bytes; mails are made one at a time as the caller iterates.
 */
export function* generateCorpus(n: number, options: CorpusOptions = {}): Generator<CorpusMail> {
  const seed = options.seed ?? 46530192
  const max = options.maxAttachmentBytes ?? 1_500_000
  const random = mulberry32(seed)
  const ids: Array<string> = []
  const context: Context = { n, seed, max, random, nextSize: sizeBag(random), ids }
  for (let index = 0; index < n; index++) {
    const item = corpusMail(context, index)
    ids.push(item.messageId)
    yield item
  }
}

const writeCorpus = async (dir: string, n: number, seed: number | undefined) => {
  await mkdir(dir, { recursive: true })
  for (const m of generateCorpus(n, seed === undefined ? {} : { seed })) {
    await writeFile(join(dir, `${String(m.index).padStart(6, "0")}-${m.kind}.eml`), m.raw)
  }
}

const runDirectly = () => {
  try {
    return realpathSync(process.argv[1] ?? "") === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

// node --import tsx test/support/corpus.ts OUTDIR N [SEED]
if (runDirectly()) {
  const [dir, count, seed] = process.argv.slice(2)
  if (dir === undefined || count === undefined || !(Number(count) >= 0)) {
    console.error("usage: node --import tsx test/support/corpus.ts OUTDIR N [SEED]")
    process.exitCode = 2
  } else {
    writeCorpus(dir, Number(count), seed === undefined ? undefined : Number(seed)).catch((error: unknown) => {
      console.error(error)
      process.exitCode = 1
    })
  }
}
