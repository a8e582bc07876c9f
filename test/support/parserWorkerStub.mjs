// A stand-in for dist/parserWorker.js that speaks its protocol but reads only one header, X-Stub,
// so that a test can make it die on a given mail: exit, throw, hang, or answer late (delay:<ms>).
import { parentPort, threadId } from "node:worker_threads"

const answer = (id, raw) =>
  parentPort.postMessage({
    id,
    result: {
      parsed: { _tag: "Rejected", reason: "no_sender", detail: `stub thread ${threadId} read uid ${raw.uid}`, glimpse: {} },
      rawSha256: ""
    }
  })

parentPort.on("message", ({ id, raw }) => {
  const order = /^X-Stub: (\S+)/m.exec(Buffer.from(raw.source).toString("latin1"))?.[1] ?? "read"
  if (order === "exit") process.exit(7)
  if (order === "throw") throw new Error("stub choked on this mail")
  if (order === "hang") for (;;);
  if (order.startsWith("delay:")) setTimeout(() => answer(id, raw), Number(order.slice(6)))
  else answer(id, raw)
})

parentPort.postMessage({ ready: true })
