import { describe, expect, it } from "vitest"
import { parseFetchOnly, parseWholeLoop } from "../../bench/baselines.js"
import { DEFAULT_COUNTS, DEFAULT_MAILBOXES, DEFAULT_ROUNDS, parseOnly, parseOptions, SCENARIOS } from "../../bench/options.js"

describe("the benchmark's options", () => {
  it("runs every scenario at its default size when nothing is set", () => {
    const options = parseOptions({}, [])
    expect([...options.only]).toEqual([...SCENARIOS])
    expect(options.counts).toEqual(DEFAULT_COUNTS)
    expect(options.rttMs).toBe(20)
    expect(options.main).toBeUndefined()
    expect(options.rounds).toBe(DEFAULT_ROUNDS)
  })

  it("takes the rounds from BENCH_ROUNDS or --rounds, and refuses fewer than one", () => {
    expect(parseOptions({ BENCH_ROUNDS: "1" }, []).rounds).toBe(1)
    expect(parseOptions({ BENCH_ROUNDS: "1" }, ["--rounds", "5"]).rounds).toBe(5)
    expect(() => parseOptions({ BENCH_ROUNDS: "0" }, [])).toThrow(/BENCH_ROUNDS/)
    expect(() => parseOptions({}, ["--rounds=two"])).toThrow(/--rounds/)
  })

  it("takes scenarios and sizes from the environment, and flags over it", () => {
    const options = parseOptions(
      { BENCH_ONLY: "small, replies", BENCH_SMALL_COUNT: "300", BENCH_REPLIES_COUNT: "50", BENCH_RTT_COUNT: "40" },
      ["--small-count", "200", "--rtt-count=60"]
    )
    expect([...options.only].sort()).toEqual(["replies", "small"])
    expect(options.counts.small).toBe(200)
    expect(options.counts.replies).toBe(50)
    expect(options.counts.rtt).toBe(60)
    expect(options.counts.backlog).toBe(DEFAULT_COUNTS.backlog)
  })

  it("keeps the flags the bench took before it had scenarios", () => {
    const options = parseOptions({}, ["--count", "500", "--latency-count", "30", "--only", "backlog,rtt"])
    expect(options.counts.backlog).toBe(500)
    expect(options.counts.rtt).toBe(30)
    expect([...options.only].sort()).toEqual(["backlog", "rtt"])
  })

  it("runs the mailboxes scenario only when named, sized by BENCH_MAILBOXES_*", () => {
    expect(parseOptions({}, []).only.has("mailboxes")).toBe(false)
    expect(parseOnly("all").has("mailboxes")).toBe(false)
    expect(parseOptions({}, []).mailboxes).toEqual({ ...DEFAULT_MAILBOXES, timeoutSeconds: undefined, keepDatabase: false, pollInterval: undefined, phases: new Set(["load", "cap", "takeover"]), logDir: undefined })
    const options = parseOptions({ BENCH_ONLY: "mailboxes", BENCH_MAILBOXES: "50", BENCH_MAILBOXES_MAILS: "200" }, ["--mailboxes-rate", "10"])
    expect([...options.only]).toEqual(["mailboxes"])
    expect(options.mailboxes).toEqual({ count: 50, mails: 200, rate: 10, idleSeconds: 180, timeoutSeconds: undefined, keepDatabase: false, pollInterval: undefined, phases: new Set(["load", "cap", "takeover"]), logDir: undefined })
    expect(() => parseOptions({ BENCH_MAILBOXES: "0" }, [])).toThrow(/BENCH_MAILBOXES/)
  })

  it("refuses an unknown scenario or a size that is not a whole number above 0", () => {
    expect(() => parseOnly("small,huge")).toThrow(/huge/)
    expect(() => parseOptions({ BENCH_SMALL_COUNT: "many" }, [])).toThrow(/BENCH_SMALL_COUNT/)
    expect(() => parseOptions({}, ["--replies-count", "0"])).toThrow(/--replies-count/)
  })
})

describe("the baselines' output", () => {
  it("is read from both scripts", () => {
    expect(parseFetchOnly("seed-imaplib: 500 msgs 32.1 MB in 12.52s = 40 msg/s\n")).toEqual({ messages: 500, seconds: 12.52 })
    expect(parseWholeLoop("seed-full: 6000 msgs in 19.87s = 302 msg/s\n")).toEqual({ messages: 6000, seconds: 19.87 })
    expect(() => parseWholeLoop("Traceback (most recent call last):")).toThrow(/seed_full/)
  })
})
