import { mkdtempSync, rmSync } from "node:fs"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { build } from "esbuild"
import parser from "imapflow/lib/handler/imap-parser.js"
import { formatMessageResponse } from "imapflow/lib/tools.js"
import type { MailboxObject } from "imapflow"
// @ts-expect-error: a build script, plain JavaScript without types
import { fetchAnswerFormat } from "../../scripts/fetchAnswerFormat.mjs"

type Format = typeof formatMessageResponse

/** An untagged FETCH answer as imapflow's own parser makes it of a line and its literals. */
const answer = (line: string, ...literals: ReadonlyArray<string>) =>
  parser(Buffer.from(line), { literals: literals.map((literal) => Buffer.from(literal)) })

const answers = async () => [
  await answer("* 1 FETCH (UID 5 RFC822.SIZE 5 BODY[] {5}\r\n)", "hello"),
  await answer("* 2 FETCH (UID 6 FLAGS (\\Seen))"),
  await answer("* 3 FETCH (UID 7 BODY[]<0> {3}\r\n)", "abc"),
  await answer("* 4 FETCH (UID 8 BODY[HEADER.FIELDS (SUBJECT)] {14}\r\n)", "Subject: hi\r\n\r\n"),
  await answer("* 5 FETCH (UID 9 EMAILID (M6d99ac3275bb4e) THREADID (T64b478a75b7ea9) FLAGS ())"),
  await answer("* 6 FETCH (uid 10 rfc822.size 12 MODSEQ (42))"),
  await answer("* 7 FETCH (UID 11 X-ODD<5> 3)")
]

const mailbox = (path: string, uidValidity: bigint): MailboxObject => ({ path, delimiter: "/", flags: new Set(), uidNext: 12, exists: 11, uidValidity })
const mailboxes = [mailbox("INBOX", 1700000000n), mailbox("Входящие", 3n)]

/** What a formatted answer holds, the non-enumerable partial origins included. */
const whole = (message: Awaited<ReturnType<Format>>) => ({
  json: JSON.stringify(message, (_, value) => typeof value === "bigint" ? `${value}n` : value),
  fields: { ...message },
  id: message.id,
  partialOrigins: (message as { readonly partialOrigins?: unknown }).partialOrigins
})

describe("fetch-answer-format (scripts/fetchAnswerFormat.mjs), imapflow as npm run build bundles it", () => {
  let dir = ""
  let patched: Format

  beforeAll(async () => {
    dir = mkdtempSync(join("node_modules", ".cache", "fetch-answer-format-"))
    const outfile = join(dir, "tools.mjs")
    await build({
      stdin: { contents: `export { formatMessageResponse } from "imapflow/lib/tools.js"`, resolveDir: process.cwd(), loader: "js" },
      outfile,
      bundle: true,
      format: "esm",
      platform: "node",
      target: "node20",
      plugins: [fetchAnswerFormat],
      logLevel: "silent",
      // As the build's banner: the CommonJS packages inside (iconv-lite) require Node's own modules.
      banner: { js: `import { createRequire } from "node:module"; const require = createRequire(import.meta.url);` }
    })
    patched = (await import(pathToFileURL(outfile).href)).formatMessageResponse
  })

  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("formats every answer as the package does, the second time from the names it kept too", async () => {
    for (const mailbox of mailboxes) {
      for (const round of [1, 2]) {
        for (const untagged of await answers()) {
          const mine = await patched(untagged, mailbox, "md5", undefined)
          const theirs = await formatMessageResponse(untagged, mailbox, "md5", undefined)
          expect(whole(mine), `${mailbox.path} round ${round}: ${whole(theirs).json}`).toEqual(whole(theirs))
        }
      }
    }
  })

  it("works the id out only when it is read, and takes one written over it", async () => {
    const [untagged] = await answers()
    const message = await patched(untagged!, mailboxes[0]!, "sha256", undefined)
    expect(Object.keys(message)).toContain("id")
    const original = await formatMessageResponse(untagged!, mailboxes[0]!, "sha256", undefined)
    expect(message.id).toBe(original.id)
    expect(message.id).toHaveLength(64)
    message.id = "mine"
    expect(message.id).toBe("mine")
  })
})
