import { createServer, connect } from "node:net"
import type { AddressInfo, Socket } from "node:net"
import { Context, Effect, Layer } from "effect"

/**
 * A TCP proxy between mailroom and a real server that breaks things on request: cut every
 * connection, cut the server's answer after N bytes (the middle of a FETCH), stall, or slow it.
 */
export interface FaultProxy {
  readonly port: number
  /** Connections accepted so far: with IMAP, one per login. */
  readonly connections: number
  /** Closes every open connection now. */
  cutAll(): void
  /** The next server→client stream is cut after this many more bytes. */
  cutAfter(bytes: number): void
  /** Holds server→client bytes until `resume()`. */
  stall(): void
  resume(): void
  /** Delays every server→client chunk by this many ms (0 to stop). */
  slow(ms: number): void
  /** Refuses new connections (they are closed at once) until set back to false. */
  refuse(on: boolean): void
  /** Everything the clients sent so far, as text: for IMAP, their commands. */
  sent(): string
  close(): Promise<void>
}

export const startFaultProxy = async (targetPort: number, targetHost = "127.0.0.1"): Promise<FaultProxy> => {
  const open = new Set<Socket>()
  let connections = 0
  let cutBudget: number | undefined
  let stalled = false
  let delayMs = 0
  let refusing = false
  const sent: Array<Buffer> = []
  const waiting: Array<() => void> = []

  const server = createServer((client) => {
    connections += 1
    if (refusing) return void client.destroy()
    const upstream = connect(targetPort, targetHost)
    open.add(client)
    open.add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      open.delete(client)
      open.delete(upstream)
    }
    client.on("error", drop).on("close", drop)
    upstream.on("error", drop).on("close", drop)
    client.on("data", (chunk: Buffer) => void sent.push(chunk))
    client.pipe(upstream)
    upstream.on("data", (chunk: Buffer) => {
      const forward = () => {
        if (cutBudget !== undefined) {
          if (chunk.length >= cutBudget) {
            client.write(chunk.subarray(0, cutBudget))
            cutBudget = undefined
            return drop()
          }
          cutBudget -= chunk.length
        }
        client.write(chunk)
      }
      const send = () => (delayMs > 0 ? setTimeout(forward, delayMs) : forward())
      if (stalled) waiting.push(send)
      else send()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))

  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections
    },
    cutAll: () => [...open].forEach((socket) => socket.destroy()),
    cutAfter: (bytes) => void (cutBudget = bytes),
    stall: () => void (stalled = true),
    resume: () => {
      stalled = false
      waiting.splice(0).forEach((send) => send())
    },
    slow: (ms) => void (delayMs = ms),
    refuse: (on) => void (refusing = on),
    sent: () => Buffer.concat(sent).toString("latin1"),
    close: () =>
      new Promise((resolve) => {
        ;[...open].forEach((socket) => socket.destroy())
        server.close(() => resolve())
      })
  }
}

export const FaultProxyResource = (targetPort: number, targetHost?: string) =>
  Effect.acquireRelease(Effect.promise(() => startFaultProxy(targetPort, targetHost)), (proxy) => Effect.promise(() => proxy.close()))

/** A fault proxy for a suite, in front of another fixture's loopback server: `FaultProxyServer.layer(DovecotServer)`. */
export class FaultProxyServer extends Context.Tag("test/FaultProxyServer")<FaultProxyServer, FaultProxy>() {
  static readonly layer = <I, S extends { readonly port: number }>(target: Context.Tag<I, S>) =>
    Layer.scoped(FaultProxyServer, Effect.flatMap(target, (server) => FaultProxyResource(server.port)))
}
