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
