import { createReadStream } from "node:fs"
import type { Dirent } from "node:fs"
import { open, readdir, readFile, stat } from "node:fs/promises"
import { basename, join, relative, resolve, sep } from "node:path"
import { Data, Effect, Stream } from "effect"

/** A file or folder `mailroom import` cannot read as mail. */
export class SourceUnreadable extends Data.TaggedError("SourceUnreadable")<{ readonly path: string; readonly detail: string }> {
  override get message() {
    return `cannot import ${this.path}: ${this.detail}; give an mbox file, a Maildir (a folder with cur/ and new/) or a folder of .eml files`
  }
}

export type SourceKind = "mbox" | "maildir" | "eml"

/** Where imported mail came from: one pseudo-mailbox, its mails numbered 1, 2, … in a reproducible order. */
export interface MailSource {
  readonly kind: SourceKind
  /** Absolute. */
  readonly path: string
  /** `import:<path>`: the mailbox its events carry, under UIDVALIDITY 1. */
  readonly mailbox: string
  /** Bytes to read, for progress. */
  readonly bytes: number
  /** Folders: every file in position order (position = index + 1), relative to `path`. Empty for mbox. */
  readonly files: ReadonlyArray<string>
}

/** One mail of a source. Over `maxMessageBytes` only its headers are kept, as an IMAP pass would fetch them. */
export interface SourceMail {
  readonly position: number
  /** The file it was read from, relative to the source folder; the mbox file's own name for mbox. */
  readonly file: string
  /** Its size in CRLF form, the way an IMAP server would report it. */
  readonly size: number
  readonly source: Buffer
  readonly headersOnly: boolean
  /** Bytes of the source read so far, for progress. */
  readonly read: number
}

export const importMailbox = (path: string) => `import:${path}`

/** The path of an `import:` mailbox; undefined for a real one. */
export const importPath = (mailbox: string): string | undefined =>
  mailbox.startsWith("import:") ? mailbox.slice("import:".length) : undefined

const CR = 0x0d
const LF = 0x0a

/**
 * Bare LF becomes CRLF, as an IMAP server serves mail whatever it stores: the same mail imported from
 * a file and fetched over IMAP then has the same bytes, and the same hash.
 */
export const toCrlf = (bytes: Buffer): Buffer => {
  let bare = 0
  for (let i = bytes.indexOf(LF); i >= 0; i = bytes.indexOf(LF, i + 1)) if (i === 0 || bytes[i - 1] !== CR) bare++
  if (bare === 0) return bytes
  const out = Buffer.allocUnsafe(bytes.length + bare)
  let at = 0
  let from = 0
  for (let i = bytes.indexOf(LF); i >= 0; i = bytes.indexOf(LF, i + 1)) {
    if (i > 0 && bytes[i - 1] === CR) continue
    at += bytes.copy(out, at, from, i)
    out[at++] = CR
    out[at++] = LF
    from = i + 1
  }
  bytes.copy(out, at, from)
  return out
}

/** The header block with the blank line that ends it, as `BODY.PEEK[HEADER]` returns it. */
export const headerBlock = (source: Buffer): Buffer => {
  const end = source.indexOf("\r\n\r\n")
  return end < 0 ? source : source.subarray(0, end + 4)
}

const limitTo = (source: Buffer, maxMessageBytes: number) =>
  source.length > maxMessageBytes
    ? { size: source.length, source: headerBlock(source), headersOnly: true }
    : { size: source.length, source, headersOnly: false }

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** A Maildir file's unique name: the flags after ":" change when the mail is read, and new/ moves to cur/. */
const maildirKey = (file: string) => basename(file).split(":")[0]!

const listEml = async (root: string): Promise<Array<string>> => {
  const found: Array<string> = []
  const walk = async (dir: string) => {
    const entries: Array<Dirent> = await readdir(dir, { withFileTypes: true })
    for (const entry of entries) {
      const full = join(dir, entry.name)
      if (entry.isDirectory()) await walk(full)
      else if (entry.isFile() && entry.name.toLowerCase().endsWith(".eml")) found.push(relative(root, full).split(sep).join("/"))
    }
  }
  await walk(root)
  return found.sort(byCodePoint)
}

const listMaildir = async (root: string): Promise<Array<string>> => {
  const files: Array<string> = []
  for (const sub of ["cur", "new"]) {
    const entries = await readdir(join(root, sub), { withFileTypes: true }).catch(() => [] as Array<Dirent>)
    for (const entry of entries) if (entry.isFile() && !entry.name.startsWith(".")) files.push(`${sub}/${entry.name}`)
  }
  return files.sort((a, b) => byCodePoint(maildirKey(a), maildirKey(b)) || byCodePoint(a, b))
}

const isDir = (path: string) => stat(path).then((s) => s.isDirectory(), () => false)

const sizeOf = async (root: string, files: ReadonlyArray<string>) => {
  let total = 0
  for (const file of files) total += (await stat(join(root, file))).size
  return total
}

const startsLikeMbox = async (path: string) => {
  const handle = await open(path, "r")
  try {
    const head = Buffer.alloc(5)
    await handle.read(head, 0, 5, 0)
    return head.toString("latin1") === "From "
  } finally {
    await handle.close()
  }
}

/**
 * What `path` is: an mbox file (its first line a "From " line), a single .eml file (a folder of one),
 * a Maildir (cur/ or new/ inside) or a folder searched recursively for .eml files. Folders are listed
 * in code point order of their relative paths (a Maildir by its files' unique names), so that the
 * same folder always numbers its mail the same way.
 */
export const openSource = (given: string): Effect.Effect<MailSource, SourceUnreadable> =>
  Effect.tryPromise({
    try: async (): Promise<MailSource | string> => {
      const path = resolve(given)
      const info = await stat(path).catch(() => undefined)
      if (info === undefined) return "no such file or folder"
      const mailbox = importMailbox(path)
      if (info.isFile()) {
        if (await startsLikeMbox(path)) return { kind: "mbox", path, mailbox, bytes: info.size, files: [] }
        if (path.toLowerCase().endsWith(".eml")) return { kind: "eml", path, mailbox, bytes: info.size, files: [] }
        return "the file does not start with an mbox \"From \" line and is not an .eml file"
      }
      if (!info.isDirectory()) return "neither a file nor a folder"
      if ((await isDir(join(path, "cur"))) || (await isDir(join(path, "new")))) {
        const files = await listMaildir(path)
        return { kind: "maildir", path, mailbox, bytes: await sizeOf(path, files), files }
      }
      const files = await listEml(path)
      if (files.length === 0) return "the folder holds no .eml file and no Maildir (cur/, new/)"
      return { kind: "eml", path, mailbox, bytes: await sizeOf(path, files), files }
    },
    catch: (cause) => new SourceUnreadable({ path: given, detail: cause instanceof Error ? cause.message : String(cause) })
  }).pipe(
    Effect.flatMap((found) =>
      typeof found === "string" ? Effect.fail(new SourceUnreadable({ path: given, detail: found })) : Effect.succeed(found)
    )
  )

/** The mails of one file each (Maildir, .eml), in position order; a single .eml file is position 1. */
async function* fileMails(source: MailSource, maxMessageBytes: number): AsyncGenerator<SourceMail> {
  const files = source.files.length === 0 ? [{ full: source.path, file: basename(source.path) }] :
    source.files.map((file) => ({ full: join(source.path, file), file }))
  let read = 0
  for (const [index, { file, full }] of files.entries()) {
    const bytes = await readFile(full)
    read += bytes.length
    yield { position: index + 1, file, read, ...limitTo(toCrlf(bytes), maxMessageBytes) }
  }
}

/** `From sender date`: an mboxo body line left unquoted ("From here on, …") has no postmark's date. */
const POSTMARK = /^From \S+ +\w{3} \w{3} +\d{1,2} \d{1,2}:\d{2}(:\d{2})? .*\d{4}\r?\n?$/

/** One message being read from an mbox: its lines in CRLF form, up to the size cap. */
class Collecting {
  readonly parts: Array<Buffer> = []
  size = 0
  inHeaders = true
  kept = 0
  headerBytes = -1
  /** The last line was blank: it belongs to the next separator unless more text follows. */
  pendingBlank = false

  constructor(readonly maxMessageBytes: number) {}

  add(line: Buffer) {
    const blank = line.length === 0
    if (this.pendingBlank) this.push(Buffer.from("\r\n"))
    this.pendingBlank = blank
    if (blank) return
    // mboxrd: ">From ", ">>From ", … lose one ">"; under mboxo only ">From " was quoted, and the same rule reads it.
    const unquoted = line[0] === 0x3e && /^>+From /.test(line.toString("latin1", 0, Math.min(line.length, 64))) ? line.subarray(1) : line
    this.push(Buffer.concat([unquoted, Buffer.from("\r\n")]))
  }

  private push(bytes: Buffer) {
    if (this.inHeaders && bytes.length === 2) {
      this.inHeaders = false
      this.headerBytes = this.size + 2
    }
    this.size += bytes.length
    // Past the cap only the headers are kept: a 2 GB mail in an archive is not held in memory.
    if (this.size <= this.maxMessageBytes || this.inHeaders || this.kept < this.headerBytes) {
      this.parts.push(bytes)
      this.kept += bytes.length
    }
  }

  finish(position: number, file: string, read: number): SourceMail {
    const whole = Buffer.concat(this.parts)
    if (this.size <= this.maxMessageBytes) return { position, file, read, size: this.size, source: whole, headersOnly: false }
    return { position, file, read, size: this.size, source: headerBlock(whole), headersOnly: true }
  }
}

/**
 * An mbox file, streamed: the first "From " line, then every "From " line with a postmark's date,
 * starts the next mail; the blank line before it is the separator's, not the mail's.
 */
async function* mboxMails(source: MailSource, maxMessageBytes: number): AsyncGenerator<SourceMail> {
  const file = basename(source.path)
  let position = 0
  let current: Collecting | undefined
  let read = 0
  let rest: Buffer = Buffer.alloc(0)
  const line = function*(raw: Buffer): Generator<SourceMail> {
    const text = raw.length > 0 && raw[raw.length - 1] === CR ? raw.subarray(0, raw.length - 1) : raw
    const isFrom = text.length >= 5 && text.toString("latin1", 0, 5) === "From " &&
      (current === undefined || POSTMARK.test(text.toString("latin1", 0, Math.min(text.length, 200))))
    if (isFrom) {
      if (current !== undefined) yield current.finish(position, file, read)
      position += 1
      current = new Collecting(maxMessageBytes)
      return
    }
    // Text before the first "From " line belongs to no mail.
    current?.add(text)
  }
  for await (const chunk of createReadStream(source.path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    read += chunk.length
    const data = rest.length === 0 ? chunk : Buffer.concat([rest, chunk])
    let from = 0
    for (let i = data.indexOf(LF); i >= 0; i = data.indexOf(LF, from)) {
      yield* line(data.subarray(from, i))
      from = i + 1
    }
    // Copied: a slice would keep the whole megabyte chunk alive for one partial line.
    rest = Buffer.from(data.subarray(from))
  }
  if (rest.length > 0) yield* line(rest)
  if (current !== undefined) yield current.finish(position, file, read)
}

/** Every mail of the source in position order, one at a time: an mbox is streamed, never read whole. */
export const readMails = (source: MailSource, options: { readonly maxMessageBytes: number }): Stream.Stream<SourceMail, SourceUnreadable> =>
  Stream.fromAsyncIterable(
    source.kind === "mbox" ? mboxMails(source, options.maxMessageBytes) : fileMails(source, options.maxMessageBytes),
    (cause) => new SourceUnreadable({ path: source.path, detail: cause instanceof Error ? cause.message : String(cause) })
  )

/** The mail at `position`, read again in full (for `reprocess` of an imported mail whose headers alone were kept). */
export const mailAt = (source: MailSource, position: number): Effect.Effect<SourceMail | undefined, SourceUnreadable> => {
  const whole = { maxMessageBytes: Number.MAX_SAFE_INTEGER }
  if (source.kind === "mbox") {
    return readMails(source, whole).pipe(
      Stream.filter((mail) => mail.position === position),
      Stream.take(1),
      Stream.runHead,
      Effect.map((found) => found._tag === "Some" ? found.value : undefined)
    )
  }
  const file = source.files.length === 0 ? (position === 1 ? "" : undefined) : source.files[position - 1]
  if (file === undefined) return Effect.succeed(undefined)
  return Effect.tryPromise({
    try: async () => toCrlf(await readFile(join(source.path, file))),
    catch: (cause) => new SourceUnreadable({ path: source.path, detail: cause instanceof Error ? cause.message : String(cause) })
  }).pipe(Effect.map((bytes) => ({ position, file: file || basename(source.path), read: bytes.length, ...limitTo(bytes, Number.MAX_SAFE_INTEGER) })))
}
