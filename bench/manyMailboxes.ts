/**
 * The `mailboxes` scenario (BENCH_ONLY=mailboxes; never part of the default run): one long-running
 * `node dist/main.js` watching N mailboxes listed in a MAILBOXES_FILE, one IMAP connection with IDLE
 * each, against a Dovecot of N users whose process and client limits are raised for it.
 *
 * 1. Dovecot with N users (u0001@example.com …, one password), limits raised (DOVECOT_LIMITS).
 * 2. A MAILBOXES_FILE (JSON) listing every account's INBOX, checked against src/config/MailboxesFile.ts.
 * 3. Start-up: spawn to a cursor for every mailbox (`cursors`), and to a lock for every mailbox.
 * 4. Idle: RSS and CPU of the process over BENCH_MAILBOXES_IDLE_SECONDS with no mail.
 * 5. Load: M mails appended to random mailboxes at R a second; arrival (APPEND answered) to the
 *    intake event, by (mailbox, uid) since the event's personal fields are sealed; none lost, none doubled.
 * 6. Cap: two processes with MAX_MAILBOXES_PER_PROCESS = ⌈N/2⌉ split the N between them.
 *    Takeover: a leader of all N and an uncapped standby; kill -9 the leader while mail keeps
 *    arriving; time until the survivor leads all N; nothing appended meanwhile lost or doubled.
 *
 * Sizes: BENCH_MAILBOXES (N, 1,000), BENCH_MAILBOXES_MAILS (M, 2,000), BENCH_MAILBOXES_RATE (R, 20 a
 * second), BENCH_MAILBOXES_IDLE_SECONDS (180: V8 collects an idle heap about a minute after
 * start-up), BENCH_MAILBOXES_TIMEOUT (seconds to wait for start-up or a takeover; 120 + N/2 by
 * default), or --mailboxes N, --mailboxes-mails M and so on.
 *
 * `node --import tsx bench/manyMailboxes.ts --preflight [N]` checks steps 1 and 2 alone, without
 * mailroom: the Dovecot of N users takes N concurrent IMAP logins that each SELECT INBOX and IDLE,
 * and tells each of them about new mail (add --default-limits to see Dovecot's defaults refuse).
 */
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import { appendFile, readdir, readFile, writeFile } from "node:fs/promises"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { Either } from "effect"
import { ImapFlow } from "imapflow"
import { mailboxKey } from "../src/config/Mailboxes.js"
import { decodeFile } from "../src/config/MailboxesFile.js"
import { lockKey } from "../src/mailbox/Leadership.js"
import { childEnv } from "../test/support/cli.js"
import type { Dovecot } from "../test/support/dovecot.js"
import { freePort, startDovecot } from "../test/support/dovecot.js"
import { mail } from "../test/support/mails.js"
import { createDatabase, query, querySession } from "../test/support/postgres.js"
import type { CpuSeconds } from "./cpu.js"
import { dovecotMaster, meterCpu } from "./cpu.js"
import type { MailboxesOptions } from "./options.js"
import { freshDir, percentile, sleep } from "./util.js"

const PASSWORD = "bench-pass"
const PASSWORD_ENV = "BENCH_PW"
const CAP_SETTING = "MAX_MAILBOXES_PER_PROCESS"
const TICKS_PER_SECOND = 100
/** Idle samples are a second apart; the settled figure is the mean of the last 30. */
const SETTLED_SAMPLES = 30

/**
 * Dovecot 2.3's defaults refuse a thousand IMAP connections from one client: imap-login runs one
 * process per connection (service_count = 1) with at most default_process_limit (100) of them, and
 * every imap process's connections to log, anvil, stats and auth count against default_client_limit
 * (1,000). Appended to startDovecot's dovecot.conf: Dovecot merges a second `service` block of the
 * same name into the first, and a later setting wins. mail_max_userip_connections (100) is per user
 * and IP, and each user here has one connection (two for a moment during a takeover).
 */
export const DOVECOT_LIMITS = {
  // The test fixture says "still here" to every IDLE client each second (tests watch for stalls);
  // Dovecot's default is every 2 minutes, and at a thousand clients the fixture's would be a
  // thousand responses a second for mailroom to parse.
  imap_idle_notify_interval: "2 mins",
  default_process_limit: 4096,
  default_client_limit: 20000,
  "service imap-login": { service_count: 0, process_min_avail: availableParallelism(), client_limit: 4096, process_limit: 64 },
  "service imap": { process_limit: 4096 }
} as const

const limitsConfig = () =>
  "\n# bench/manyMailboxes.ts: room for thousands of IMAP connections from one client\n" +
  Object.entries(DOVECOT_LIMITS).map(([name, value]) =>
    typeof value === "object"
      ? `${name} {\n${Object.entries(value).map(([k, v]) => `  ${k} = ${v}`).join("\n")}\n}`
      : `${name} = ${value}`
  ).join("\n") + "\n"

/**
 * Dovecot tells an IDLE client about new mail through inotify, one inotify instance per imap process,
 * all of them under the one mail user: past fs.inotify.max_user_instances (128 by default) it logs
 * "Inotify instance limit … exceeded, disabling" and looks only every mailbox_idle_check_interval
 * (30 s). The bench does not change the kernel's limit; short of room (2N + 64: a takeover briefly
 * has both processes' connections), it has Dovecot look every second instead, and says so.
 */
export const inotifyRoom = async (n: number) => {
  const limit = Number((await readFile("/proc/sys/fs/inotify/max_user_instances", "utf8").catch(() => "0")).trim())
  const needed = 2 * n + 64
  return { limit, needed, enough: limit >= needed }
}

const IDLE_FALLBACK = "mailbox_idle_check_interval = 1 secs"

export const userName = (i: number, n: number) => `u${String(i + 1).padStart(Math.max(4, String(n).length), "0")}@example.com`

/** Dovecot with `n` users sharing one password (one passwd-file, written at once), its limits raised. */
export const startManyDovecot = async (n: number, options: { readonly limits?: boolean } = {}) => {
  const users = Array.from({ length: n }, (_, i) => userName(i, n))
  const inotify = await inotifyRoom(n)
  const dovecot = await startDovecot({ users: users.map((user) => ({ user, password: PASSWORD })) })
  try {
    await appendFile(join(dovecot.baseDir, "dovecot.conf"), (options.limits === false ? "\n" : limitsConfig()) + (inotify.enough ? "" : `${IDLE_FALLBACK}\n`))
    await dovecot.restart()
  } catch (error) {
    await dovecot.stop()
    throw error
  }
  return { dovecot, users, inotify }
}

const inotifyLine = (inotify: Awaited<ReturnType<typeof inotifyRoom>>) =>
  inotify.enough
    ? `fs.inotify.max_user_instances ${inotify.limit} ≥ ${inotify.needed}: IDLE news by inotify`
    : `WARNING: fs.inotify.max_user_instances is ${inotify.limit}, under the ${inotify.needed} this needs: Dovecot falls back to ` +
      `looking every second (${IDLE_FALLBACK}), which adds up to 1 s to arrival-to-ticket; as root: sysctl -w fs.inotify.max_user_instances=${inotify.needed}`

/** The MAILBOXES_FILE for `users`' INBOXes, checked against mailroom's own loader before use. */
export const writeMailboxesFile = async (path: string, users: ReadonlyArray<string>, port: number) => {
  const file = {
    mailboxes: users.map((address) => ({
      address,
      imap: { host: "127.0.0.1", port, tls: false },
      auth: { password_env: PASSWORD_ENV },
      folders: ["INBOX"]
    }))
  }
  const decoded = decodeFile(path, file)
  if (Either.isLeft(decoded)) throw new Error(`the bench's MAILBOXES_FILE is not what mailroom reads: ${decoded.left.message}`)
  await writeFile(path, JSON.stringify(file, null, 1) + "\n")
  return users.map((user) => mailboxKey(user, "INBOX"))
}

// ---------------------------------------------------------------------------------------------
// /proc

interface ProcStat {
  readonly ppid: number
  readonly ticks: number
  readonly rssKb: number
}

const procStats = async (): Promise<Map<number, ProcStat>> => {
  const stats = new Map<number, ProcStat>()
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => undefined)
    if (!stat) continue
    // After "(comm) ": state, ppid, …; utime and stime are the 12th and 13th, rss (pages) the 22nd.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number)
    stats.set(Number(name), { ppid: fields[1]!, ticks: fields[11]! + fields[12]!, rssKb: fields[21]! * 4 })
  }
  return stats
}

/** CPU ticks and RSS of `pid` and everything under it (mailroom's parser is a thread, but to be sure). */
const treeUsage = async (pid: number) => {
  const stats = await procStats()
  let ticks = 0
  let rssKb = 0
  const stack = [pid]
  const seen = new Set<number>()
  while (stack.length > 0) {
    const p = stack.pop()!
    if (seen.has(p)) continue
    seen.add(p)
    const s = stats.get(p)
    if (!s) continue
    ticks += s.ticks
    rssKb += s.rssKb
    for (const [child, c] of stats) if (c.ppid === p) stack.push(child)
  }
  return { ticks, rssMb: rssKb / 1024, alive: stats.has(pid) }
}

/** RSS of `pid` once a second until `during` settles: the most it reached meanwhile (VmHWM counts start-up too). */
const maxRssDuring = async (pid: number, during: Promise<unknown>) => {
  let done = false
  void during.finally(() => (done = true)).catch(() => undefined)
  let max = 0
  while (!done) {
    max = Math.max(max, (await treeUsage(pid)).rssMb)
    await Promise.race([sleep(1_000), during.catch(() => undefined)])
  }
  return Math.max(max, (await treeUsage(pid)).rssMb)
}

/** The most RSS `pid` has had since it started (VmHWM). */
const peakRssMb = async (pid: number) => {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "")
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
}

// ---------------------------------------------------------------------------------------------
// mailroom processes

interface Mailroom {
  readonly child: ChildProcess
  readonly pid: number
  readonly label: string
  readonly started: number
  /** The last 20 kB of its stderr and stdout. */
  output(): string
  exited(): boolean
  stop(): Promise<void>
  kill9(): Promise<void>
}

const startMailroom = (main: string, root: string, label: string, env: Record<string, string>, logDir: string | undefined): Mailroom => {
  const child = spawn(process.execPath, [main], { env: childEnv(env), cwd: root, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  const logFile = logDir === undefined ? undefined : join(logDir, `mailroom-${label}-${child.pid}.log`)
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000)
    if (logFile) void appendFile(logFile, chunk).catch(() => undefined)
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  let done = false
  const exit = new Promise<void>((resolve) => child.once("exit", () => {
    done = true
    resolve()
  }))
  const end = async (signal: NodeJS.Signals, graceMs: number) => {
    if (done) return
    child.kill(signal)
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
    await exit
    clearTimeout(timer)
  }
  return {
    child,
    pid: child.pid!,
    label,
    started: performance.now(),
    output: () => output,
    exited: () => done,
    stop: () => end("SIGTERM", 30_000),
    kill9: () => end("SIGKILL", 5_000)
  }
}

const died = (m: Mailroom) =>
  new Error(`mailroom ${m.label} (pid ${m.pid}) exited (code ${m.child.exitCode}, signal ${m.child.signalCode}); its last output:\n${m.output().slice(-3000)}`)

/** Polls `check` every `everyMs` until it returns a value, a process exits, or the deadline passes. */
const until = async <A>(what: string, timeoutMs: number, watched: ReadonlyArray<Mailroom>, check: () => Promise<A | undefined>, everyMs = 100) => {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    for (const m of watched) if (m.exited()) throw died(m)
    const value = await check()
    if (value !== undefined) return value
    if (performance.now() > deadline) {
      throw new Error(`${what}: not within ${Math.round(timeoutMs / 1000)} s\n${watched.map((m) => `--- ${m.label} (pid ${m.pid}):\n${m.output().slice(-2000)}`).join("\n")}`)
    }
    await sleep(everyMs)
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/**
 * Mailbox locks held, by mailroom pid: pg_locks joined to the session's application_name
 * (`mailroom <host>/<pid>`), only the keys of this bench's mailboxes (lockKey). A bigint key shows
 * in pg_locks as classid (high 32 bits) and objid (low 32 bits).
 */
const leaders = async (url: string, keys: ReadonlySet<string>) => {
  const rows = await query<{ app: string | null; key: string }>(url, `
    SELECT a.application_name AS app, ((l.classid::bigint << 32) | l.objid::bigint)::text AS key
    FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
  const byPid = new Map<number, number>()
  let total = 0
  for (const row of rows) {
    if (!keys.has(row.key)) continue
    const pid = Number(/\/(\d+)$/.exec(row.app ?? "")?.[1] ?? -1)
    byPid.set(pid, (byPid.get(pid) ?? 0) + 1)
    total += 1
  }
  return { total, byPid }
}

/** Before mailroom's migrations have run, its tables are not there yet: nothing to count. */
const missingTable = (error: unknown) => /does not exist/.test(String((error as { cause?: unknown }).cause ?? error))

/**
 * The bench's own questions asked many times a second, on one connection: a connection per poll
 * started a PostgreSQL backend each time, about a fifth of a core beside the measured process.
 */
type Probe = ReturnType<typeof querySession>

const cursorCount = async (probe: Probe) =>
  probe.query<{ n: string }>("SELECT count(*) AS n FROM cursors").then(
    (rows) => Number(rows[0]?.n ?? 0),
    (error) => {
      if (missingTable(error)) return 0
      throw error
    }
  )

/**
 * Samples the process's PostgreSQL sessions every second while `during` runs: how many, and how many
 * busy at the sampling instant (active, or in a transaction), waiting on a lock among them.
 */
const sampleSessions = async <A>(url: string, pid: number, during: Promise<A>) => {
  const samples: Array<{ total: number; busy: number; waiting: number }> = []
  let done = false
  void during.finally(() => (done = true)).catch(() => undefined)
  while (!done) {
    const rows = await query<{ total: string; busy: string; waiting: string }>(url, `
      SELECT count(*)::text AS total,
        count(*) FILTER (WHERE state <> 'idle')::text AS busy,
        count(*) FILTER (WHERE wait_event_type = 'Lock')::text AS waiting
      FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'mailroom %/${pid}'`).catch(() => [])
    const r = rows[0]
    if (r) samples.push({ total: Number(r.total), busy: Number(r.busy), waiting: Number(r.waiting) })
    await Promise.race([sleep(1_000), during.catch(() => undefined)])
  }
  const mean = (f: (s: (typeof samples)[number]) => number) => samples.length ? round(samples.reduce((a, s) => a + f(s), 0) / samples.length, 1) : 0
  return {
    sessionsMax: samples.length ? Math.max(...samples.map((s) => s.total)) : 0,
    busyMean: mean((s) => s.busy),
    busyMax: samples.length ? Math.max(...samples.map((s) => s.busy)) : 0,
    waitingOnLockMean: mean((s) => s.waiting)
  }
}

/**
 * Mailboxes the process on `healthPort` stands by for, from its /metrics (mailroom_mailboxes, set by
 * its health sweep every second). Not from mailbox_health: a standby's row never hides the leader's.
 */
const standingBy = async (healthPort: number) => {
  const text = await fetch(`http://127.0.0.1:${healthPort}/metrics`).then((response) => response.text(), () => "")
  return Number(/^mailroom_mailboxes\{role="standby"\} (\d+)$/m.exec(text)?.[1] ?? 0)
}

/** Whether a mailroom process has a session on the database yet. */
const hasSession = async (url: string, pid: number) =>
  (await query<{ n: string }>(url, `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'mailroom %/${pid}'`))[0]
    ?.n !== "0"

interface Intake {
  readonly seq: string
  readonly uidvalidity: string | null
  readonly type: string
  readonly occurredAt: number
  /** When the bench first saw the row: the commit happened no later. */
  readonly observedAt: number
}

/** Follows the intake events as they are committed, by `mailbox \0 uid`. */
const followIntake = (session: Probe, everyMs = 50) => {
  const seen = new Map<string, Array<Intake>>()
  const seqs = new Set<string>()
  let repeated = 0
  let last = "0"
  let running = true
  let failure: unknown
  const poll = async () => {
    const rows = await session.query<{ seq: string; mailbox: string; uidvalidity: string | null; uid: string | null; type: string; at: number | string }>(`
      SELECT seq::text AS seq, mailbox, uidvalidity::text AS uidvalidity, uid::text AS uid, type, (extract(epoch FROM occurred_at) * 1000)::float8 AS at
      FROM events WHERE seq > ${last} AND type IN ('EmailReceived', 'EmailDuplicate', 'EmailQuarantined') ORDER BY seq`)
    const observedAt = Date.now()
    for (const row of rows) {
      last = row.seq
      // Timing only: lost and doubled are counted in the database itself (intakeCounts).
      if (seqs.has(row.seq)) {
        repeated += 1
        continue
      }
      seqs.add(row.seq)
      const id = `${row.mailbox}\0${row.uid}`
      seen.set(id, [...(seen.get(id) ?? []), { seq: row.seq, uidvalidity: row.uidvalidity, type: row.type, occurredAt: Number(row.at), observedAt }])
    }
  }
  const loop = (async () => {
    while (running) {
      await poll().catch((error) => {
        if (!missingTable(error)) failure = error
      })
      await sleep(everyMs)
    }
    await poll().catch((error) => {
      if (!missingTable(error)) failure = error
    })
  })()
  return {
    seen,
    failure: () => failure,
    repeated: () => repeated,
    stop: async () => {
      running = false
      await loop
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Mail

interface Appended {
  readonly key: string
  readonly user: string
  readonly uid: number
  /** Before the APPEND's connection was opened. */
  readonly sentAt: number
  /** When dovecot.append returned: the APPEND answered, plus the LOGOUT round trip. */
  readonly arrivedAt: number
}

let sequence = 0
const stamp = `${process.pid}.${Date.now().toString(36)}`

/**
 * Appends one mail after another to random mailboxes at `perSecond`, on a fixed schedule (a slow
 * APPEND does not push the next ones back), until `stop()` or `count` mails.
 */
const appendAtRate = (dovecot: Dovecot, users: ReadonlyArray<string>, perSecond: number, count = Number.POSITIVE_INFINITY) => {
  const appended: Array<Appended> = []
  const failures: Array<string> = []
  const inFlight = new Set<Promise<void>>()
  let stopping = false
  const one = async (user: string) => {
    const n = ++sequence
    const raw = mail({ to: user, from: `Customer ${n} <c${n}@customer.test>`, subject: `mailboxes bench ${n}`, messageId: `<mb${n}.${stamp}@customer.test>` })
    const sentAt = Date.now()
    try {
      const [uid] = await dovecot.append([raw], { user })
      if (uid === undefined) throw new Error("Dovecot gave no UID (APPENDUID)")
      appended.push({ key: mailboxKey(user, "INBOX"), user, uid, sentAt, arrivedAt: Date.now() })
    } catch (error) {
      failures.push(`${user}: ${String(error)}`)
    }
  }
  const started = performance.now()
  const done = (async () => {
    for (let i = 0; i < count && !stopping; i++) {
      const due = started + (i * 1000) / perSecond
      const wait = due - performance.now()
      if (wait > 0) await sleep(wait)
      if (stopping) break
      const p = one(users[Math.floor(Math.random() * users.length)]!)
      inFlight.add(p)
      void p.finally(() => inFlight.delete(p))
    }
    await Promise.all([...inFlight])
    return (performance.now() - started) / 1000
  })()
  return {
    appended,
    failures,
    done,
    stop: async () => {
      stopping = true
      return done
    }
  }
}

/** Every intake event in the database by `mailbox \0 uid`: the types, in commit order. */
const intakeCounts = async (url: string) => {
  const rows = await query<{ mailbox: string; uid: string | null; types: Array<string> }>(url, `
    SELECT mailbox, uid::text AS uid, array_agg(type || ' (uidvalidity ' || coalesce(uidvalidity::text, '-') || ', seq ' || seq || ')' ORDER BY seq) AS types
    FROM events WHERE type IN ('EmailReceived', 'EmailDuplicate', 'EmailQuarantined') GROUP BY mailbox, uid`)
  return new Map(rows.map((row) => [`${row.mailbox}\0${row.uid}`, row.types]))
}

/**
 * Until every mail has its event; gives up when none more arrived for `quietMs` (longer than the
 * poll interval: a mail IDLE did not announce is still taken on the next pass), or at `timeoutMs`.
 * Returns the seconds from the last APPEND to the last of them ingested (or to giving up).
 */
const waitIngested = async (mails: ReadonlyArray<Appended>, seen: Map<string, Array<Intake>>, quietMs: number, timeoutMs: number) => {
  const lastAppend = mails.reduce((a, m) => Math.max(a, m.arrivedAt), 0)
  const deadline = performance.now() + timeoutMs
  let missing = Number.POSITIVE_INFINITY
  let progressAt = performance.now()
  while (performance.now() < deadline) {
    const now = mails.filter((m) => !seen.has(`${m.key}\0${m.uid}`)).length
    if (now === 0) {
      const lastIngested = mails.reduce((a, m) => Math.max(a, seen.get(`${m.key}\0${m.uid}`)![0]!.observedAt), 0)
      return round((lastIngested - lastAppend) / 1000, 1)
    }
    if (now < missing) {
      missing = now
      progressAt = performance.now()
    } else if (performance.now() - progressAt > quietMs) break
    await sleep(200)
  }
  return round((Date.now() - lastAppend) / 1000, 1)
}

const cursorsOf = async (url: string) =>
  new Map((await query<{ mailbox: string; last_uid: string }>(url, "SELECT mailbox, last_uid::text AS last_uid FROM cursors")).map((r) => [r.mailbox, Number(r.last_uid)]))

interface Outcome {
  readonly appended: number
  readonly received: number
  /** Appended, no intake event when the bench stopped waiting (the poll interval and 30 s without one arriving). */
  readonly missing: number
  /** Of those, the ones whose mailbox's cursor has passed their UID: taken for done, and never recorded. */
  readonly lost: number
  /** From the last APPEND to the last mail ingested (or to giving up), in seconds. */
  readonly drainSeconds: number
  /** More than one intake event for one (mailbox, uid). */
  readonly doubled: number
  /** EmailDuplicate or EmailQuarantined instead of EmailReceived. */
  readonly notReceived: number
  /** APPEND answered to the event's occurred_at (set by mailroom just before its commit), in ms. */
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number }
  /** APPEND answered to the bench seeing the committed row (polled every 50 ms): an upper bound. */
  readonly observedMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly appendMs: { readonly p50: number; readonly p99: number }
  readonly appendFailures: number
  readonly examples: ReadonlyArray<string>
}

const stats = (values: ReadonlyArray<number>) => ({ p50: percentile(values, 50), p99: percentile(values, 99), max: values.length ? Math.max(...values) : 0 })

const judge = (
  mails: ReadonlyArray<Appended>,
  seen: Map<string, Array<Intake>>,
  inDatabase: Map<string, ReadonlyArray<string>>,
  cursors: Map<string, number>,
  drainSeconds: number,
  appendFailures: number
): Outcome => {
  let missing = 0
  let lost = 0
  let doubled = 0
  let notReceived = 0
  const latencies: Array<number> = []
  const observed: Array<number> = []
  const examples: Array<string> = []
  for (const m of mails) {
    const types = inDatabase.get(`${m.key}\0${m.uid}`) ?? []
    if (types.length === 0) {
      missing += 1
      const passed = (cursors.get(m.key) ?? 0) >= m.uid
      if (passed) lost += 1
      if (examples.length < 5) examples.push(`${passed ? "lost (the cursor passed it)" : "missing (the cursor is below it)"}: ${m.key} uid ${m.uid}`)
      continue
    }
    if (types.length > 1) {
      doubled += 1
      if (examples.length < 5) examples.push(`doubled: ${m.key} uid ${m.uid}: ${types.join("; ")}`)
    }
    if (types.some((t) => !t.startsWith("EmailReceived "))) {
      notReceived += 1
      if (examples.length < 5) examples.push(`not received: ${m.key} uid ${m.uid}: ${types.join("; ")}`)
    }
    const found = seen.get(`${m.key}\0${m.uid}`) ?? []
    if (found.length === 0) continue
    latencies.push(Math.max(0, Math.round(found[0]!.occurredAt - m.arrivedAt)))
    observed.push(Math.max(0, Math.round(found[0]!.observedAt - m.arrivedAt)))
  }
  return {
    appended: mails.length,
    received: mails.length - missing,
    missing,
    lost,
    drainSeconds,
    doubled,
    notReceived,
    latencyMs: stats(latencies),
    observedMs: stats(observed),
    appendMs: (({ p50, p99 }) => ({ p50, p99 }))(stats(mails.map((m) => m.arrivedAt - m.sentAt))),
    appendFailures,
    examples
  }
}

/** For the mailboxes with mail missing: their cursor and health row, and what the process said about them. */
const explainLost = async (url: string, mails: ReadonlyArray<Appended>, inDatabase: Map<string, ReadonlyArray<string>>, m: Mailroom, log: (line: string) => void) => {
  const missing = new Map<string, Array<number>>()
  for (const mail of mails) if (!inDatabase.has(`${mail.key}\0${mail.uid}`)) missing.set(mail.key, [...(missing.get(mail.key) ?? []), mail.uid])
  const keys = [...missing.keys()].slice(0, 5)
  const list = keys.map((k) => `'${k.replace(/'/g, "''")}'`).join(", ")
  const cursors = await query<{ mailbox: string; last_uid: string; updated_at: Date }>(url, `SELECT mailbox, last_uid::text AS last_uid, updated_at FROM cursors WHERE mailbox IN (${list})`).catch(() => [])
  const health = await query<{ mailbox: string; instance: string; state: string; logins: string; last_error: string | null; updated_at: Date }>(
    url,
    `SELECT mailbox, instance, state, logins::text AS logins, last_error, updated_at FROM mailbox_health WHERE mailbox IN (${list})`
  ).catch(() => [])
  log(`    ${missing.size} mailboxes with mail missing; the first ${keys.length}:`)
  for (const key of keys) {
    const c = cursors.find((r) => r.mailbox === key)
    const h = health.find((r) => r.mailbox === key)
    log(`      ${key}: missing uids ${missing.get(key)!.join(",")}; cursor last_uid ${c?.last_uid ?? "-"} (${c ? new Date(c.updated_at).toISOString() : "-"}); ` +
      `health ${h ? `${h.state} by ${h.instance}, ${h.logins} logins, ${new Date(h.updated_at).toISOString()}${h.last_error ? `, last error: ${h.last_error}` : ""}` : "-"}`)
    const said = m.output().split("\n").filter((line) => line.includes(key)).slice(-3)
    for (const line of said) log(`        ${m.label}: ${line.slice(0, 300)}`)
  }
}

// ---------------------------------------------------------------------------------------------
// The scenario

export interface MailboxesResult {
  readonly mailboxes: number
  readonly mails: number
  readonly ratePerSec: number
  readonly pollInterval: string
  readonly dovecotLimits: typeof DOVECOT_LIMITS
  inotify?: { readonly limit: number; readonly needed: number; readonly enough: boolean; readonly fallback: string | null }
  startup?: { readonly seconds: number; readonly firstCursorSeconds: number; readonly leadingAllSeconds: number; readonly rssMb: number }
  idle?: {
    readonly seconds: number
    readonly rssMb: number
    readonly rssMaxMb: number
    /** The mean of the window's last 30 s: once V8's idle collection has run, what an idle process keeps. */
    readonly rssSettledMb: number
    readonly cpuPercentOfCore: number
    readonly postgresCpuPercentOfCore: number
    readonly dovecotCpuPercentOfCore: number
    readonly cpu: CpuSeconds
  }
  load?: Outcome & {
    readonly seconds: number
    /** Since the process started, start-up included. */
    readonly peakRssMb: number
    /** Sampled once a second while the mail arrived. */
    readonly rssMaxMb: number
    readonly cpuPercentOfCore: number
    readonly othersPercentOfCore: { readonly postgres: number; readonly dovecot: number; readonly bench: number }
    readonly database: { readonly sessionsMax: number; readonly busyMean: number; readonly busyMax: number; readonly waitingOnLockMean: number }
  }
  cap?: {
    readonly cap: number
    readonly split: ReadonlyArray<number>
    readonly together: number
    readonly seconds: number
    readonly honoured: boolean
  }
  takeover?: {
    readonly ledBefore: number
    /** C2's database session to its standing by for every mailbox. */
    readonly standbyWarmSeconds: number
    /** kill -9 to the dead process's locks gone from pg_locks. */
    readonly locksFreedSeconds: number
    /** kill -9 to the survivor holding every mailbox's lock. */
    readonly seconds: number
    /** kill -9 to the last mail appended before the survivor led all being ingested. */
    readonly caughtUpSeconds: number
    readonly appendedDuring: number
    readonly survivorPeakRssMb: number
    readonly outcome: Outcome
  }
  error?: string
}

export interface MailboxesContext {
  readonly options: MailboxesOptions
  readonly main: string
  readonly root: string
  readonly log: (line: string) => void
}

const round = (n: number, digits = 2) => Number(n.toFixed(digits))

export const manyMailboxes = async (ctx: MailboxesContext): Promise<MailboxesResult> => {
  const { options, main, root, log } = ctx
  const n = options.count
  const timeoutMs = (options.timeoutSeconds ?? 120 + n / 2) * 1000
  const quietMs = ((options.pollInterval ?? 600) + 30) * 1000
  const result: MailboxesResult = {
    mailboxes: n,
    mails: options.mails,
    ratePerSec: options.rate,
    pollInterval: options.pollInterval === undefined
      ? "IMAP_IDLE_POLL_INTERVAL unset (600 s): passes on IDLE news, and a backstop pass per mailbox after 10 minutes without one"
      : `IMAP_IDLE_POLL_INTERVAL=${options.pollInterval}: passes on IDLE news, and a backstop pass per mailbox after ${options.pollInterval} s without one`,
    dovecotLimits: DOVECOT_LIMITS
  }
  log(`mailboxes: Dovecot with ${n} users, limits raised (${limitsConfig().trim().split("\n").slice(1).join(" ").replace(/\s+/g, " ")})`)
  const setupStarted = performance.now()
  const { dovecot, users, inotify } = await startManyDovecot(n)
  result.inotify = { ...inotify, fallback: inotify.enough ? null : IDLE_FALLBACK }
  log(`  ${inotifyLine(inotify)}`)
  const master = await dovecotMaster(dovecot.baseDir)
  const dir = await freshDir()
  const db = await createDatabase("bench_mailboxes")
  const running: Array<Mailroom> = []
  const probe = querySession(db.url)
  const intake = followIntake(probe)
  try {
    const file = join(dir.path, "mailboxes.json")
    const keys = await writeMailboxesFile(file, users, dovecot.port)
    const lockKeys = new Set(keys.map(lockKey))
    log(`  Dovecot up in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s; MAILBOXES_FILE ${file} (${n} accounts × [INBOX])`)
    const env = (cap?: number): Record<string, string> => ({
      DATABASE_URL: db.url,
      AGENT: "off",
      IMAP_BACKFILL: "none",
      MAILBOXES_FILE: file,
      [PASSWORD_ENV]: PASSWORD,
      LOG_LEVEL: "warning",
      ...(options.pollInterval === undefined ? {} : { IMAP_IDLE_POLL_INTERVAL: String(options.pollInterval) }),
      ...(cap === undefined ? {} : { [CAP_SETTING]: String(cap) })
    })
    const launch = (label: string, cap?: number, extra: Record<string, string> = {}) => {
      const m = startMailroom(main, root, label, { ...env(cap), ...extra }, options.logDir)
      running.push(m)
      return m
    }
    const stopAll = async () => {
      await Promise.all(running.splice(0).map((m) => m.stop()))
    }

    if (options.phases.has("load")) {
      // 3. Start-up.
      const first = launch("A")
      const firstCursor = await until("a first cursor", timeoutMs, [first], async () => (await cursorCount(probe)) > 0 ? performance.now() : undefined, 50)
      const allCursors = await until(`a cursor for all ${n} mailboxes`, timeoutMs, [first], async () =>
        (await cursorCount(probe)) >= n ? performance.now() : undefined, 200)
      const leadingAll = await until(`A leading all ${n}`, timeoutMs, [first], async () =>
        (await leaders(db.url, lockKeys)).byPid.get(first.pid) === n ? performance.now() : undefined, 200)
      result.startup = {
        seconds: round((allCursors - first.started) / 1000),
        firstCursorSeconds: round((firstCursor - first.started) / 1000),
        leadingAllSeconds: round((leadingAll - first.started) / 1000),
        rssMb: Math.round((await treeUsage(first.pid)).rssMb)
      }
      log(`  start-up: a cursor for all ${n} mailboxes ${result.startup.seconds} s after spawn (first ${result.startup.firstCursorSeconds} s, every lock ${result.startup.leadingAllSeconds} s), RSS ${result.startup.rssMb} MB`)

      // 4. Idle.
      await sleep(5_000)
      const idleStart = await treeUsage(first.pid)
      const idleMeter = await meterCpu(master === undefined ? {} : { dovecotMaster: master })
      const idleT0 = performance.now()
      const rss: Array<number> = []
      while (performance.now() - idleT0 < options.idleSeconds * 1000) {
        await sleep(1_000)
        if (first.exited()) throw died(first)
        rss.push((await treeUsage(first.pid)).rssMb)
      }
      const idleEnd = await treeUsage(first.pid)
      const idleCpu = await idleMeter()
      const idleSeconds = (performance.now() - idleT0) / 1000
      const percent = (seconds: number) => round((seconds / idleSeconds) * 100, 1)
      result.idle = {
        seconds: round(idleSeconds, 1),
        rssMb: Math.round(rss.reduce((a, b) => a + b, 0) / rss.length),
        rssMaxMb: Math.round(Math.max(...rss)),
        rssSettledMb: Math.round(rss.slice(-SETTLED_SAMPLES).reduce((a, b) => a + b, 0) / Math.min(rss.length, SETTLED_SAMPLES)),
        cpuPercentOfCore: percent((idleEnd.ticks - idleStart.ticks) / TICKS_PER_SECOND),
        postgresCpuPercentOfCore: percent(idleCpu.postgres),
        dovecotCpuPercentOfCore: percent(idleCpu.dovecot),
        cpu: idleCpu
      }
      log(`  idle ${result.idle.seconds} s: RSS ${result.idle.rssMb} MB (max ${result.idle.rssMaxMb}, last 30 s ${result.idle.rssSettledMb}), CPU ${result.idle.cpuPercentOfCore}% of a core ` +
        `(PostgreSQL ${result.idle.postgresCpuPercentOfCore}%, Dovecot ${result.idle.dovecotCpuPercentOfCore}%)`)

      // 5. Load.
      log(`  load: ${options.mails} mails to random mailboxes at ${options.rate}/s`)
      const loadStart = await treeUsage(first.pid)
      const loadMeter = await meterCpu(master === undefined ? {} : { dovecotMaster: master })
      const benchCpu = process.cpuUsage()
      const loading = appendAtRate(dovecot, users, options.rate, options.mails)
      const sessions = sampleSessions(db.url, first.pid, loading.done)
      const loadRss = maxRssDuring(first.pid, loading.done)
      const loadSeconds = await loading.done
      const database = await sessions
      const loadEnd = await treeUsage(first.pid)
      const loadCpu = await loadMeter()
      const benchSeconds = (({ user, system }) => (user + system) / 1e6)(process.cpuUsage(benchCpu))
      const loadDrain = await waitIngested(loading.appended, intake.seen, quietMs, timeoutMs)
      if (first.exited()) throw died(first)
      const loaded = judge(loading.appended, intake.seen, await intakeCounts(db.url), await cursorsOf(db.url), loadDrain, loading.failures.length)
      result.load = {
        ...loaded,
        seconds: round(loadSeconds),
        peakRssMb: Math.round(await peakRssMb(first.pid)),
        rssMaxMb: Math.round(await loadRss),
        cpuPercentOfCore: round(((loadEnd.ticks - loadStart.ticks) / TICKS_PER_SECOND / loadSeconds) * 100, 1),
        database,
        othersPercentOfCore: {
          postgres: round((loadCpu.postgres / loadSeconds) * 100, 1),
          dovecot: round((loadCpu.dovecot / loadSeconds) * 100, 1),
          bench: round((benchSeconds / loadSeconds) * 100, 1)
        }
      }
      log(`  load: ${loaded.received} of ${loaded.appended} received in ${result.load.seconds} s; arrival to ticket p50 ${loaded.latencyMs.p50} ms, ` +
        `p99 ${loaded.latencyMs.p99} ms, max ${loaded.latencyMs.max} ms (seen committed: p50 ${loaded.observedMs.p50}, p99 ${loaded.observedMs.p99} ms); ` +
        `missing ${loaded.missing} (lost: ${loaded.lost}), doubled ${loaded.doubled}, not EmailReceived ${loaded.notReceived}; all in ${loaded.drainSeconds} s after the last APPEND; RSS at most ${result.load.rssMaxMb} MB meanwhile (since start ${result.load.peakRssMb} MB), ` +
        `CPU ${result.load.cpuPercentOfCore}% of a core (PostgreSQL ${result.load.othersPercentOfCore.postgres}%, Dovecot ${result.load.othersPercentOfCore.dovecot}%, ` +
        `the bench itself ${result.load.othersPercentOfCore.bench}%, of ${availableParallelism()} cores)`)
      log(`  load: mailroom's PostgreSQL sessions: ${database.sessionsMax}, busy ${database.busyMean} on average (max ${database.busyMax}), ` +
        `waiting on a lock ${database.waitingOnLockMean} on average (sampled every second)`)
      if (loading.failures.length > 0) log(`  (${loading.failures.length} APPENDs failed, e.g. ${loading.failures[0]})`)
      for (const example of loaded.examples) log(`    ${example}`)
      if (loaded.missing > 0) await explainLost(db.url, loading.appended, await intakeCounts(db.url), first, log)
      await stopAll()
    }

    if (options.phases.has("cap")) {
      // 6a. Two capped processes split the mailboxes.
      const cap = Math.ceil(n / 2)
      log(`  cap: two processes with ${CAP_SETTING}=${cap}`)
      const capped = [launch("B1", cap), launch("B2", cap)]
      const capT0 = performance.now()
      let split: ReadonlyArray<number> = [0, 0]
      let capTogether = 0
      let capSeconds = Number.NaN
      const capDeadline = capT0 + timeoutMs
      while (performance.now() < capDeadline) {
        for (const m of capped) if (m.exited()) throw died(m)
        const held = await leaders(db.url, lockKeys)
        split = capped.map((m) => held.byPid.get(m.pid) ?? 0)
        capTogether = held.total
        if (capTogether >= n) {
          capSeconds = (performance.now() - capT0) / 1000
          break
        }
        await sleep(200)
      }
      // Settled: whatever moves in the next standby poll or two is counted too.
      if (capTogether >= n) {
        await sleep(5_000)
        const held = await leaders(db.url, lockKeys)
        split = capped.map((m) => held.byPid.get(m.pid) ?? 0)
        capTogether = held.total
      }
      result.cap = {
        cap,
        split,
        together: capTogether,
        seconds: round(capSeconds),
        honoured: split.every((s) => s <= cap)
      }
      log(`  cap: ${split.join(" + ")} = ${capTogether} of ${n} led${Number.isNaN(capSeconds) ? ` (not all within ${timeoutMs / 1000} s)` : ` ${result.cap.seconds} s after spawn`}; ` +
        `cap ${result.cap.honoured ? "honoured" : "NOT honoured"}`)
      await stopAll()
    }

    if (options.phases.has("takeover")) {
      // 6b. Takeover: one leads all, an uncapped standby, kill -9 the leader while mail keeps coming.
      log("  takeover: a leader of every mailbox, a standby, kill -9 the leader while mail arrives")
      const leader = launch("C1")
      await until(`C1 leading all ${n}`, timeoutMs, [leader], async () => (await leaders(db.url, lockKeys)).byPid.get(leader.pid) === n ? true : undefined, 200)
      const healthPort = await freePort()
      const standby = launch("C2", undefined, { HEALTH_PORT: String(healthPort), HEALTH_HOST: "127.0.0.1" })
      await until("C2's database session", timeoutMs, [leader, standby], async () => (await hasSession(db.url, standby.pid)) ? true : undefined, 200)
      // A warm standby: every mailbox's poller waits for its lock (C2's /metrics counts them).
      const standbyT0 = performance.now()
      await until(`C2 standing by for all ${n}`, timeoutMs, [leader, standby], async () => (await standingBy(healthPort)) >= n ? true : undefined, 500)
      const standbySeconds = round((performance.now() - standbyT0) / 1000)
      log(`  takeover: C2 standing by for all ${n} ${standbySeconds} s after its database session`)
      await sleep(5_000)
      const stillLeading = await leaders(db.url, lockKeys)
      if (stillLeading.byPid.get(leader.pid) !== n) throw new Error(`C1 leads ${stillLeading.byPid.get(leader.pid) ?? 0} of ${n} with C2 started`)
      const during = appendAtRate(dovecot, users, options.rate)
      await sleep(3_000)
      const killedAt = Date.now()
      const killT0 = performance.now()
      await leader.kill9()
      running.splice(running.indexOf(leader), 1)
      let locksFreed = Number.NaN
      let ledAll = Number.NaN
      const takeoverDeadline = killT0 + timeoutMs
      while (performance.now() < takeoverDeadline) {
        if (standby.exited()) throw died(standby)
        const held = await leaders(db.url, lockKeys)
        const now = performance.now()
        if (Number.isNaN(locksFreed) && !held.byPid.has(leader.pid)) locksFreed = (now - killT0) / 1000
        if ((held.byPid.get(standby.pid) ?? 0) >= n) {
          ledAll = (now - killT0) / 1000
          break
        }
        await sleep(100)
      }
      const ledAllAt = Date.now()
      // Mail keeps coming for a while after: the survivor must take that in too.
      await sleep(10_000)
      await during.stop()
      const takeoverDrain = await waitIngested(during.appended, intake.seen, quietMs, timeoutMs)
      const outcome = judge(during.appended, intake.seen, await intakeCounts(db.url), await cursorsOf(db.url), takeoverDrain, during.failures.length)
      const window = during.appended.filter((m) => m.arrivedAt >= killedAt && m.arrivedAt <= ledAllAt)
      const lastInWindow = window.reduce<Appended | undefined>((a, m) => (a === undefined || m.arrivedAt > a.arrivedAt ? m : a), undefined)
      const caughtUp = lastInWindow ? intake.seen.get(`${lastInWindow.key}\0${lastInWindow.uid}`)?.[0]?.observedAt : undefined
      result.takeover = {
        ledBefore: n,
        standbyWarmSeconds: standbySeconds,
        locksFreedSeconds: round(locksFreed),
        seconds: round(ledAll),
        caughtUpSeconds: caughtUp === undefined ? Number.NaN : round((caughtUp - killedAt) / 1000),
        appendedDuring: window.length,
        survivorPeakRssMb: Math.round(await peakRssMb(standby.pid)),
        outcome
      }
      log(`  takeover: kill -9 of the leader of ${n}; its locks gone after ${result.takeover.locksFreedSeconds} s, the survivor leads all ${n} after ` +
        `${Number.isNaN(ledAll) ? `(not within ${timeoutMs / 1000} s)` : `${result.takeover.seconds} s`}; the last mail appended meanwhile ingested ` +
        `${result.takeover.caughtUpSeconds} s after the kill`)
      log(`  takeover: ${outcome.received} of ${outcome.appended} mails appended around it received (${window.length} between kill and full lead); ` +
        `missing ${outcome.missing} (lost: ${outcome.lost}), doubled ${outcome.doubled}, not EmailReceived ${outcome.notReceived}; all in ${outcome.drainSeconds} s after the last APPEND; arrival to ticket p50 ${outcome.latencyMs.p50} ms, ` +
        `p99 ${outcome.latencyMs.p99} ms, max ${outcome.latencyMs.max} ms; survivor's peak RSS ${result.takeover.survivorPeakRssMb} MB`)
      for (const example of outcome.examples) log(`    ${example}`)
      if (outcome.missing > 0) await explainLost(db.url, during.appended, await intakeCounts(db.url), standby, log)
      await stopAll()
    }
    if (intake.failure()) log(`  (the event poll failed at least once: ${String(intake.failure())})`)
    if (intake.repeated() > 0) log(`  (the event poll saw ${intake.repeated()} rows a second time, and skipped them)`)
    return result
  } catch (error) {
    // What was measured so far still goes into the results, with the reason it stopped.
    result.error = error instanceof Error ? error.message : String(error)
    log(`  mailboxes: stopped: ${result.error.split("\n")[0]}`)
    throw Object.assign(error instanceof Error ? error : new Error(String(error)), { partial: result })
  } finally {
    await Promise.all(running.splice(0).map((m) => m.kill9()))
    await intake.stop().catch(() => undefined)
    await probe.close().catch(() => undefined)
    if (options.keepDatabase) log(`  (database kept: ${db.url})`)
    else await db.drop().catch(() => undefined)
    await dovecot.stop()
    await dir.remove()
  }
}

interface Target {
  readonly target: string
  readonly measured: string
  readonly met: boolean
}

/** The targets of the several-mailboxes work, measured (never asserted). */
export const mailboxesTargets = (r: MailboxesResult): Array<Target> => {
  const out: Array<Target> = []
  const n = r.mailboxes
  if (r.idle) {
    out.push({ target: `${n} mailboxes, idle from start-up on: RSS < 512 MB`, measured: `${r.idle.rssMb} MB (max ${r.idle.rssMaxMb})`, met: r.idle.rssMaxMb < 512 })
    out.push({ target: `${n} mailboxes, idle, last 30 s of ${Math.round(r.idle.seconds)}: RSS < 512 MB`, measured: `${r.idle.rssSettledMb} MB`, met: r.idle.rssSettledMb < 512 })
    out.push({ target: `${n} mailboxes, idle: CPU < 5% of a core`, measured: `${r.idle.cpuPercentOfCore}%`, met: r.idle.cpuPercentOfCore < 5 })
  }
  if (r.load) {
    out.push({
      target: `${n} mailboxes, ${r.ratePerSec} mails/s: arrival to ticket p99 < 2 s`,
      measured: `${r.load.latencyMs.p99} ms (seen committed ≤ ${r.load.observedMs.p99} ms)`,
      met: r.load.observedMs.p99 < 2000
    })
    out.push({
      target: `${n} mailboxes, ${r.ratePerSec} mails/s: RSS < 512 MB from start-up to the end of the load`,
      measured: `${r.load.peakRssMb} MB at most (${r.load.rssMaxMb} while the mail arrived)`,
      met: r.load.peakRssMb < 512
    })
    out.push({
      target: `${n} mailboxes: none lost, none doubled`,
      measured: `${r.load.missing} missing (${r.load.lost} lost), ${r.load.doubled} doubled, ${r.load.notReceived} not EmailReceived of ${r.load.appended}`,
      met: r.load.missing === 0 && r.load.doubled === 0 && r.load.notReceived === 0 && r.load.appended > 0
    })
  }
  if (r.cap) {
    const even = Math.min(...r.cap.split) >= Math.floor(n / 2) * 0.8
    out.push({
      target: `${n} mailboxes, two processes capped at ${r.cap.cap}: all led, split roughly evenly`,
      measured: `${r.cap.split.join(" + ")} = ${r.cap.together}`,
      met: r.cap.together === n && r.cap.honoured && even
    })
  }
  if (r.takeover) {
    const o = r.takeover.outcome
    out.push({ target: `${n} mailboxes: the survivor of a kill -9 leads all (time reported)`, measured: `${r.takeover.seconds} s`, met: Number.isFinite(r.takeover.seconds) })
    out.push({
      target: "takeover: none lost, none doubled",
      measured: `${o.missing} missing (${o.lost} lost), ${o.doubled} doubled, ${o.notReceived} not EmailReceived of ${o.appended}`,
      met: o.missing === 0 && o.doubled === 0 && o.notReceived === 0 && o.appended > 0
    })
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Preflight: Dovecot and the file, without mailroom

/** N concurrent logins that SELECT INBOX and IDLE; one mail to each of a few of them, told through IDLE. */
const preflight = async (n: number, limits: boolean) => {
  const log = (line: string) => console.error(line)
  const t0 = performance.now()
  const { dovecot, users, inotify } = await startManyDovecot(n, { limits })
  const master = await dovecotMaster(dovecot.baseDir)
  log(`Dovecot with ${n} users and ${limits ? "raised" : "its default"} limits up in ${((performance.now() - t0) / 1000).toFixed(1)} s (port ${dovecot.port}, master ${master})`)
  log(inotifyLine(inotify))
  const dir = await freshDir()
  const clients: Array<ImapFlow> = []
  try {
    const keys = await writeMailboxesFile(join(dir.path, "mailboxes.json"), users, dovecot.port)
    log(`MAILBOXES_FILE accepted by src/config/MailboxesFile.ts: ${keys.length} mailboxes, ${keys[0]} … ${keys.at(-1)}`)
    const told = new Map<string, number>()
    const t1 = performance.now()
    const failures: Array<string> = []
    await Promise.all(users.map(async (user) => {
      // IDLE 150 ms after the last command, as mailroom's own connections do (src/mailbox/Imap.ts).
      const c = new ImapFlow({ host: "127.0.0.1", port: dovecot.port, secure: false, auth: { user, pass: PASSWORD }, logger: false, autoIdleDelay: 150 })
      c.on("error", () => {})
      c.on("exists", () => told.set(user, Date.now()))
      try {
        await c.connect()
        await c.mailboxOpen("INBOX")
        clients.push(c)
      } catch (error) {
        failures.push(`${user}: ${String(error)}`)
      }
    }))
    log(`${clients.length} of ${n} concurrent logins with INBOX selected in ${((performance.now() - t1) / 1000).toFixed(1)} s${
      failures.length ? `; failed: ${failures.length}, e.g. ${failures[0]}` : ""
    }`)
    await sleep(3_000)
    // imapflow IDLEs on its own once a selected connection has nothing else to do.
    const idling = clients.filter((c) => (c as unknown as { idling?: boolean }).idling === true).length
    const stats = await procStats()
    const imapProcesses = [...stats.entries()].filter(([pid]) => {
      for (let p: number | undefined = pid, i = 0; p !== undefined && i < 10; p = stats.get(p)?.ppid, i++) if (p === master) return true
      return false
    }).length
    log(`${idling} of ${clients.length} connections IDLE; Dovecot runs ${imapProcesses} processes`)
    const sample = users.filter((_, i) => i % Math.max(1, Math.floor(n / 20)) === 0)
    const appendedAt = new Map<string, number>()
    for (const user of sample) {
      await dovecot.append([mail({ to: user })], { user })
      appendedAt.set(user, Date.now())
    }
    await sleep(2_500)
    const delays = sample.flatMap((u) => {
      const at = told.get(u)
      return at !== undefined && at >= appendedAt.get(u)! - 1_000 ? [Math.max(0, at - appendedAt.get(u)!)] : []
    })
    const heard = delays.length
    log(`IDLE told ${heard} of ${sample.length} mailboxes about their new mail (APPEND answered to EXISTS: p50 ${percentile(delays, 50)} ms, max ${delays.length ? Math.max(...delays) : "-"} ms)`)
    const still = clients.filter((c) => c.usable).length
    log(`${still} of ${clients.length} connections still usable`)
    const dovecotLog = await readFile(join(dovecot.baseDir, "dovecot.log"), "utf8").catch(() => "")
    // The one expected warning: the master's SIGTERM when startManyDovecot restarted it with the limits.
    // Without room for inotify, its warning is expected too: the fallback above covers it.
    const lines = dovecotLog.split("\n").filter((l) => /limit|Warning|Error|Fatal|refus/i.test(l) && !/master: Warning: Killed with signal 15/.test(l))
    const inotifyWarnings = lines.filter((l) => /Inotify instance limit/.test(l))
    const warnings = inotify.enough ? lines : lines.filter((l) => !inotifyWarnings.includes(l))
    if (!inotify.enough) log(`dovecot.log: ${inotifyWarnings.length} processes without inotify (expected: IDLE news by the 1 s fallback)`)
    log(warnings.length === 0 ? "dovecot.log: no limit warnings or errors" : `dovecot.log: ${warnings.length} warnings/errors:\n${warnings.slice(0, 10).join("\n")}`)
    const ok = failures.length === 0 && clients.length === n && idling === n && still === n && heard === sample.length && warnings.length === 0
    log(ok ? "preflight: OK" : "preflight: FAILED")
    return ok
  } finally {
    await Promise.all(clients.map((c) => c.logout().catch(() => c.close())))
    await dovecot.stop()
    await dir.remove()
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv.includes("--preflight")) {
  const n = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 1000)
  preflight(n, !process.argv.includes("--default-limits")).then((ok) => process.exit(ok ? 0 : 1), (error) => {
    console.error(error)
    process.exit(1)
  })
}
