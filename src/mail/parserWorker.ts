import { parentPort } from "node:worker_threads"
import type { RawMail } from "./Email.js"
import type { WorkerReply } from "./Parser.js"
import { parseWithHash, unparseable } from "./ParseMail.js"

interface Request {
  readonly id: number
  readonly raw: Omit<RawMail, "source"> & { readonly source: Uint8Array }
}

const reply = (message: WorkerReply) => parentPort?.postMessage(message)

parentPort?.on("message", ({ id, raw }: Request) => {
  const mail: RawMail = { ...raw, source: Buffer.from(raw.source.buffer, raw.source.byteOffset, raw.source.byteLength) }
  parseWithHash(mail).then(
    (result) => reply({ id, result }),
    (cause: unknown) => reply({ id, result: { parsed: unparseable(mail, cause), rawSha256: "" } })
  )
})

// Only now has it loaded: the pool charges a worker's death to its mail only after this.
reply({ ready: true })
