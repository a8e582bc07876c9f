/**
 * CPU-seconds spent while a scenario runs, read from /proc: by the client under test (mailroom or
 * the imaplib loop, a child of this process), by PostgreSQL and by Dovecot. A process's time
 * includes that of the children it has reaped, so a PostgreSQL backend or a Dovecot `imap` process
 * that ends within the scenario still counts, through the master that waited for it.
 */
import { readdir, readFile } from "node:fs/promises"
import { availableParallelism } from "node:os"

/** USER_HZ: /proc reports times in hundredths of a second on Linux, whatever the hardware. */
const TICKS_PER_SECOND = 100

const DOVECOT = new Set(["dovecot", "imap", "imap-login", "auth", "anvil", "log", "config", "stats"])

export interface Usage {
  readonly comm: string
  readonly ppid: number
  /** utime + stime */
  readonly own: number
  /** cutime + cstime: the children it has reaped */
  readonly reaped: number
}

const usageOf = (stat: string): Usage => {
  const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
  // The fields after "(comm) ": state, ppid, …; utime, stime, cutime, cstime are the 12th to 15th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number)
  return { comm, ppid: fields[1]!, own: fields[11]! + fields[12]!, reaped: fields[13]! + fields[14]! }
}

const snapshot = async (): Promise<Map<string, Usage>> => {
  const usages = new Map<string, Usage>()
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined)
    if (stat) usages.set(pid, usageOf(stat))
  }
  return usages
}

export interface CpuSeconds {
  readonly client: number
  readonly postgres: number
  readonly dovecot: number
  /** The shortest the scenario could take with every core busy for it alone: all of it over the cores. */
  readonly floor: number
  /**
   * What the rest of the machine used meanwhile (the bench itself aside): another program's work on
   * a shared machine takes cores from the row, which is then not comparable with its neighbours.
   */
  readonly others: number
  /** Time the hypervisor gave this machine's vCPUs to other guests (steal): a noisy host. */
  readonly stolen: number
  /** Other programs took more than DISTURBED_SHARE of the machine's cores while the row ran. */
  readonly disturbed: boolean
}

/**
 * A quiet machine's own services (this one runs PostgreSQL, MariaDB, Redis, RabbitMQ, …) take
 * about 1% of a core; a type check or a test run beside the bench takes most of one.
 */
const DISTURBED_SHARE = 0.05

/** The whole machine's busy and stolen CPU-seconds since boot, from /proc/stat's first line. */
const machineTotals = async () => {
  const [user, nice, system, , , irq, softirq, steal] = (await readFile("/proc/stat", "utf8")).split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  return { busy: (user! + nice! + system! + irq! + softirq!) / TICKS_PER_SECOND, stolen: (steal ?? 0) / TICKS_PER_SECOND }
}

/** This process's own CPU-seconds (the bench's watching and logging). */
const ownSeconds = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}

/** Every pid in the tree under `root` (itself included), by parent links in one snapshot. */
const treeOf = (usages: ReadonlyMap<string, Usage>, root: number): Set<string> => {
  const children = new Map<number, Array<string>>()
  for (const [pid, usage] of usages) children.set(usage.ppid, [...(children.get(usage.ppid) ?? []), pid])
  const tree = new Set<string>()
  const stack = [String(root)]
  while (stack.length > 0) {
    const pid = stack.pop()!
    if (tree.has(pid)) continue
    tree.add(pid)
    stack.push(...(children.get(Number(pid)) ?? []))
  }
  return tree
}

/** The master process of the Dovecot started with `<baseDir>/dovecot.conf`, if it runs. */
export const dovecotMaster = async (baseDir: string): Promise<number | undefined> => {
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")
    const args = cmdline.split("\0")
    if (args[0]?.endsWith("dovecot") && args.includes(`${baseDir}/dovecot.conf`)) return Number(pid)
  }
  return undefined
}

export interface MeterOptions {
  /**
   * Count only this Dovecot master and its children, not every Dovecot on the machine (others'
   * tests run theirs). Its `imap` processes that ended count through the master, which reaps them.
   */
  readonly dovecotMaster?: number
  /** Processes that stand in for the network (the latency proxy): neither a party's CPU nor another program's. */
  readonly network?: ReadonlyArray<number>
}

/** CPU-seconds per 1,000 mails, all parties together. */
export const perThousand = (cpu: CpuSeconds, messages: number) =>
  messages > 0 ? Math.round(((cpu.client + cpu.postgres + cpu.dovecot) / messages) * 1000 * 100) / 100 : 0

/** What /proc said at one moment: every process, and the machine's busy and stolen seconds. */
export interface Reading {
  readonly processes: ReadonlyMap<string, Usage>
  readonly machine: { readonly busy: number; readonly stolen: number }
}

/**
 * Each party's CPU-seconds between two readings: the client (what `self` reaped), PostgreSQL,
 * Dovecot, and the rest of the machine less the network's stand-ins and `own` (the bench's own work).
 */
export const account = (
  before: Reading,
  after: Reading,
  measure: { readonly self: string; readonly own: number; readonly seconds: number; readonly cores: number },
  options: MeterOptions = {}
): CpuSeconds => {
  const since = (pid: string, usage: Usage) => {
    const earlier = before.processes.get(pid)
    // A pid reused by another program since the first snapshot counts from zero.
    return earlier?.comm === usage.comm ? { own: usage.own - earlier.own, reaped: usage.reaped - earlier.reaped } : usage
  }
  const sum = (belongs: (usage: Usage, pid: string) => boolean) => {
    let ticks = 0
    for (const [pid, usage] of after.processes) {
      if (!belongs(usage, pid)) continue
      const delta = since(pid, usage)
      ticks += delta.own + delta.reaped
    }
    return ticks / TICKS_PER_SECOND
  }
  const self = after.processes.get(measure.self)
  const client = self === undefined ? 0 : since(measure.self, self).reaped / TICKS_PER_SECOND
  const postgres = sum((usage) => usage.comm === "postgres")
  const ours = options.dovecotMaster === undefined ? undefined : treeOf(after.processes, options.dovecotMaster)
  const dovecot = ours === undefined
    ? sum((usage) => DOVECOT.has(usage.comm))
    : sum((_usage, pid) => ours.has(pid))
  const round = (seconds: number) => Math.round(seconds * 100) / 100
  const network = new Set((options.network ?? []).map(String))
  const proxies = sum((_usage, pid) => network.has(pid))
  const others = after.machine.busy - before.machine.busy - client - postgres - dovecot - proxies - measure.own
  return {
    client: round(client),
    postgres: round(postgres),
    dovecot: round(dovecot),
    floor: round((client + postgres + dovecot) / measure.cores),
    // Ticks are counted per core and per process apart: a few hundredths either way are rounding.
    others: round(Math.max(0, others)),
    stolen: round(after.machine.stolen - before.machine.stolen),
    disturbed: others > DISTURBED_SHARE * measure.cores * measure.seconds
  }
}

/** Starts counting; the returned function says what each party used since. */
export const meterCpu = async (options: MeterOptions = {}) => {
  const before: Reading = { processes: await snapshot(), machine: await machineTotals() }
  const ownBefore = ownSeconds()
  const started = performance.now()
  return async (): Promise<CpuSeconds> => {
    // The machine's total first: the snapshot's own reading is then in neither it nor `own`.
    const machine = await machineTotals()
    const own = ownSeconds() - ownBefore
    const after: Reading = { processes: await snapshot(), machine }
    return account(before, after, {
      self: String(process.pid),
      own,
      seconds: (performance.now() - started) / 1000,
      cores: availableParallelism()
    }, options)
  }
}
