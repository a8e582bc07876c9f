import { type ChildProcess, execFile, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { account, meterCpu, perThousand } from "../../bench/cpu.js"

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

  it("splits the machine's work between the parties, the network's stand-in and other programs", () => {
    // Each process in two readings of /proc: comm, parent, and own and reaped ticks (hundredths of a
    // second) before and after.
    const processes: ReadonlyArray<readonly [pid: string, comm: string, ppid: number, before: [number, number], after: [number, number]]> = [
      // The bench: its own work is `own` below; what it reaped is the client's.
      ["100", "node", 1, [500, 0], [510, 100]],
      ["200", "postgres", 1, [0, 0], [50, 0]],
      ["300", "dovecot", 1, [0, 0], [0, 20]],
      ["301", "imap", 300, [0, 0], [10, 0]],
      // Another Dovecot on the machine: Dovecot's only by name.
      ["400", "imap", 1, [0, 0], [40, 0]],
      ["500", "python3", 100, [0, 0], [50, 0]],
      ["600", "yes", 1, [0, 0], [30, 0]]
    ]
    const reading = (when: 3 | 4, busy: number) => ({
      processes: new Map(processes.map((p) => [p[0], { comm: p[1], ppid: p[2], own: p[when][0], reaped: p[when][1] }] as const)),
      machine: { busy, stolen: when === 3 ? 1 : 1.2 }
    })
    const before = reading(3, 10)
    before.processes.set("900", { comm: "bash", ppid: 1, own: 300, reaped: 0 })
    const after = reading(4, 13.5)
    // A pid reused by a PostgreSQL backend: counted from zero, not from the shell's 300.
    after.processes.set("900", { comm: "postgres", ppid: 200, own: 10, reaped: 0 })
    const measure = { self: "100", own: 0.1, seconds: 2, cores: 2 }
    const cpu = account(before, after, measure, { dovecotMaster: 300, network: [500] })
    expect(cpu).toEqual({ client: 1, postgres: 0.6, dovecot: 0.3, floor: 0.95, others: 1, stolen: 0.2, disturbed: true })
    // Not told of the proxy, its 0.5 s are another program's; by name, every imap process is Dovecot's.
    expect(account(before, after, measure, { dovecotMaster: 300 }).others).toBe(1.5)
    expect(account(before, after, measure, { network: [500] })).toMatchObject({ dovecot: 0.7, others: 0.6 })
    // A machine whose other programs took under 5% of its cores is quiet.
    expect(account(before, { ...after, machine: { busy: 12.6, stolen: 1.2 } }, measure, { dovecotMaster: 300, network: [500] }))
      .toMatchObject({ others: 0.1, disturbed: false })
  })

  it("puts all three parties per 1,000 mails", () => {
    const quiet = { others: 0, stolen: 0, disturbed: false }
    expect(perThousand({ client: 1.5, postgres: 0.4, dovecot: 0.1, floor: 1, ...quiet }, 500)).toBe(4)
    expect(perThousand({ client: 1, postgres: 0, dovecot: 0, floor: 0.5, ...quiet }, 0)).toBe(0)
  })
})
