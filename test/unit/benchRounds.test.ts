import { describe, expect, it } from "vitest"
import { median, summarizeRounds } from "../../bench/util.js"

describe("the benchmark's rounds", () => {
  it("takes the middle value, or the mean of the two middle ones", () => {
    expect(median([])).toBeUndefined()
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
  })

  it("reads the median of the rounds' own ratios, with their lowest and highest, and the highest peak", () => {
    // Round 2 hit a slow spell: the loops ran slow beside it, so its ratios are high; the median keeps to the others.
    const summary = summarizeRounds([
      { vsFetchOnly: 0.9, vsWholeLoop: 4.2, peakRssMb: 190 },
      { vsFetchOnly: 1.3, vsWholeLoop: 6.1, peakRssMb: 185 },
      { vsFetchOnly: 0.95, vsWholeLoop: 4.4, peakRssMb: 201 }
    ])
    expect(summary).toEqual({
      rounds: 3,
      vsFetchOnly: 0.95,
      vsFetchOnlyRange: [0.9, 1.3],
      vsWholeLoop: 4.4,
      vsWholeLoopRange: [4.2, 6.1],
      peakRssMb: 201
    })
  })

  it("leaves out a ratio no round has, and has nothing to say of no rounds", () => {
    expect(summarizeRounds([{ vsFetchOnly: 7.5 }, { vsFetchOnly: 8.1 }])).toEqual({ rounds: 2, vsFetchOnly: 7.8, vsFetchOnlyRange: [7.5, 8.1] })
    expect(summarizeRounds([])).toBeUndefined()
  })
})
