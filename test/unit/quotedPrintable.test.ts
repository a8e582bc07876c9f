import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import libqp from "libqp"
import { generateSmallCorpus } from "../../bench/smallCorpus.js"
import { decodeQuotedPrintable } from "../../src/mail/QuotedPrintable.js"
import { realWorldMail } from "../support/realWorld.js"

/** What the fast path decoded before: libqp over the body read as a binary string. */
const reference = (body: Buffer) => libqp.decode(body.toString("binary"))

const same = (body: Buffer) => expect(decodeQuotedPrintable(body).equals(reference(body)), JSON.stringify(body.toString("binary"))).toBe(true)

/** A small seeded generator (mulberry32), so that a failure names an input that can be run again. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Every .eml under samples/, real mail. */
const samples = (dir: string): Array<Buffer> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? samples(join(dir, entry.name)) : entry.name.endsWith(".eml") ? [readFileSync(join(dir, entry.name))] : []
  )

describe("decodeQuotedPrintable", () => {
  it("decodes as libqp does: escapes, soft breaks, trailing blanks and broken escapes", () => {
    const cases = [
      "",
      "plain words",
      "Gr=C3=BC=C3=9Fe",
      "lower-case hex =c3=bc",
      "a long line that goes on=\r\n and on",
      "a soft break with LF only=\nnext",
      "trailing blanks   \r\nand tabs\t\t\nand at the end  ",
      "blanks before a soft break  =\r\nnext",
      "a soft break after blanks =  \r\nnext",
      "an equals sign at the end=",
      "a broken =ZZ escape and =4 and =",
      "=41",
      "=4",
      "==41",
      "==\n\n",
      "=\r without LF",
      "=\r\r\n",
      " \n \n\t",
      "x \t \r",
      "middle  blanks stay",
      "=0D=0A encoded line break",
      "=\r \n a soft break with a blank between CR and LF",
      "=\r  ",
      "a\r \nb",
      "8-bit bytes \xe9\xff and NUL \x00"
    ]
    for (const text of cases) same(Buffer.from(text, "binary"))
  })

  it("decodes random bodies of the characters that matter as libqp does", () => {
    const alphabet = ["=", " ", "\t", "\r", "\n", "\r\n", "A", "f", "3", "g", "\xc3", "\x00"]
    for (let seed = 1; seed <= 20_000; seed++) {
      const next = random(seed)
      const length = Math.floor(next() * 40)
      let text = ""
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(next() * alphabet.length)]
      same(Buffer.from(text, "binary"))
    }
  })

  it("decodes every quoted-printable mail of the samples, the real-world corpus and the small bench corpus as libqp does", () => {
    const mails = [
      ...samples(join(import.meta.dirname, "../../samples")),
      ...realWorldMail().map((m) => m.raw),
      ...Array.from(generateSmallCorpus(300, { to: "support@example.com" }), (m) => m.raw)
    ]
    let bodies = 0
    for (const source of mails) {
      const text = source.toString("binary")
      if (!/quoted-printable/i.test(text)) continue
      // The whole mail after its header block: the headers and boundaries are bytes like any other.
      const start = text.indexOf("\r\n\r\n") >= 0 ? text.indexOf("\r\n\r\n") + 4 : text.indexOf("\n\n") + 2
      same(source.subarray(start))
      bodies++
    }
    expect(bodies).toBeGreaterThan(50)
  })
})
