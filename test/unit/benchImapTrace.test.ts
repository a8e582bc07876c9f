import { createServer } from "node:net"
import type { AddressInfo } from "node:net"
import { connect } from "node:net"
import { describe, expect, it } from "vitest"
import { shown, traceProxy } from "../../bench/imapTrace.js"

/** A server that greets, and answers each command line with its tag's OK. */
const fakeImap = () =>
  new Promise<{ port: number; close: () => void }>((resolve) => {
    const server = createServer((socket) => {
      socket.write("* OK ready\r\n")
      let pending = ""
      socket.on("data", (chunk) => {
        pending += chunk.toString()
        const lines = pending.split("\r\n")
        pending = lines.pop()!
        for (const line of lines) socket.write(`${line.split(" ")[0]} OK done\r\n`)
      })
    })
    server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as AddressInfo).port, close: () => server.close() }))
  })

describe("bench:imap-trace", () => {
  it("prints each command and each answer's first line, the credentials left out", () => {
    expect(shown("2 AUTHENTICATE PLAIN AHN1cHBvcnQAc2VjcmV0")).toBe("2 AUTHENTICATE PLAIN <credentials>")
    expect(shown("a1 LOGIN support@example.com \"secret pass\"")).toBe("a1 LOGIN support@example.com <password>")
    expect(shown("5 SELECT INBOX")).toBe("5 SELECT INBOX")
    expect(shown(`7 UID FETCH ${"1,".repeat(100)}2 (UID)`)).toHaveLength(100)
  })

  it("passes both ways, a command split over chunks printed once it ends, each way delayed", async () => {
    const imap = await fakeImap()
    const printed: Array<string> = []
    const proxy = await traceProxy({ listenPort: 0, targetPort: imap.port, oneWayMs: 20, print: (line) => printed.push(line) })
    try {
      const client = connect((proxy.address() as AddressInfo).port, "127.0.0.1")
      const received: Array<string> = []
      let buffered = ""
      const answered = new Promise<number>((resolve) => {
        client.on("data", (chunk) => {
          buffered += chunk.toString()
          if (buffered.includes("1 OK done\r\n")) resolve(performance.now())
        })
      })
      await new Promise((resolve) => client.once("data", (chunk) => resolve(received.push(chunk.toString()))))
      const sent = performance.now()
      client.write("1 AUTHENTICATE PLAIN AHN")
      client.write("1cHBvcnQAc2VjcmV0\r\n")
      // Through the proxy and back: twice the one-way delay, less the millisecond a Node timer may fire
      // early by performance.now (timers count from the event loop's cached clock) on each way.
      expect(await answered - sent).toBeGreaterThanOrEqual(38)
      client.end()
      expect(received).toEqual(["* OK ready\r\n"])
      expect(printed.map((line) => line.slice(9))).toEqual(["S * OK ready", "C 1 AUTHENTICATE PLAIN <credentials>", "S 1 OK done"])
      expect(printed.join("\n")).not.toContain("c2VjcmV0")
    } finally {
      proxy.close()
      imap.close()
    }
  })
})
