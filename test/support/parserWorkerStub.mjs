// A stand-in for dist/parserWorker.js that speaks its protocol (a mail alone, or a batch in one
// message) but reads only one header, X-Stub, so that a test can make it die on a given mail: exit,
// throw, hang, or answer late (delay:<ms>).
import { parentPort, threadId } from "node:worker_threads"

const resultOf = (raw) => ({
  parsed: { _tag: "Rejected", reason: "no_sender", detail: `stub thread ${threadId} read uid ${raw.uid}`, glimpse: {} },
  rawSha256: ""
})

/** The mail's result, now or after its delay; exit, throw and hang act at once. */
const read = (raw) => {
  const order = /^X-Stub: (\S+)/m.exec(Buffer.from(raw.source).toString("latin1"))?.[1] ?? "read"
  if (order === "exit") process.exit(7)
  if (order === "throw") throw new Error("stub choked on this mail")
  if (order === "hang") for (;;);
  if (order.startsWith("delay:")) return new Promise((resolve) => setTimeout(() => resolve(resultOf(raw)), Number(order.slice(6))))
  return resultOf(raw)
}

parentPort.on("message", (request) => {
  if ("raw" in request) return void Promise.resolve(read(request.raw)).then((result) => parentPort.postMessage({ id: request.id, result }))
  const results = request.raws.map(read)
  void Promise.all(results).then((all) => parentPort.postMessage({ ids: request.ids, results: all }))
})

parentPort.postMessage({ ready: true })
