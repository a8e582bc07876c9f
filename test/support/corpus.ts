import { mail } from "./mails.js"

/** mulberry32: small, fast and the same sequence for the same seed everywhere. */
const prng = (seed: number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
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

export type CorpusKind = "plain" | "html" | "attachment" | "reply" | "auto-reply" | "list"

export interface CorpusMail {
  readonly index: number
  readonly raw: Buffer
  readonly messageId: string
  /** The Message-ID this mail answers, always an earlier one of the corpus. */
  readonly threadOf?: string
  readonly kind: CorpusKind
}

/**
 * Realistic support mail, the mix of ../shared/bench/gen_corpus.py: plain and HTML, attachments,
 * non-ASCII subjects, replies, auto-replies and list mail. Same bytes for the same n and seed.
 */
export function* generateCorpus(
  n: number,
  options: { readonly seed?: number; readonly maxAttachmentBytes?: number } = {}
): Generator<CorpusMail> {
  const random = prng(options.seed ?? 46530192)
  const pick = <A>(list: ReadonlyArray<A>): A => list[Math.floor(random() * list.length)]!
  const int = (below: number) => Math.floor(random() * below)
  const maxAttachment = options.maxAttachmentBytes ?? 1_500_000
  const ids: Array<string> = []
  const base = Date.UTC(2025, 10, 13)
  for (let index = 0; index < n; index++) {
    const who = int(Math.max(1, Math.floor(n / 5)))
    const messageId = `<${index}.${Math.floor(random() * 2 ** 40).toString(16)}@example.org>`
    let subject = pick(subjects).replace("{n}", String(int(10000)))
    const roll = random()
    const parent = ids.length > 0 && roll < 0.15 ? pick(ids) : undefined
    if (parent) subject = `Re: ${subject}`
    const headers: Record<string, string> = {}
    let kind: CorpusKind = "plain"
    if (roll > 0.97) {
      headers["Auto-Submitted"] = "auto-replied"
      subject = `Out of office: ${subject}`
      kind = "auto-reply"
    } else if (roll > 0.95) {
      headers["List-Id"] = "<news.example.net>"
      headers["Precedence"] = "list"
      kind = "list"
    }
    const body = Array.from({ length: 20 + int(380) }, () => pick(words)).join(" ")
    const html = random() < 0.4 ? `<html><body><p>Hello support,</p><p>${body}</p><p>Thanks</p></body></html>` : undefined
    const attachmentSize = random() < 0.1 ? Math.min(maxAttachment, pick([2_000, 50_000, 300_000, 1_500_000])) : 0
    const attachment = Buffer.alloc(attachmentSize)
    for (let i = 0; i < attachmentSize; i += 4) attachment.writeUInt32LE(Math.floor(random() * 2 ** 32), Math.min(i, attachmentSize - 4))
    if (parent) kind = kind === "plain" ? "reply" : kind
    else if (attachmentSize > 0 && kind === "plain") kind = "attachment"
    else if (html && kind === "plain") kind = "html"
    const raw = mail({
      from: `Customer ${who} <customer${who}@example.org>`,
      subject,
      messageId,
      text: `Hello support,\n\n${body}\n\nThanks,\nCustomer ${who}\n`,
      date: new Date(base + index * 37_000),
      headers,
      boundary: `=_corpus_${index}`,
      ...(html ? { html } : {}),
      ...(parent ? { inReplyTo: parent, references: [parent] } : {}),
      ...(attachmentSize > 0
        ? { attachments: [{ filename: `doc${index}.pdf`, contentType: "application/pdf", content: attachment }] }
        : {})
    })
    ids.push(messageId)
    yield { index, raw, messageId, kind, ...(parent ? { threadOf: parent } : {}) }
  }
}
