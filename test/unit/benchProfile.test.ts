import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { describe, expect, it } from "vitest"
import type { CpuProfile } from "../../bench/profile.js"
import { sourceMapOrigin, summarize } from "../../bench/profile.js"

const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0, columnNumber: 0 })

/** (root) → answer (src) → pipe (effect) → answer again (recursion); and (root) → (garbage collector). */
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)", ""), children: [2, 5] },
    { id: 2, callFrame: frame("answer", "src/replies/Responder.ts"), children: [3] },
    { id: 3, callFrame: frame("pipe", "node_modules/effect/src/Pipeable.ts"), children: [4] },
    { id: 4, callFrame: frame("answer", "src/replies/Responder.ts") },
    { id: 5, callFrame: frame("(garbage collector)", "") }
  ],
  samples: [3, 3, 4, 2, 5],
  timeDeltas: [1000, 1000, 2000, 500, 4000]
}

/** What the bundle's source maps would say, here the url itself. */
const byUrl = (f: { readonly url: string; readonly functionName: string }) => ({ source: f.url === "" ? f.functionName : f.url, line: 1 })

describe("bench:profile", () => {
  it("counts each sample once where it was, by package or by file", () => {
    const packages = summarize(profile, "package", byUrl)
    expect(packages.wholeMs).toBe(8.5)
    expect(packages.rows).toEqual([
      { key: "(garbage collector)", ms: 4 },
      { key: "src/replies/Responder.ts", ms: 2.5 },
      { key: "effect", ms: 2 }
    ])
    expect(summarize(profile, "file", byUrl).rows.map((row) => row.key)).toContain("node_modules/effect/src/Pipeable.ts")
  })

  it("gives a src function its time with it anywhere on the stack, once per sample however deep it recurses", () => {
    expect(summarize(profile, "inclusive", byUrl).rows).toEqual([{ key: "src/replies/Responder.ts:1 answer", ms: 4.5 }])
  })

  it("maps a bundle's frame to its source through the map beside the chunk", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mailroom-profile-"))
    try {
      await writeFile(join(dir, "chunk.js"), "export const x = 1\n")
      // One segment: the chunk's line 1, column 0 is line 1 of the source.
      await writeFile(join(dir, "chunk.js.map"), JSON.stringify({ version: 3, sources: ["../src/mail/ParseMail.ts"], names: [], mappings: "AAAA" }))
      const origin = sourceMapOrigin()
      expect(origin(frame("parse", pathToFileURL(join(dir, "chunk.js")).href))).toEqual({ source: "src/mail/ParseMail.ts", line: 1 })
      expect(origin(frame("(idle)", ""))).toEqual({ source: "(idle)", line: 0 })
      expect(origin(frame("decode", "node:internal/encoding"))).toEqual({ source: "node:internal/encoding", line: 0 })
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
