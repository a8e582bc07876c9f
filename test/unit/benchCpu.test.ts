import { execFile, spawn } from "node:child_process"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { meterCpu, perThousand } from "../../bench/cpu.js"

const run = promisify(execFile)

/** Busy until this process has used `ms` more CPU time (not wall time: the machine may be loaded). */
function spin(ms: number) {
  const used = () => {
    const usage = process.cpuUsage()
    return (usage.user + usage.system) / 1000
  }
  const end = used() + ms
  while (used() < end);
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
    // A stand-in master: it spins in a child of its own, reaps it, then waits to be stopped.
    const grandchild = `(${spin.toString()})(400)`
    const master = spawn(process.execPath, [
      "-e",
      `require("node:child_process").execFileSync(process.execPath, ["-e", ${JSON.stringify(grandchild)}]); console.log("done"); setInterval(() => {}, 1000)`
    ], { stdio: ["ignore", "pipe", "ignore"] })
    try {
      const scoped = await meterCpu({ dovecotMaster: master.pid! })
      const global = await meterCpu()
      await new Promise<void>((resolve) => master.stdout!.once("data", () => resolve()))
      const cpu = await scoped()
      expect(cpu.dovecot).toBeGreaterThanOrEqual(0.4)
      expect(cpu.client).toBeLessThan(0.2)
      // By name alone no "node" process is Dovecot.
      expect((await global()).dovecot).toBeLessThan(0.4)
    } finally {
      master.kill()
    }
  })

  it("puts all three parties per 1,000 mails", () => {
    expect(perThousand({ client: 1.5, postgres: 0.4, dovecot: 0.1, floor: 1 }, 500)).toBe(4)
    expect(perThousand({ client: 1, postgres: 0, dovecot: 0, floor: 0.5 }, 0)).toBe(0)
  })
})
