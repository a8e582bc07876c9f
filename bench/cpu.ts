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

interface Usage {
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
}

/** Every pid in the tree under `root` (itself included), by parent links in one snapshot. */
const treeOf = (usages: Map<string, Usage>, root: number): Set<string> => {
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
}

/** CPU-seconds per 1,000 mails, all parties together. */
export const perThousand = (cpu: CpuSeconds, messages: number) =>
  messages > 0 ? Math.round(((cpu.client + cpu.postgres + cpu.dovecot) / messages) * 1000 * 100) / 100 : 0

/** Starts counting; the returned function says what each party used since. */
export const meterCpu = async (options: MeterOptions = {}) => {
  const before = await snapshot()
  return async (): Promise<CpuSeconds> => {
    const after = await snapshot()
    const since = (pid: string, usage: Usage) => {
      const earlier = before.get(pid)
      // A pid reused by another program since the first snapshot counts from zero.
      return earlier?.comm === usage.comm ? { own: usage.own - earlier.own, reaped: usage.reaped - earlier.reaped } : usage
    }
    const sum = (belongs: (usage: Usage, pid: string) => boolean) => {
      let ticks = 0
      for (const [pid, usage] of after) {
        if (!belongs(usage, pid)) continue
        const delta = since(pid, usage)
        ticks += delta.own + delta.reaped
      }
      return ticks / TICKS_PER_SECOND
    }
    const self = String(process.pid)
    const client = since(self, after.get(self)!).reaped / TICKS_PER_SECOND
    const postgres = sum((usage) => usage.comm === "postgres")
    const ours = options.dovecotMaster === undefined ? undefined : treeOf(after, options.dovecotMaster)
    const dovecot = ours === undefined
      ? sum((usage) => DOVECOT.has(usage.comm))
      : sum((_usage, pid) => ours.has(pid))
    const round = (seconds: number) => Math.round(seconds * 100) / 100
    return { client: round(client), postgres: round(postgres), dovecot: round(dovecot), floor: round((client + postgres + dovecot) / availableParallelism()) }
  }
}
