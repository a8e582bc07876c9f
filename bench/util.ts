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
