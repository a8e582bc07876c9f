import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { mailAt, openSource, readMails, toCrlf } from "../../src/mail/Sources.js"

const temp = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "mailroom-sources-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const all = (path: string, maxMessageBytes = 1_000_000) =>
  Effect.flatMap(openSource(path), (source) =>
    Stream.runCollect(readMails(source, { maxMessageBytes })).pipe(Effect.map((mails) => ({ source, mails: Chunk.toArray(mails) }))))

const text = (buffer: Buffer) => buffer.toString("utf8")

describe("mail sources", () => {
  it("turns bare LF into CRLF and leaves CRLF alone", () => {
    expect(text(toCrlf(Buffer.from("a\nb\r\nc\n")))).toBe("a\r\nb\r\nc\r\n")
    const crlf = Buffer.from("x\r\ny\r\n")
    expect(toCrlf(crlf)).toBe(crlf)
  })

  it.scoped("splits an mbox on From lines, unquotes >From as mboxrd does and drops the separator's blank line", () =>
    Effect.gen(function*() {
      const dir = yield* temp
      const path = join(dir, "archive.mbox")
      yield* Effect.promise(() =>
        writeFile(
          path,
          "From ada@customer.test Tue Nov 24 10:00:00 2026\nSubject: one\n\nFirst line\n>From the start\n>>From quoted twice\n\n" +
            "From bob@customer.test Tue Nov 24 11:00:00 2026\nSubject: two\n\nSecond\n\n\n" +
            "From carl@customer.test Tue Nov 24 12:00:00 2026\nSubject: three\n\nFrom here on, a body line that looks like a separator but follows text\nend\n"
        )
      )
      const { source, mails } = yield* all(path)
      expect(source.kind).toBe("mbox")
      expect(source.mailbox).toBe(`import:${path}`)
      expect(mails.map((m) => m.position)).toEqual([1, 2, 3])
      expect(text(mails[0]!.source)).toBe("Subject: one\r\n\r\nFirst line\r\nFrom the start\r\n>From quoted twice\r\n")
      // Two blank lines before the separator: one is the mail's own.
      expect(text(mails[1]!.source)).toBe("Subject: two\r\n\r\nSecond\r\n\r\n")
      expect(text(mails[2]!.source)).toContain("\r\nFrom here on, a body line")
      expect(mails.every((m) => m.size === m.source.length && !m.headersOnly && m.file === "archive.mbox")).toBe(true)
    }))

  it.scoped("keeps only the headers of an mbox mail over the size cap, with its whole size", () =>
    Effect.gen(function*() {
      const dir = yield* temp
      const path = join(dir, "big.mbox")
      const body = "x".repeat(70) + "\n"
      yield* Effect.promise(() => writeFile(path, `From a@b.test Tue Nov 24 10:00:00 2026\nSubject: big\nFrom: a@b.test\n\n${body.repeat(100)}`))
      const { mails } = yield* all(path, 1000)
      expect(mails[0]!.headersOnly).toBe(true)
      expect(text(mails[0]!.source)).toBe("Subject: big\r\nFrom: a@b.test\r\n\r\n")
      expect(mails[0]!.size).toBe("Subject: big\r\nFrom: a@b.test\r\n\r\n".length + 72 * 100)
      const again = yield* mailAt(yield* openSource(path), 1)
      expect(again!.headersOnly).toBe(false)
      expect(again!.size).toBe(mails[0]!.size)
    }))

  it.scoped("numbers a Maildir by unique name across new/ and cur/, whatever flags the names carry", () =>
    Effect.gen(function*() {
      const dir = yield* temp
      yield* Effect.promise(async () => {
        for (const sub of ["cur", "new", "tmp"]) await mkdir(join(dir, sub))
        await writeFile(join(dir, "cur", "1700000002.M2.host:2,S"), "Subject: second\n\nb\n")
        await writeFile(join(dir, "new", "1700000001.M1.host"), "Subject: first\n\na\n")
        await writeFile(join(dir, "new", "1700000003.M3.host"), "Subject: third\n\nc\n")
        await writeFile(join(dir, "tmp", "1700000000.M0.host"), "Subject: being delivered\n\nz\n")
      })
      const { source, mails } = yield* all(dir)
      expect(source.kind).toBe("maildir")
      expect(mails.map((m) => m.file)).toEqual(["new/1700000001.M1.host", "cur/1700000002.M2.host:2,S", "new/1700000003.M3.host"])
      expect(mails.map((m) => m.position)).toEqual([1, 2, 3])
    }))

  it.scoped("finds .eml files recursively in code point order and refuses a folder without mail", () =>
    Effect.gen(function*() {
      const dir = yield* temp
      yield* Effect.promise(async () => {
        await mkdir(join(dir, "b"))
        await writeFile(join(dir, "b", "1.eml"), "Subject: b1\n\nx\n")
        await writeFile(join(dir, "a.EML"), "Subject: a\n\nx\n")
        await writeFile(join(dir, "B.eml"), "Subject: B\n\nx\n")
        await writeFile(join(dir, "notes.txt"), "not mail")
        await mkdir(join(dir, "empty"))
      })
      const { mails } = yield* all(dir)
      expect(mails.map((m) => m.file)).toEqual(["B.eml", "a.EML", "b/1.eml"])
      const refused = yield* Effect.flip(openSource(join(dir, "empty")))
      expect(refused._tag).toBe("SourceUnreadable")
      expect(refused.message).toContain("no .eml file")
    }))
})
