import { describe, expect, it } from "vitest"
import { boundedMemo } from "../../src/lib/BoundedMemo.js"

/** A memo of `answer`, with every key it was asked to work out. */
const counted = <A>(options: { entries: number; longestKey: number }, answer: (key: string) => A) => {
  const worked: Array<string> = []
  const memo = boundedMemo(options, (key) => {
    worked.push(key)
    return answer(key)
  })
  return { memo, worked }
}

describe("boundedMemo", () => {
  it("works a key out once, an answer of undefined or false included", () => {
    const { memo, worked } = counted({ entries: 10, longestKey: 100 }, (key) => key === "none" ? undefined : key === "no" ? false : key.length)
    expect([memo("abc"), memo("none"), memo("no"), memo("abc"), memo("none"), memo("no")]).toEqual([3, undefined, false, 3, undefined, false])
    expect(worked).toEqual(["abc", "none", "no"])
  })

  it("forgets everything at once when full, and keeps no key longer than it may", () => {
    const { memo, worked } = counted({ entries: 2, longestKey: 5 }, (key) => key.toUpperCase())
    memo("a")
    memo("b")
    memo("c") // full: a and b forgotten, c kept
    memo("c")
    memo("a")
    expect(worked).toEqual(["a", "b", "c", "a"])
    const long = "x".repeat(6)
    expect([memo(long), memo(long)]).toEqual(["XXXXXX", "XXXXXX"])
    expect(worked.filter((key) => key === long)).toHaveLength(2)
  })
})
