import { parentPort } from "node:worker_threads"
import type { RawMail } from "./Email.js"
import type { WorkerReply } from "./Parser.js"
import type { ParseResult } from "./ParseMail.js"
import { parseSimple, parseWithHash, unparseable } from "./ParseMail.js"

type Posted = Omit<RawMail, "source"> & { readonly source: Uint8Array }

/** One mail, or a batch in one message (the pool's parseMany), answered the same way it came. */
type Request = { readonly id: number; readonly raw: Posted } | { readonly ids: ReadonlyArray<number>; readonly raws: ReadonlyArray<Posted> }

const reply = (message: WorkerReply) => parentPort?.postMessage(message)

const asMail = (raw: Posted): RawMail => ({ ...raw, source: Buffer.from(raw.source.buffer, raw.source.byteOffset, raw.source.byteLength) })

/** Single-part text on the spot, the rest through mailparser; never rejects. */
const parse = (mail: RawMail): ParseResult | Promise<ParseResult> =>
  parseSimple(mail) ??
    parseWithHash(mail).catch((cause: unknown) => ({ parsed: unparseable(mail, cause), rawSha256: "" }))

parentPort?.on("message", (request: Request) => {
  if ("raw" in request) {
    void Promise.resolve(parse(asMail(request.raw))).then((result) => reply({ id: request.id, result }))
    return
  }
  const results = request.raws.map((raw) => parse(asMail(raw)))
  const { ids } = request
  if (results.every((result) => !(result instanceof Promise))) return reply({ ids, results: results as Array<ParseResult> })
  void Promise.all(results).then((all) => reply({ ids, results: all }))
})

// Only now has it loaded: the pool charges a worker's death to its mail only after this.
reply({ ready: true })
