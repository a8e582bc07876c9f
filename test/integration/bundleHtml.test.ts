import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { simpleParser } from "mailparser"
import { parseWithHash } from "../../src/mail/ParseMail.js"
import { runCli } from "../support/cli.js"
import { hostileMails } from "../support/mails.js"
import { createDatabase, query } from "../support/postgres.js"
import { realWorldMail } from "../support/realWorld.js"

const dist = new URL("../../dist/", import.meta.url).pathname

/**
 * Every HTML part of the real-world and hostile mail, and the fixtures: each as a mail that is that
 * HTML alone, and as an HTML part beside a text part, whose text is mailparser's own conversion.
 */
const htmlOnlyMails = async (): Promise<ReadonlyArray<{ readonly messageId: string; readonly raw: Buffer }>> => {
  const parsed = await Promise.all([...realWorldMail().map((m) => m.raw), ...hostileMails().map((m) => Buffer.from(m.raw))]
    .map((raw) => simpleParser(raw).then((m) => m.html, () => false as const)))
  const fixtures = new URL("../fixtures/html/", import.meta.url)
  const htmls = [
    ...parsed.filter((html): html is string => typeof html === "string" && html.trim() !== ""),
    ...readdirSync(fixtures).filter((f) => f.endsWith(".html")).map((f) => readFileSync(new URL(f, fixtures), "utf8"))
  ]
  const head = (messageId: string, i: number) =>
    `From: Ada <ada@customer.test>\r\nTo: support@example.com\r\nSubject: HTML ${i}\r\nMessage-ID: ${messageId}\r\n` +
    `Date: Sun, 6 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n`
  return htmls.flatMap((html, i) => {
    const body = html.replace(/\r?\n/g, "\r\n")
    const alone = `<html-only-${i}@customer.test>`
    const beside = `<html-beside-${i}@customer.test>`
    return [
      { messageId: alone, raw: Buffer.from(`${head(alone, i)}Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${body}`) },
      {
        messageId: beside,
        raw: Buffer.from(
          `${head(beside, i)}Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee below.\r\n` +
            `--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n${body}\r\n--b--\r\n`
        )
      }
    ]
  })
}

describe("the built bundle's HTML to text (compiled-convert in scripts/bundle.mjs)", () => {
  it("reuses one compilation for mailparser's options, and nowhere else", () => {
    const code = readdirSync(dist).filter((name) => name.endsWith(".js")).map((name) => readFileSync(join(dist, name), "utf8")).join("\n")
    expect(code.match(/compiledByDepth = \/\* @__PURE__ \*\/ new Map\(\);/g)).toHaveLength(1)
    // html-to-text's own convert, which compiles on every call, is not in the bundle.
    expect(code).not.toMatch(/function convert\w*\(html, options\w* = \{\}, metadata = void 0\) \{\n\s*return compile\w*\(options\w*\)\(html, metadata\);/)
  })

  it("records the same text as the sources give (unpatched mailparser), for every real-world, hostile and fixture HTML alone and beside a text part", async () => {
    const mails = await htmlOnlyMails()
    expect(mails.length).toBeGreaterThan(60)
    const dir = await mkdtemp(join(tmpdir(), "mailroom-html-only-"))
    const db = await createDatabase("bundle_html")
    try {
      await Promise.all(mails.map((m, i) => writeFile(join(dir, `${String(i).padStart(4, "0")}.eml`), m.raw)))
      const imported = await runCli(["import", dir], {
        GMAIL_SENDER_EMAIL: "support@example.com",
        GMAIL_SENDER_PASSWORD: "unused",
        DATABASE_URL: db.url,
        AGENT: "off"
      })
      expect(imported.code, imported.stderr).toBe(0)
      const stored = new Map((await query<{ message_id: string; text: string }>(db.url, "SELECT message_id, text FROM messages"))
        .map((row) => [row.message_id, row.text]))
      let compared = 0
      for (const m of mails) {
        const { parsed } = await parseWithHash({ uid: 0, size: m.raw.length, source: m.raw, headersOnly: false })
        if (parsed._tag !== "Accepted") continue
        expect(stored.get(m.messageId), m.messageId).toBe(parsed.email.text)
        compared++
      }
      expect(compared).toBeGreaterThan(60)
    } finally {
      await db.drop()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
