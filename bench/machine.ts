/** What a result was measured on: CPU, cores, memory, kernel, Node, and the servers' versions. */
import { execFile } from "node:child_process"
import { readFile } from "node:fs/promises"
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os"
import { promisify } from "node:util"
import { PYTHON } from "./baselines.js"

const run = promisify(execFile)

const quietly = async (command: string, args: ReadonlyArray<string>) =>
  run(command, [...args]).then(({ stdout, stderr }) => (stdout || stderr).trim().split("\n")[0] ?? "", () => undefined)

export interface Machine {
  readonly cpuModel: string
  readonly cores: number
  readonly memoryMb: number
  readonly kernel: string
  readonly node: string
  readonly python?: string
  readonly dovecot?: string
  readonly postgres?: string
  /** 1, 5 and 15 minute load averages when the run started: others' work on a shared machine. */
  readonly loadAverage: ReadonlyArray<number>
  readonly date: string
}

const cpuModel = async () => {
  const model = cpus()[0]?.model
  if (model && model !== "unknown") return model
  const info = await readFile("/proc/cpuinfo", "utf8").catch(() => "")
  return /^model name\s*:\s*(.+)$/m.exec(info)?.[1] ?? "unknown"
}

export const machineInfo = async (postgresVersion?: () => Promise<string | undefined>): Promise<Machine> => {
  const [model, python, dovecot, postgres] = await Promise.all([
    cpuModel(),
    quietly(PYTHON, ["--version"]),
    quietly("/usr/sbin/dovecot", ["--version"]),
    postgresVersion ? postgresVersion().catch(() => undefined) : Promise.resolve(undefined)
  ])
  return {
    cpuModel: model,
    cores: availableParallelism(),
    memoryMb: Math.round(totalmem() / 1024 / 1024),
    kernel: release(),
    node: process.version,
    ...(python ? { python } : {}),
    ...(dovecot ? { dovecot } : {}),
    ...(postgres ? { postgres } : {}),
    loadAverage: loadavg().map((n) => Math.round(n * 100) / 100),
    date: new Date().toISOString()
  }
}
