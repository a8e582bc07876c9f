import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { meterCpu } from "../../bench/cpu.js"

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
})
