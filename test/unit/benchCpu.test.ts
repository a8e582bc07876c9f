import { type ChildProcess, execFile, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { meterCpu, perThousand } from "../../bench/cpu.js"

const run = promisify(execFile)

const shellQuote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`

/** Busy until this process has used `ms` more CPU time (not wall time: the machine may be loaded). */
function spin(ms: number) {
  const used = () => {
    const usage = process.cpuUsage()
    return (usage.user + usage.system) / 1000
  }
  const end = used() + ms
  while (used() < end);
}

/**
 * A child that runs `work` only once told, then waits to be stopped. It is ready once it has
 * started (Node's own start-up, a tenth of a second or more on a loaded machine), before any meter
 * starts, so two meters started one after the other see the same work.
 */
const whenTold = async (work: string) => {
  const child = spawn(
    process.execPath,
    ["-e", `process.stdin.once("data", () => { ${work}; setInterval(() => {}, 1000) }); console.log("ready")`],
    { stdio: ["pipe", "pipe", "ignore"] }
  )
  await said(child)
  return child
}

const said = (child: ChildProcess) => new Promise<void>((resolve) => child.stdout!.once("data", () => resolve()))

/**
 * Stops a child and waits until this process has reaped it: a child reaped later, inside the next
 * test's window, would count there as this process's (the client's) work.
 */
const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill()
  })

/** Tells a `whenTold` child to work and waits until it says it is done. */
const go = (child: ChildProcess) => {
  const done = said(child)
  child.stdin!.write("go\n")
  return done
}

describe("the benchmark's CPU meter", () => {
  it("counts a child that has exited, through this process, and not this process's own work", async () => {
    const stop = await meterCpu()
    await run(process.execPath, ["-e", `(${spin.toString()})(600)`])
    spin(1000)
    const cpu = await stop()
    expect(cpu.client).toBeGreaterThanOrEqual(0.6)
    expect(cpu.client).toBeLessThan(1.5)
    expect(cpu.floor).toBeGreaterThan(0)
  })

  it("counts one process tree as Dovecot when told its master, and nothing else that runs", async () => {
    // A stand-in master: once told, it spins in a child of its own, reaps it, then waits to be stopped.
    const grandchild = `(${spin.toString()})(400)`
    const master = await whenTold(
      `require("node:child_process").execFileSync(process.execPath, ["-e", ${JSON.stringify(grandchild)}]); console.log("done")`
    )
    try {
      const scoped = await meterCpu({ dovecotMaster: master.pid! })
      const global = await meterCpu()
      await go(master)
      const cpu = await scoped()
      expect(cpu.dovecot).toBeGreaterThanOrEqual(0.4)
      expect(cpu.client).toBeLessThan(0.2)
      // By name alone no "node" process is Dovecot.
      expect((await global()).dovecot).toBeLessThan(0.4)
    } finally {
      await stop(master)
    }
  })

  it("counts another program's work on the machine apart from every party", async () => {
    // An orphan (its shell exits at once): no party of the row, and never reaped by this process.
    const dir = await mkdtemp(join(tmpdir(), "bench-cpu-"))
    try {
      const stop = await meterCpu()
      const spinner = `(${spin.toString()})(500); require("node:fs").writeFileSync(${JSON.stringify(join(dir, "done"))}, "")`
      await run("sh", ["-c", `${JSON.stringify(process.execPath)} -e ${shellQuote(spinner)} >/dev/null 2>&1 &`])
      while (!existsSync(join(dir, "done"))) await new Promise((resolve) => setTimeout(resolve, 20))
      const cpu = await stop()
      expect(cpu.others).toBeGreaterThanOrEqual(0.4)
      // Half a second of one core's work in a window of about as long is a disturbed row.
      expect(cpu.disturbed).toBe(true)
      expect(cpu.client).toBeLessThan(0.2)
      expect(cpu.stolen).toBeGreaterThanOrEqual(0)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it("leaves the network's stand-in (the latency proxy) out of other programs' CPU", async () => {
    // A child still running when the meter stops: not yet reaped, so no party's either way.
    const proxy = await whenTold(`(${spin.toString()})(500); console.log("spun")`)
    try {
      const told = await meterCpu({ network: [proxy.pid!] })
      const untold = await meterCpu()
      await go(proxy)
      // Both windows hold the same other work (other test files run beside this one): only the proxy differs.
      const [without, withProxy] = [await told(), await untold()]
      expect(withProxy.others - without.others).toBeGreaterThanOrEqual(0.4)
    } finally {
      await stop(proxy)
    }
  })

  it("puts all three parties per 1,000 mails", () => {
    const quiet = { others: 0, stolen: 0, disturbed: false }
    expect(perThousand({ client: 1.5, postgres: 0.4, dovecot: 0.1, floor: 1, ...quiet }, 500)).toBe(4)
    expect(perThousand({ client: 1, postgres: 0, dovecot: 0, floor: 0.5, ...quiet }, 0)).toBe(0)
  })
})
