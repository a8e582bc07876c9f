/**
 * What `npm run bench` runs, from the environment and the command line (a flag wins over the
 * environment): BENCH_ONLY / --only picks scenarios, BENCH_<SCENARIO>_COUNT / --<scenario>-count sizes them.
 * The opt-in scenarios (mailboxes) run only when BENCH_ONLY names them, never by default or with "all".
 */

/** The scenarios a run without BENCH_ONLY (or with BENCH_ONLY=all) runs. */
export const SCENARIOS = ["small", "backlog", "rtt", "replies", "attachment", "idle"] as const
/** Run only when named: `mailboxes` starts a thousand IMAP connections and takes minutes. */
export const OPT_IN_SCENARIOS = ["mailboxes"] as const
export type Scenario = (typeof SCENARIOS)[number] | (typeof OPT_IN_SCENARIOS)[number]
const KNOWN: ReadonlyArray<string> = [...SCENARIOS, ...OPT_IN_SCENARIOS]

/** The `mailboxes` scenario (bench/manyMailboxes.ts). */
export interface MailboxesOptions {
  /** Mailboxes (Dovecot users, one INBOX each) in the MAILBOXES_FILE: BENCH_MAILBOXES, --mailboxes. */
  readonly count: number
  /** Mails appended under load: BENCH_MAILBOXES_MAILS, --mailboxes-mails. */
  readonly mails: number
  /** Mails a second, under load and during the takeover: BENCH_MAILBOXES_RATE, --mailboxes-rate. */
  readonly rate: number
  /** Seconds of the idle sample: BENCH_MAILBOXES_IDLE_SECONDS, --mailboxes-idle-seconds. */
  readonly idleSeconds: number
  /** Seconds to wait for start-up or a takeover (120 + count/2 when unset): BENCH_MAILBOXES_TIMEOUT, --mailboxes-timeout. */
  readonly timeoutSeconds: number | undefined
  /** BENCH_MAILBOXES_KEEP_DB=1: leave the database behind, to look into what the run left. */
  readonly keepDatabase: boolean
  /** BENCH_MAILBOXES_POLL_INTERVAL: IMAP_IDLE_POLL_INTERVAL for the mailroom processes; unset: mailroom's default (600 s). */
  readonly pollInterval: number | undefined
  /** BENCH_MAILBOXES_PHASES: which of load (start-up, idle, load), cap and takeover to run; all by default. */
  readonly phases: ReadonlySet<MailboxesPhase>
  /** BENCH_MAILBOXES_LOG_DIR: a folder to write each mailroom process's output to. */
  readonly logDir: string | undefined
}

export const MAILBOXES_PHASES = ["load", "cap", "takeover"] as const
export type MailboxesPhase = (typeof MAILBOXES_PHASES)[number]

const parsePhases = (value: string | undefined): ReadonlySet<MailboxesPhase> => {
  if (value === undefined || value.trim() === "") return new Set(MAILBOXES_PHASES)
  const names = value.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0)
  const unknown = names.filter((s) => !(MAILBOXES_PHASES as ReadonlyArray<string>).includes(s))
  if (unknown.length > 0) throw new Error(`BENCH_MAILBOXES_PHASES: unknown phase(s) ${unknown.join(", ")}; known: ${MAILBOXES_PHASES.join(", ")}`)
  return new Set(names as Array<MailboxesPhase>)
}

export const DEFAULT_MAILBOXES = { count: 1_000, mails: 2_000, rate: 20, idleSeconds: 180 } as const

export interface BenchOptions {
  readonly only: ReadonlySet<Scenario>
  readonly counts: {
    readonly small: number
    readonly backlog: number
    readonly rtt: number
    readonly replies: number
    readonly idle: number
  }
  /** Round trip of the distant-server scenario, in ms (the proxy delays each way by half). */
  readonly rttMs: number
  /** The mailroom entry point: dist/main.js unless BENCH_MAIN names another build. */
  readonly main: string | undefined
  /**
   * Rounds of the small, backlog and 20 ms scenarios: each round runs both loops and then mailroom,
   * and the targets read the median of the rounds' ratios, so that one slow spell of a shared
   * machine moves one round, not the verdict.
   */
  readonly rounds: number
  readonly mailboxes: MailboxesOptions
}

export const DEFAULT_COUNTS = { small: 6_000, backlog: 10_000, rtt: 500, replies: 500, idle: 100 } as const

export const DEFAULT_ROUNDS = 3

const flag = (argv: ReadonlyArray<string>, name: string): string | undefined => {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === `--${name}`) return argv[i + 1]
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3)
  }
  return undefined
}

const wholeNumber = (value: string | undefined, fallback: number, label: string) => {
  if (value === undefined || value === "") return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${label}: expected a whole number above 0, got "${value}"`)
  return n
}

export const parseOnly = (value: string | undefined): ReadonlySet<Scenario> => {
  if (value === undefined || value.trim() === "" || value.trim() === "all") return new Set(SCENARIOS)
  const names = value.split(",").map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0)
  const unknown = names.filter((s) => !KNOWN.includes(s))
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown scenario(s) ${unknown.join(", ")}; known: ${KNOWN.join(", ")}`)
  return new Set(names as Array<Scenario>)
}

export const parseOptions = (env: NodeJS.ProcessEnv, argv: ReadonlyArray<string>): BenchOptions => {
  const count = (scenario: keyof BenchOptions["counts"], legacyFlag?: string) => {
    const name = `BENCH_${scenario.toUpperCase()}_COUNT`
    const fromFlag = flag(argv, `${scenario}-count`) ?? (legacyFlag ? flag(argv, legacyFlag) : undefined)
    return wholeNumber(fromFlag ?? env[name], DEFAULT_COUNTS[scenario], fromFlag === undefined ? name : `--${scenario}-count`)
  }
  const setting = (flagName: string, envName: string, fallback: number) => {
    const fromFlag = flag(argv, flagName)
    return wholeNumber(fromFlag ?? env[envName], fallback, fromFlag === undefined ? envName : `--${flagName}`)
  }
  return {
    only: parseOnly(flag(argv, "only") ?? env.BENCH_ONLY),
    counts: {
      small: count("small"),
      // --count and --latency-count are the flags the bench took before it had scenarios.
      backlog: count("backlog", "count"),
      rtt: count("rtt", "latency-count"),
      replies: count("replies"),
      idle: count("idle")
    },
    rttMs: wholeNumber(flag(argv, "rtt-ms") ?? env.BENCH_RTT_MS, 20, "BENCH_RTT_MS"),
    main: flag(argv, "main") ?? env.BENCH_MAIN,
    rounds: setting("rounds", "BENCH_ROUNDS", DEFAULT_ROUNDS),
    mailboxes: {
      count: setting("mailboxes", "BENCH_MAILBOXES", DEFAULT_MAILBOXES.count),
      mails: setting("mailboxes-mails", "BENCH_MAILBOXES_MAILS", DEFAULT_MAILBOXES.mails),
      rate: setting("mailboxes-rate", "BENCH_MAILBOXES_RATE", DEFAULT_MAILBOXES.rate),
      idleSeconds: setting("mailboxes-idle-seconds", "BENCH_MAILBOXES_IDLE_SECONDS", DEFAULT_MAILBOXES.idleSeconds),
      timeoutSeconds: (() => {
        const value = flag(argv, "mailboxes-timeout") ?? env.BENCH_MAILBOXES_TIMEOUT
        return value === undefined || value === "" ? undefined : wholeNumber(value, 0, "BENCH_MAILBOXES_TIMEOUT")
      })(),
      keepDatabase: env.BENCH_MAILBOXES_KEEP_DB === "1",
      pollInterval: env.BENCH_MAILBOXES_POLL_INTERVAL ? wholeNumber(env.BENCH_MAILBOXES_POLL_INTERVAL, 0, "BENCH_MAILBOXES_POLL_INTERVAL") : undefined,
      phases: parsePhases(env.BENCH_MAILBOXES_PHASES),
      logDir: env.BENCH_MAILBOXES_LOG_DIR || undefined
    }
  }
}
