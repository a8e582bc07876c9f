import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { fileURLToPath } from "node:url"

export const mainJs = fileURLToPath(new URL("../../dist/main.js", import.meta.url))

export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Environment for a child mailroom: only what the test gives, plus PATH, so the developer's shell leaks nothing in. */
export const childEnv = (env: Record<string, string>) => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", ...env })

export const spawnCli = (args: ReadonlyArray<string>, env: Record<string, string>, cwd?: string) =>
  spawn(process.execPath, [mainJs, ...args], { env: childEnv(env), cwd, stdio: ["ignore", "pipe", "pipe"] })

export const collect = (child: ChildProcess, timeoutMs = 120_000): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (chunk) => (stdout += chunk))
    child.stderr?.on("data", (chunk) => (stderr += chunk))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`mailroom did not exit within ${timeoutMs} ms\n${stderr}`))
    }, timeoutMs)
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })

export const runCli = (args: ReadonlyArray<string>, env: Record<string, string>, options: { cwd?: string; timeoutMs?: number } = {}) =>
  collect(spawnCli(args, env, options.cwd), options.timeoutMs)
