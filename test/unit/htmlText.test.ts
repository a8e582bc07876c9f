import { readdirSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { describe, expect, it } from "@effect/vitest"
import { simpleParser } from "mailparser"
import { generateSmallCorpus } from "../../bench/smallCorpus.js"
import { visibleHtml } from "../../src/mail/HiddenHtml.js"
import { convertsDirectly, htmlAsText } from "../../src/mail/HtmlText.js"
import { readWhole } from "../../src/mail/ReadMail.js"
import { hostileMails } from "../support/mails.js"
import { realWorldMail } from "../support/realWorld.js"

/** The oracle: what mailparser gives for a mail that is this HTML alone, as mailroom read it before. */
const mailparsers = (html: string) =>
  readWhole(Buffer.concat([Buffer.from("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"), Buffer.from(html, "utf8")]))
    .then((alone) => alone.text || "", () => "")

const fixtures = new URL("../fixtures/html/", import.meta.url)

/** Every HTML part of the real-world mail, the fixtures, the hostile mail and the bench's small mail, and what a reader sees of each. */
const samples = async (): Promise<ReadonlyArray<string>> => {
  const raws = [
    ...realWorldMail().map((m) => m.raw),
    ...hostileMails().map((m) => Buffer.from(m.raw)),
    ...Array.from(generateSmallCorpus(200, { to: "support@example.com" }), (m) => Buffer.from(m.raw))
  ]
  const parsed = await Promise.all(raws.map((raw) => simpleParser(raw).then((m) => m.html, () => false as const)))
  const htmls = [
    ...parsed.filter((html): html is string => typeof html === "string" && html !== ""),
    ...readdirSync(fixtures).filter((f) => f.endsWith(".html")).map((f) => readFileSync(new URL(f, fixtures), "utf8"))
  ]
  return [...htmls, ...htmls.flatMap((html) => {
    const visible = visibleHtml(html)
    return visible === undefined || visible === html ? [] : [visible]
  })]
}

describe("htmlAsText", () => {
  it("converts with the html-to-text that mailparser itself loads, at the version it pins", () => {
    const ours = createRequire(import.meta.url)
    const mailparsers = createRequire(ours.resolve("mailparser"))
    expect(ours.resolve("html-to-text")).toBe(mailparsers.resolve("html-to-text"))
    const pinned = JSON.parse(readFileSync(new URL("../../node_modules/mailparser/package.json", import.meta.url), "utf8")).dependencies["html-to-text"]
    const declared = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).dependencies["html-to-text"]
    expect(declared).toBe(pinned)
  })

  it("gives what mailparser gives for the same HTML as a mail of its own, on real-world, hostile and generated HTML", async () => {
    const all = await samples()
    const direct = all.filter(convertsDirectly)
    // The comparison is about the direct conversion: nearly every sample must take it.
    expect(all.length).toBeGreaterThan(100)
    expect(direct.length, `${direct.length} of ${all.length}`).toBeGreaterThan(all.length * 0.9)
    for (const html of all) expect(await htmlAsText(html), html.slice(0, 200)).toBe(await mailparsers(html))
  })

  it("keeps mailparser's bounds: deeper than 1,000 elements or longer than its limit converts to nothing, as mailparser does", async () => {
    const edges = [
      `${"<div>".repeat(999)}deep enough${"</div>".repeat(999)}`,
      `${"<div>".repeat(1001)}too deep${"</div>".repeat(1001)}`,
      `<p>${"<b>x</b>".repeat(1000)}</p>`,
      `<p>${"x".repeat(2_000_001)}</p>`,
      "<p>lone \uD800 surrogate</p>",
      "<p>caf\u00e9 &amp; &nbsp; &#x1F600; <a href=\"https://example.com/a?b=1&amp;c=2\">link</a></p>\r\n<pre>  kept\r\n  as is</pre>",
      "<p>caf\u00e9 &amp; &nbsp; &#x1F600; <a href=\"https://example.com/a?b=1&amp;c=2\">link</a></p>\n<pre>  kept\n  as is</pre>",
      "",
      "   ",
      "<table><tr><td>a</td><td>b</td></tr></table><ul><li>one</li><li>two</li></ul><img alt=\"pic\" src=\"cid:x\">",
      "<script>alert(1)</script><style>p{}</style><!-- note --><p>after</p>"
    ]
    expect(edges.map(convertsDirectly)).toEqual([true, false, false, false, false, false, true, true, true, true, true])
    for (const html of edges) expect(await htmlAsText(html), html.slice(0, 60)).toBe(await mailparsers(html))
    expect(await htmlAsText(edges[1]!)).toBe("")
    expect(await htmlAsText(edges[6]!)).toContain("  kept\n  as is")
    expect(await htmlAsText(edges[0]!)).toContain("deep enough")
  })
})
