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
  /** utime + stime */
  readonly own: number
  /** cutime + cstime: the children it has reaped */
  readonly reaped: number
}

const usageOf = (stat: string): Usage => {
  const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
  // The fields after "(comm) ": state, ppid, …; utime, stime, cutime, cstime are the 12th to 15th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number)
  return { comm, own: fields[11]! + fields[12]!, reaped: fields[13]! + fields[14]! }
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

/** Starts counting; the returned function says what each party used since. */
export const meterCpu = async () => {
  const before = await snapshot()
  return async (): Promise<CpuSeconds> => {
    const after = await snapshot()
    const since = (pid: string, usage: Usage) => {
      const earlier = before.get(pid)
      // A pid reused by another program since the first snapshot counts from zero.
      return earlier?.comm === usage.comm ? { own: usage.own - earlier.own, reaped: usage.reaped - earlier.reaped } : usage
    }
    const sum = (belongs: (usage: Usage) => boolean) => {
      let ticks = 0
      for (const [pid, usage] of after) {
        if (!belongs(usage)) continue
        const delta = since(pid, usage)
        ticks += delta.own + delta.reaped
      }
      return ticks / TICKS_PER_SECOND
    }
    const self = String(process.pid)
    const client = since(self, after.get(self)!).reaped / TICKS_PER_SECOND
    const postgres = sum((usage) => usage.comm === "postgres")
    const dovecot = sum((usage) => DOVECOT.has(usage.comm))
    const round = (seconds: number) => Math.round(seconds * 100) / 100
    return { client: round(client), postgres: round(postgres), dovecot: round(dovecot), floor: round((client + postgres + dovecot) / availableParallelism()) }
  }
}
