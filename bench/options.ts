/**
 * What `npm run bench` runs, from the environment and the command line (a flag wins over the
 * environment): BENCH_ONLY / --only picks scenarios, BENCH_<SCENARIO>_COUNT / --<scenario>-count sizes them.
 */

export const SCENARIOS = ["small", "backlog", "rtt", "replies", "attachment", "idle"] as const
export type Scenario = (typeof SCENARIOS)[number]

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
}

export const DEFAULT_COUNTS = { small: 6_000, backlog: 10_000, rtt: 500, replies: 500, idle: 100 } as const

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
  const unknown = names.filter((s) => !(SCENARIOS as ReadonlyArray<string>).includes(s))
  if (unknown.length > 0) throw new Error(`BENCH_ONLY: unknown scenario(s) ${unknown.join(", ")}; known: ${SCENARIOS.join(", ")}`)
  return new Set(names as Array<Scenario>)
}

export const parseOptions = (env: NodeJS.ProcessEnv, argv: ReadonlyArray<string>): BenchOptions => {
  const count = (scenario: keyof BenchOptions["counts"], legacyFlag?: string) => {
    const name = `BENCH_${scenario.toUpperCase()}_COUNT`
    const fromFlag = flag(argv, `${scenario}-count`) ?? (legacyFlag ? flag(argv, legacyFlag) : undefined)
    return wholeNumber(fromFlag ?? env[name], DEFAULT_COUNTS[scenario], fromFlag === undefined ? name : `--${scenario}-count`)
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
    main: flag(argv, "main") ?? env.BENCH_MAIN
  }
}
