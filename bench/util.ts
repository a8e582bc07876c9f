import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0
}

export const freshDir = async () => {
  const path = await mkdtemp(join(tmpdir(), "mailroom-bench-"))
  return { path, remove: () => rm(path, { recursive: true, force: true }) }
}

/** The memory settings the Docker image runs mailroom with, read from the Dockerfile's ENV lines. */
export const imageMemorySettings = (dockerfile: string): Record<string, string> => {
  const settings: Record<string, string> = {}
  for (const [, assignments] of dockerfile.matchAll(/^ENV (.+)$/gm)) {
    for (const [, name, value] of assignments!.matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
      if (name === "MALLOC_MMAP_THRESHOLD_" || name === "NODE_OPTIONS") settings[name] = value!.replace(/^"|"$/g, "")
    }
  }
  return settings
}

export const median = (values: ReadonlyArray<number>): number | undefined => {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

export interface RoundRatios {
  readonly vsFetchOnly?: number
  readonly vsWholeLoop?: number
  readonly peakRssMb?: number
}

export interface RoundsSummary extends RoundRatios {
  readonly rounds: number
  /** Lowest and highest of the rounds' own ratios. */
  readonly vsFetchOnlyRange?: readonly [number, number]
  readonly vsWholeLoopRange?: readonly [number, number]
}

/**
 * A row's rounds as the targets read them. Each round's ratio sets mailroom against the loops run
 * just before it, so a slow spell of the machine moves both sides of one ratio; the median of those
 * ratios, not a ratio of medians. The peak RSS is the highest any round reached.
 */
export const summarizeRounds = (rows: ReadonlyArray<RoundRatios>): RoundsSummary | undefined => {
  if (rows.length === 0) return undefined
  const ratios = (pick: (row: RoundRatios) => number | undefined) => rows.map(pick).filter((n): n is number => n !== undefined)
  const fetchOnly = ratios((row) => row.vsFetchOnly)
  const wholeLoop = ratios((row) => row.vsWholeLoop)
  const rss = ratios((row) => row.peakRssMb)
  const two = (n: number) => Number(n.toFixed(2))
  return {
    rounds: rows.length,
    ...(fetchOnly.length > 0 ? { vsFetchOnly: two(median(fetchOnly)!), vsFetchOnlyRange: [Math.min(...fetchOnly), Math.max(...fetchOnly)] as const } : {}),
    ...(wholeLoop.length > 0 ? { vsWholeLoop: two(median(wholeLoop)!), vsWholeLoopRange: [Math.min(...wholeLoop), Math.max(...wholeLoop)] as const } : {}),
    ...(rss.length > 0 ? { peakRssMb: Math.max(...rss) } : {})
  }
}
