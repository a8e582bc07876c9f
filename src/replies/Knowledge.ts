import { readdir, readFile } from "node:fs/promises"
import { join, relative, resolve } from "node:path"
import { Context, Effect, Layer } from "effect"
import { knowledgeDir } from "../config/Replies.js"

/** A section of a Markdown file: the text under one heading, cut into paragraphs of a readable size. */
export interface Passage {
  readonly source: string
  readonly heading: string
  readonly text: string
}

export interface Ranked extends Passage {
  readonly score: number
  /** Distinct query terms the passage contains. */
  readonly matched: number
}

const stopwords = new Set(
  ("a an and are as at be but by can do does for from has have hello hi how i if in is it its me my no not of on or our " +
    "please so that the their them there this to us was we what when where which who why will with you your")
    .split(" ")
)

/** Just enough English stemming that "refunds", "refunded" and "refund" meet. */
const stem = (term: string): string => {
  if (term.length <= 3) return term
  if (term.endsWith("ies")) return `${term.slice(0, -3)}y`
  if (term.endsWith("ss")) return term
  if (term.endsWith("s")) return term.slice(0, -1)
  if (term.length > 5 && term.endsWith("ing")) return term.slice(0, -3)
  if (term.length > 4 && term.endsWith("ed")) return term.slice(0, -2)
  return term
}

export const tokenize = (text: string): Array<string> =>
  text.toLowerCase().normalize("NFKD").replace(/\p{M}/gu, "").split(/[^\p{L}\p{N}]+/u)
    .filter((term) => term.length > 1 && !stopwords.has(term))
    .map(stem)

const PASSAGE_CHARS = 900

/** Splits a Markdown file at its headings, then packs each section's paragraphs into passages. */
export const splitMarkdown = (source: string, markdown: string): Array<Passage> => {
  const passages: Array<Passage> = []
  let heading = source.replace(/\.md$/i, "")
  let paragraphs: Array<string> = []
  const flush = () => {
    let current = ""
    for (const paragraph of paragraphs) {
      if (current !== "" && current.length + paragraph.length > PASSAGE_CHARS) {
        passages.push({ source, heading, text: current })
        current = ""
      }
      current = current === "" ? paragraph : `${current}\n\n${paragraph}`
    }
    if (current !== "") passages.push({ source, heading, text: current })
    paragraphs = []
  }
  for (const block of markdown.replace(/\r\n/g, "\n").split(/\n\s*\n/)) {
    const lines = block.trim().split("\n")
    const title = lines[0]?.match(/^#{1,6}\s+(.*)$/)
    if (title) {
      flush()
      heading = title[1]!.trim()
      lines.shift()
    }
    // Hard-wrapped prose is joined into one line; lists, quotes and tables keep their lines.
    const rest = lines.reduce((text, line) =>
      text === "" ? line.trim() : /^\s*([-*+>|]|\d+[.)])\s/.test(line) ? `${text}\n${line.trim()}` : `${text} ${line.trim()}`, "")
    if (rest !== "") paragraphs.push(rest)
  }
  flush()
  return passages
}

export interface Index {
  readonly passages: ReadonlyArray<Passage>
  readonly terms: ReadonlyArray<ReadonlyMap<string, number>>
  readonly lengths: ReadonlyArray<number>
  readonly documentFrequency: ReadonlyMap<string, number>
  readonly averageLength: number
}

export const buildIndex = (passages: ReadonlyArray<Passage>): Index => {
  const terms = passages.map((p) => {
    const counts = new Map<string, number>()
    for (const term of tokenize(`${p.heading} ${p.text}`)) counts.set(term, (counts.get(term) ?? 0) + 1)
    return counts
  })
  const lengths = terms.map((counts) => [...counts.values()].reduce((a, b) => a + b, 0))
  const documentFrequency = new Map<string, number>()
  for (const counts of terms) for (const term of counts.keys()) documentFrequency.set(term, (documentFrequency.get(term) ?? 0) + 1)
  const averageLength = lengths.length === 0 ? 0 : lengths.reduce((a, b) => a + b, 0) / lengths.length
  return { passages, terms, lengths, documentFrequency, averageLength }
}

const K1 = 1.2
const B = 0.75

/** Okapi BM25, best first; only passages that share a term with the query. */
export const rank = (index: Index, query: string, limit: number): Array<Ranked> => {
  const queryTerms = [...new Set(tokenize(query))]
  const n = index.passages.length
  return index.passages.map((passage, i) => {
    let score = 0
    let matched = 0
    for (const term of queryTerms) {
      const tf = index.terms[i]!.get(term) ?? 0
      if (tf === 0) continue
      matched += 1
      const df = index.documentFrequency.get(term) ?? 0
      const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5))
      score += idf * (tf * (K1 + 1)) / (tf + K1 * (1 - B + B * index.lengths[i]! / (index.averageLength || 1)))
    }
    return { ...passage, score, matched }
  }).filter((r) => r.matched > 0).sort((a, b) => b.score - a.score).slice(0, limit)
}

export interface KnowledgeShape {
  readonly passages: number
  readonly search: (query: string, limit: number) => Effect.Effect<ReadonlyArray<Ranked>>
}

const fromPassages = (passages: ReadonlyArray<Passage>): KnowledgeShape => {
  const index = buildIndex(passages)
  return { passages: passages.length, search: (query, limit) => Effect.sync(() => rank(index, query, limit)) }
}

const markdownFiles = async (root: string): Promise<Array<string>> => {
  const entries = await readdir(root, { withFileTypes: true, recursive: true })
  return entries
    .filter((e) => e.isFile() && /\.(md|markdown)$/i.test(e.name) && !/^readme\./i.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort()
}

const load = (dir: string) =>
  Effect.tryPromise(async () => {
    const root = resolve(dir)
    const files = await markdownFiles(root)
    const texts = await Promise.all(files.map((file) => readFile(file, "utf8")))
    return files.flatMap((file, i) => splitMarkdown(relative(root, file), texts[i]!))
  })

/** Markdown help pages, ranked with BM25: the knowledge agent answers from them, the LLM agent is given them. */
export class Knowledge extends Context.Tag("mailroom/Knowledge")<Knowledge, KnowledgeShape>() {
  static readonly Live = Layer.effect(
    Knowledge,
    Effect.gen(function*() {
      const dir = yield* knowledgeDir
      const passages = yield* load(dir).pipe(
        Effect.tapError((cause) =>
          Effect.logWarning(`No knowledge folder at ${dir} (${String(cause.error)}): replies acknowledge the mail without help passages; set KNOWLEDGE_DIR`)
        ),
        Effect.orElseSucceed(() => [] as Array<Passage>)
      )
      yield* Effect.logDebug(`Knowledge: ${passages.length} passage(s) from ${dir}`)
      return fromPassages(passages)
    })
  )

  /** For tests: Markdown by file name. */
  static readonly Test = (files: Record<string, string>): Layer.Layer<Knowledge> =>
    Layer.succeed(Knowledge, fromPassages(Object.entries(files).flatMap(([name, text]) => splitMarkdown(name, text))))
}
