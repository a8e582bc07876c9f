/**
 * npm run -s bench:profile -- FILE.cpuprofile [--by package|file|function|inclusive] [--top N]
 *
 * A V8 CPU profile of `node dist/main.js` (`node --cpu-prof dist/main.js --once`, or every mailroom
 * process of a bench run with BENCH_CPU_PROF=DIR) read back through dist's source maps, so that
 * the bundle's chunks become the packages and `src/` files they were built from:
 * - `--by package` (the default), `file` or `function`: where the samples were, each counted once,
 *   by the frame at the top of the stack (self time);
 * - `--by inclusive`: for each function of `src/`, the time with it anywhere on the stack. Effect's
 *   fibers run under the scheduler's frames, so an Effect program's own time is not inside the
 *   function that built it: read it with the self time.
 * Node's own frames keep their `node:` names; V8's (GC, idle, program) their parenthesised ones.
 */
import { existsSync, readFileSync } from "node:fs"
import { SourceMap } from "node:module"
import { fileURLToPath } from "node:url"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
  readonly columnNumber: number
}

interface ProfileNode {
  readonly id: number
  readonly callFrame: CallFrame
  readonly children?: ReadonlyArray<number>
}

export interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** Where a frame's code came from: its source file (`src/…`, `node_modules/<package>/…`, `node:…`) and line. */
export interface Origin {
  readonly source: string
  readonly line: number
}

export type By = "package" | "file" | "function" | "inclusive"

/** A frame of the bundle mapped to its source through the chunk's `.map` beside it; other frames as V8 names them. */
export const sourceMapOrigin = () => {
  const maps = new Map<string, SourceMap | null>()
  const mapOf = (url: string) => {
    if (!maps.has(url)) {
      const path = `${fileURLToPath(url)}.map`
      maps.set(url, existsSync(path) ? new SourceMap(JSON.parse(readFileSync(path, "utf8"))) : null)
    }
    return maps.get(url)!
  }
  return (frame: CallFrame): Origin => {
    if (!frame.url.startsWith("file://")) {
      // V8's own entries are named in parentheses already: "(garbage collector)", "(idle)".
      const name = frame.functionName.startsWith("(") ? frame.functionName : `(${frame.functionName || "anonymous"})`
      return { source: frame.url === "" ? name : frame.url, line: 0 }
    }
    const entry = mapOf(frame.url)?.findEntry(frame.lineNumber, frame.columnNumber)
    if (entry === undefined || !("originalSource" in entry)) return { source: frame.url, line: frame.lineNumber + 1 }
    return { source: entry.originalSource.replace(/^(\.\.\/)+/, "").replace(/^.*?node_modules\//, "node_modules/"), line: entry.originalLine + 1 }
  }
}

const packageOf = (source: string) => source.match(/^node_modules\/((?:@[^/]+\/)?[^/]+)/)?.[1] ?? source

/** Milliseconds per key, most first, and the profile's whole time. */
export const summarize = (profile: CpuProfile, by: By, origin: (frame: CallFrame) => Origin) => {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const keyOf = new Map<number, string | undefined>()
  const key = (id: number) => {
    if (!keyOf.has(id)) {
      const frame = nodes.get(id)!.callFrame
      const { line, source } = origin(frame)
      keyOf.set(
        id,
        by === "package"
          ? packageOf(source)
          : by === "file"
          ? source
          : by === "function"
          ? `${source}:${line} ${frame.functionName}`
          : source.startsWith("src/") ? `${source}:${line} ${frame.functionName}` : undefined
      )
    }
    return keyOf.get(id)
  }
  const totals = new Map<string, number>()
  let whole = 0
  profile.samples.forEach((sample, i) => {
    const micros = profile.timeDeltas[i] ?? 0
    whole += micros
    if (by !== "inclusive") {
      const k = key(sample)!
      totals.set(k, (totals.get(k) ?? 0) + micros)
      return
    }
    // Each function once per sample, however deep it recurses.
    const seen = new Set<string>()
    for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) {
      const k = key(id)
      if (k !== undefined && !seen.has(k)) {
        seen.add(k)
        totals.set(k, (totals.get(k) ?? 0) + micros)
      }
    }
  })
  return {
    wholeMs: whole / 1000,
    rows: [...totals].map(([k, micros]) => ({ key: k, ms: micros / 1000 })).sort((a, b) => b.ms - a.ms)
  }
}

const main = () => {
  const args = process.argv.slice(2)
  const option = (name: string) => {
    const at = args.indexOf(`--${name}`)
    return at < 0 ? undefined : args[at + 1]
  }
  const file = args.find((arg, i) => !arg.startsWith("--") && !args[i - 1]?.startsWith("--"))
  const by = (option("by") ?? "package") as By
  const top = Number(option("top") ?? 30)
  if (file === undefined || !["package", "file", "function", "inclusive"].includes(by) || !(top > 0)) {
    console.error("usage: npm run -s bench:profile -- FILE.cpuprofile [--by package|file|function|inclusive] [--top N]")
    process.exit(2)
  }
  const { rows, wholeMs } = summarize(JSON.parse(readFileSync(file, "utf8")) as CpuProfile, by, sourceMapOrigin())
  console.log(`${wholeMs.toFixed(0)} ms sampled`)
  for (const row of rows.slice(0, top)) {
    // A RegExp's entry is named by its whole pattern.
    const key = row.key.length > 160 ? `${row.key.slice(0, 159)}…` : row.key
    console.log(`${row.ms.toFixed(1).padStart(9)} ms ${(100 * row.ms / wholeMs).toFixed(1).padStart(5)}%  ${key}`)
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main()
