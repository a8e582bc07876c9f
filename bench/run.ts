/**
 * npm run bench [-- --count N]: mailroom against the original guide's imaplib loop, in one run, on
 * the same private Dovecot. Prints a table and writes it as JSON under bench/results/.
 */
import { execFile, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { readFile, writeFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { collect, spawnCli } from "../test/support/cli.js"
import { generateCorpus } from "../test/support/corpus.js"
import type { Dovecot } from "../test/support/dovecot.js"
import { freePort, startDovecot } from "../test/support/dovecot.js"
import { largeAttachmentMail, mail } from "../test/support/mails.js"
import { createDatabase, query } from "../test/support/postgres.js"
import type { CpuSeconds } from "./cpu.js"
import { meterCpu } from "./cpu.js"
import { freshDir, imageMemorySettings, percentile, sleep } from "./util.js"

const run = promisify(execFile)
const root = fileURLToPath(new URL("..", import.meta.url))
const shared = [`${root}../shared/bench`, `${root}shared/bench`].find((dir) => existsSync(`${dir}/seed_imaplib.py`))

const argument = (name: string, fallback: number) => {
  const index = process.argv.indexOf(`--${name}`)
  return index > 0 ? Number(process.argv[index + 1]) : fallback
}
const count = argument("count", 10_000)
const latencyCount = argument("latency-count", 500)
const idleCount = argument("idle-count", 100)

interface Row {
  readonly scenario: string
  readonly messages: number
  readonly seconds: number
  readonly msgPerSec: number
  readonly mbPerSec: number
  readonly ratio?: number
  readonly peakRssMb?: number
}

const rows: Array<Row> = []
const extra: Record<string, unknown> = {}
const cpuSeconds: Record<string, CpuSeconds> = {}

/** Runs a scenario while counting CPU; `report` prints it once the scenario's own line is out. */
const metered = async <A>(scenario: string, body: () => Promise<A>) => {
  const stop = await meterCpu()
  const started = performance.now()
  const result = await body()
  const wall = (performance.now() - started) / 1000
  const cpu = await stop()
  cpuSeconds[scenario] = cpu
  const report = () =>
    console.error(
      `    CPU-seconds, start-up included: the client ${cpu.client.toFixed(1)}, PostgreSQL ${cpu.postgres.toFixed(1)}, Dovecot ${
        cpu.dovecot.toFixed(1)
      }; even with every core on it alone, no less than ${cpu.floor.toFixed(1)} s (it took ${wall.toFixed(1)} s)`
    )
  return { result, report }
}

const baseline = async (port: number, user: string, password: string, limit: number, bytes: number) => {
  if (!shared) throw new Error("../shared/bench/seed_imaplib.py not found: the baseline needs it")
  const { stdout } = await run("python3", [`${shared}/seed_imaplib.py`, "127.0.0.1", String(port), user, password, String(limit)], {
    maxBuffer: 1 << 20
  })
  const match = /(\d+) msgs ([\d.]+) MB in ([\d.]+)s/.exec(stdout)
  if (!match) throw new Error(`unexpected baseline output: ${stdout}`)
  const seconds = Number(match[3])
  return { messages: Number(match[1]), seconds, msgPerSec: Number(match[1]) / seconds, mbPerSec: bytes / 1e6 / seconds }
}

/** Peak resident set of a child, read from /proc while it runs (VmHWM is the high-water mark). */
const watchRss = (pid: number) => {
  let peak = 0
  const timer = setInterval(async () => {
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "")
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0)
    peak = Math.max(peak, kb)
  }, 20)
  return () => {
    clearInterval(timer)
    return peak / 1024
  }
}

/** One `--once` pass; the time is the pass itself, from the first log line after login to the exit. */
const mailroomOnce = async (env: Record<string, string>) => {
  const started = performance.now()
  const child = spawnCli(["--once"], { AGENT: "off", IMAP_BACKFILL: "all", ...env })
  const rss = watchRss(child.pid!)
  const result = await collect(child, 1_800_000)
  const peakRssMb = rss()
  if (result.code !== 0) throw new Error(`mailroom --once failed:\n${result.stderr.slice(-2000)}`)
  const stamps = result.stderr.split("\n").map((line) => Date.parse(line.slice(0, 24)))
  const found = result.stderr.split("\n").findIndex((line) => line.includes("new email(s)"))
  const pass = (stamps.filter((t) => !Number.isNaN(t)).at(-1)! - stamps[found]!) / 1000
  return { seconds: pass, wall: (performance.now() - started) / 1000, peakRssMb, stdout: result.stdout }
}

const record = (scenario: string, messages: number, seconds: number, bytes: number, base?: number, peakRssMb?: number) => {
  const msgPerSec = messages / seconds
  rows.push({
    scenario,
    messages,
    seconds: Number(seconds.toFixed(2)),
    msgPerSec: Math.round(msgPerSec),
    mbPerSec: Number((bytes / 1e6 / seconds).toFixed(1)),
    ...(base ? { ratio: Number((msgPerSec / base).toFixed(2)) } : {}),
    ...(peakRssMb ? { peakRssMb: Math.round(peakRssMb) } : {})
  })
  console.error(`  ${scenario}: ${Math.round(msgPerSec)} msg/s`)
}

const mailboxEnv = (dovecot: Dovecot, port = dovecot.port, user = dovecot.user) => ({
  GMAIL_SENDER_EMAIL: user,
  GMAIL_SENDER_PASSWORD: dovecot.password,
  IMAP_HOST: "127.0.0.1",
  IMAP_PORT: String(port),
  IMAP_TLS: "false"
})

const backlog = async (dovecot: Dovecot) => {
  console.error(`generating ${count} mails`)
  let bytes = 0
  const delivered = await dovecot.deliver((function*() {
    for (const m of generateCorpus(count)) {
      bytes += m.raw.length
      yield m.raw
    }
  })())
  await dovecot.uids()
  console.error(`baseline and mailroom over ${delivered} mails (${(bytes / 1e6).toFixed(0)} MB)`)
  const loop = await metered("guide's imaplib loop", () => baseline(dovecot.port, dovecot.user, dovecot.password, count, bytes))
  const base = loop.result
  record("guide's imaplib loop", base.messages, base.seconds, bytes)
  loop.report()
  const db = await createDatabase("bench")
  try {
    const { report, result: pg } = await metered("mailroom --once, PostgreSQL", () => mailroomOnce({ ...mailboxEnv(dovecot), DATABASE_URL: db.url }))
    record("mailroom --once, PostgreSQL", count, pg.seconds, bytes, base.msgPerSec, pg.peakRssMb)
    report()
  } finally {
    await db.drop()
  }
  const image = imageMemorySettings(await readFile(`${root}Dockerfile`, "utf8"))
  const imageDb = await createDatabase("bench_image")
  try {
    const scenario = `mailroom --once, PostgreSQL, as the Docker image runs it (${Object.entries(image).map(([k, v]) => `${k}=${v}`).join(" ")})`
    const { report, result: pg } = await metered(scenario, () => mailroomOnce({ ...mailboxEnv(dovecot), DATABASE_URL: imageDb.url, ...image }))
    record(scenario, count, pg.seconds, bytes, base.msgPerSec, pg.peakRssMb)
    report()
  } finally {
    await imageDb.drop()
  }
  const dir = await freshDir()
  try {
    const { report, result: lite } = await metered("mailroom --once, PGlite", () => mailroomOnce({ ...mailboxEnv(dovecot), MAILROOM_DATA_DIR: dir.path }))
    record("mailroom --once, PGlite", count, lite.seconds, bytes, base.msgPerSec, lite.peakRssMb)
    report()
  } finally {
    await dir.remove()
  }
}

const withLatency = async (dovecot: Dovecot) => {
  const user = "far@example.com"
  let bytes = 0
  await dovecot.deliver((function*() {
    for (const m of generateCorpus(latencyCount, { seed: 99 })) {
      bytes += m.raw.length
      yield m.raw
    }
  })(), { user })
  await dovecot.uids({ user })
  const port = await freePort()
  const proxy = spawn("python3", [`${shared}/latency_proxy.py`, String(port), String(dovecot.port), "10"], { stdio: "ignore" })
  try {
    await sleep(500)
    console.error(`20 ms round trip, ${latencyCount} mails`)
    const base = await baseline(port, user, dovecot.password, latencyCount, bytes)
    record("guide's imaplib loop, 20 ms RTT", base.messages, base.seconds, bytes)
    const db = await createDatabase("bench_far")
    try {
      const far = await mailroomOnce({ ...mailboxEnv(dovecot, port, user), DATABASE_URL: db.url })
      record("mailroom --once, PostgreSQL, 20 ms RTT", latencyCount, far.seconds, bytes, base.msgPerSec, far.peakRssMb)
    } finally {
      await db.drop()
    }
  } finally {
    proxy.kill()
  }
}

const bigAttachment = async (dovecot: Dovecot) => {
  const user = "big@example.com"
  const raws = [largeAttachmentMail(30 * 1024 * 1024), ...Array.from({ length: 20 }, () => mail())]
  await dovecot.append(raws, { user })
  const db = await createDatabase("bench_big")
  try {
    const big = await mailroomOnce({ ...mailboxEnv(dovecot, dovecot.port, user), DATABASE_URL: db.url, MAX_MESSAGE_BYTES: String(64 * 1024 * 1024) })
    extra.attachment30MbPeakRssMb = Math.round(big.peakRssMb)
    console.error(`  30 MB attachment: peak RSS ${Math.round(big.peakRssMb)} MB`)
  } finally {
    await db.drop()
  }
}

/** Arrival (APPEND answered) to ticket (event committed, same clock), with IDLE, one mail at a time. */
const idleLatency = async (dovecot: Dovecot) => {
  const user = "idle@example.com"
  const db = await createDatabase("bench_idle")
  const child = spawnCli(["--interval", "600"], { ...mailboxEnv(dovecot, dovecot.port, user), DATABASE_URL: db.url, AGENT: "off" })
  let output = ""
  child.stderr?.on("data", (chunk) => (output += chunk))
  try {
    while (!output.includes("No new emails found")) await sleep(50)
    const latencies: Array<number> = []
    for (let i = 0; i < idleCount; i++) {
      const [uid] = await dovecot.append([mail({ subject: `idle ${i}` })], { user })
      const arrived = Date.now()
      let committed: number | undefined
      while (committed === undefined) {
        const rows = await query<{ at: Date }>(db.url, `SELECT occurred_at AS at FROM events WHERE uid = ${uid}`)
        if (rows[0]) committed = new Date(rows[0].at).getTime()
        else await sleep(5)
      }
      latencies.push(Math.max(0, committed - arrived))
      await sleep(50)
    }
    extra.idleLatencyMs = { p50: percentile(latencies, 50), p99: percentile(latencies, 99), count: latencies.length }
    console.error(`  IDLE arrival to ticket: p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms`)
  } finally {
    child.kill("SIGTERM")
    await collect(child).catch(() => undefined)
    await db.drop()
  }
}

const main = async () => {
  const dovecot = await startDovecot({
    users: ["support@example.com", "far@example.com", "big@example.com", "idle@example.com"].map((user) => ({ user, password: "bench-pass" }))
  })
  try {
    await backlog(dovecot)
    await withLatency(dovecot)
    await bigAttachment(dovecot)
    await idleLatency(dovecot)
  } finally {
    await dovecot.stop()
  }
  console.table(rows)
  console.log(JSON.stringify({ ...extra, cpuSeconds }))
  const file = `${root}bench/results/${new Date().toISOString().replace(/[:.]/g, "-")}.json`
  await writeFile(file, JSON.stringify({ date: new Date().toISOString(), count, rows, ...extra, cpuSeconds }, null, 2))
  console.error(`written to ${file}`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
