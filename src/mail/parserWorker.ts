import { parentPort } from "node:worker_threads"
import type { RawMail } from "./Email.js"
import { parseWithHash, unparseable } from "./ParseMail.js"

interface Request {
  readonly id: number
  readonly raw: Omit<RawMail, "source"> & { readonly source: Uint8Array }
}

parentPort?.on("message", ({ id, raw }: Request) => {
  const mail: RawMail = { ...raw, source: Buffer.from(raw.source.buffer, raw.source.byteOffset, raw.source.byteLength) }
  parseWithHash(mail).then(
    (result) => parentPort?.postMessage({ id, result }),
    (cause: unknown) => parentPort?.postMessage({ id, result: { parsed: unparseable(mail, cause), rawSha256: "" } })
  )
})
