/**
 * npm run -s bench:imap-trace -- LISTEN_PORT TARGET_PORT [ONE_WAY_MS]
 *
 * A TCP proxy on 127.0.0.1 that prints what goes through it, a line each, with the milliseconds
 * since its connection opened: `C` each command line the client sends, `S` the first line of each
 * chunk the server sends. ONE_WAY_MS delays each direction (the round trip is twice that), as
 * ../shared/bench/latency_proxy.py does. For counting a login's round trips and seeing where a pass
 * waits, between mailroom (IMAP_PORT=LISTEN_PORT) and Dovecot (`npm run bench:serve`): what the
 * server took is the gap from a `C` to its `S`, what the client took the gap from an `S` (plus
 * ONE_WAY_MS) to the next `C`. Credentials are not printed.
 */
import { createServer, connect } from "node:net"
import type { Server, Socket } from "node:net"
import { fileURLToPath } from "node:url"

export interface TraceOptions {
  readonly listenPort: number
  readonly targetPort: number
  /** Each direction's delay, in milliseconds. */
  readonly oneWayMs: number
  readonly print: (line: string) => void
}

const WIDTH = 100

const cut = (line: string) => line.length > WIDTH ? `${line.slice(0, WIDTH - 1)}…` : line

/** A command line as printed: a login's secrets replaced, long lines cut. */
export const shown = (line: string): string =>
  cut(line.replace(/^(\S+ AUTHENTICATE \S+) \S+$/i, "$1 <credentials>").replace(/^(\S+ LOGIN \S+) .*$/i, "$1 <password>"))

/** Writes each chunk `oneWayMs` after it came, in order; the end too, after what came before it. */
const delayed = (to: Socket, oneWayMs: number) => {
  let queue = Promise.resolve()
  const after = (act: () => void) => {
    const due = performance.now() + oneWayMs
    queue = queue.then(() => new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())))).then(act)
  }
  return { write: (chunk: Buffer) => after(() => void to.write(chunk)), end: () => after(() => void to.end()) }
}

/** Starts the proxy; resolves once it listens. */
export const traceProxy = (options: TraceOptions): Promise<Server> => {
  // Half-open allowed: each side's end is passed on after what came before it, not at once.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const opened = performance.now()
    const stamp = () => (performance.now() - opened).toFixed(1).padStart(8)
    const upstream = connect({ port: options.targetPort, host: "127.0.0.1", allowHalfOpen: true })
    const toServer = delayed(upstream, options.oneWayMs)
    const toClient = delayed(client, options.oneWayMs)
    // A command's line may come in pieces: printed once it ends.
    let pending = ""
    client.on("data", (chunk) => {
      pending += chunk.toString("latin1")
      const lines = pending.split("\r\n")
      pending = lines.pop()!
      for (const line of lines) if (line !== "") options.print(`${stamp()} C ${shown(line)}`)
      toServer.write(chunk)
    })
    upstream.on("data", (chunk) => {
      const first = chunk.toString("latin1").split("\r\n", 1)[0]!
      options.print(`${stamp()} S ${cut(first)}`)
      toClient.write(chunk)
    })
    client.on("end", toServer.end)
    upstream.on("end", toClient.end)
    const fail = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on("error", fail)
    upstream.on("error", fail)
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.listenPort, "127.0.0.1", () => resolve(server))
  })
}

const main = async () => {
  const [listenPort, targetPort, oneWayMs = 0] = process.argv.slice(2).map(Number)
  if (!(listenPort! > 0) || !(targetPort! > 0) || !(oneWayMs >= 0)) {
    console.error("usage: npm run -s bench:imap-trace -- LISTEN_PORT TARGET_PORT [ONE_WAY_MS]")
    process.exit(2)
  }
  await traceProxy({ listenPort: listenPort!, targetPort: targetPort!, oneWayMs, print: (line) => console.log(line) })
  console.error(`tracing 127.0.0.1:${listenPort} → 127.0.0.1:${targetPort}, ${oneWayMs} ms each way`)
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main()
