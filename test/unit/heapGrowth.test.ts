import { describe, expect, it } from "@effect/vitest"
import { heapGrowthPercent } from "../../src/lib/HeapGrowth.js"

describe("V8's heap growth, fitted to the mailboxes watched", () => {
  it("lets one mailbox's heap grow by 150%, and a thousand's by no more than half their live heap", () => {
    expect(heapGrowthPercent(1)).toBe(150)
    expect(heapGrowthPercent(1000)).toBe(50)
  })

  it("never grows with more mailboxes, and never goes under 50%", () => {
    let before = heapGrowthPercent(1)
    for (let n = 2; n <= 5000; n++) {
      const percent = heapGrowthPercent(n)
      expect(percent).toBeLessThanOrEqual(before)
      expect(percent).toBeGreaterThanOrEqual(50)
      before = percent
    }
  })
})
