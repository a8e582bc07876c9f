import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"

const dist = new URL("../../dist/", import.meta.url).pathname

describe("the built bundle (npm run build)", () => {
  it("holds no CommonJS package behind an import(): the bundle would hand it over without its named exports", () => {
    const chunks = readdirSync(dist).filter((name) => name.endsWith(".js"))
    expect(chunks).toContain("main.js")
    expect(chunks).toContain("parserWorker.js")
    // esbuild makes such a chunk `export default require_x()`: `const { authenticate } = await
    // import("mailauth")` then reads undefined, and every DKIM check fails.
    const wrapped = chunks.filter((name) => /^export default require_\w+\(\);?$/m.test(readFileSync(join(dist, name), "utf8")))
    expect(wrapped).toEqual([])
  })

  it("leaves the packages loaded on first use to Node, so that a start reads none of them", () => {
    const code = readdirSync(dist).filter((name) => name.endsWith(".js")).map((name) => readFileSync(join(dist, name), "utf8")).join("\n")
    // esbuild marks each module it bundles with a comment naming its path.
    expect(code).toMatch(/\/\/ node_modules\/imapflow\//)
    for (const name of ["mailauth", "kafkajs", "yaml", "@electric-sql/pglite"]) {
      expect(code, name).not.toContain(`// node_modules/${name}/`)
    }
  })

  it("holds each package once, and what a start seldom or never needs outside what a start loads", () => {
    const read = (name: string) => readFileSync(join(dist, name), "utf8")
    const code = readdirSync(dist).filter((name) => name.endsWith(".js")).map(read).join("\n")
    // One libmime (its ES module) and one iconv-lite, not a copy each for imapflow, libmime and mailsplit.
    expect(code).toMatch(/\/\/ node_modules\/libmime\/dist\/esm\/libmime\.js/)
    expect(code).not.toMatch(/\/\/ node_modules\/libmime\/dist\/cjs\//)
    expect(code.match(/\/\/ node_modules\/[\w/-]*iconv-lite\/lib\/index\.js/g)).toHaveLength(1)
    for (const name of ["socks", "pino", "encoding-japanese"]) expect(code, name).not.toContain(`// node_modules/${name}/`)
    // What main.js imports, and what those import, at start: nodemailer is not among it.
    const atStart = new Set<string>()
    const next = ["main.js"]
    while (next.length > 0) {
      const name = next.pop()!
      if (atStart.has(name)) continue
      atStart.add(name)
      for (const m of read(name).matchAll(/^import\s[^;]*?from\s*"\.\/([^"]+)"|^import\s*"\.\/([^"]+)"/gm)) next.push(m[1] ?? m[2]!)
    }
    expect(atStart.size).toBeGreaterThan(3)
    const loaded = [...atStart].map(read).join("\n")
    expect(loaded).toMatch(/\/\/ node_modules\/imapflow\//)
    expect(loaded).not.toContain("// node_modules/nodemailer/")
    expect(code).toContain("// node_modules/nodemailer/")
  })

  it("sizes pg-protocol's Bind once from its values before writing them", () => {
    const main = readFileSync(join(dist, "main.js"), "utf8")
    const start = main.indexOf("// node_modules/pg-protocol/dist/serializer.js")
    expect(start).toBeGreaterThan(0)
    const serializer = main.slice(start, main.indexOf("\n// ", start + 10))
    const original = readFileSync(new URL("../../node_modules/pg-protocol/dist/serializer.js", import.meta.url), "utf8")
    // The one call added before the values are written; the values are still written by writeValues.
    expect(serializer.match(/writer\.ensure\(bytes \+ 4\)/g)).toHaveLength(1)
    expect(serializer).toContain("writeValues(values, config.valueMapper, formatsOffset)")
    expect(original).not.toContain("writer.ensure(bytes")
  })
})
