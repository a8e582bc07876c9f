/**
 * A pure function's answers kept by their string key, for input that repeats from mail to mail (a
 * support address in To, a sender's domain). Mail is untrusted and need never repeat, so the memory
 * is bounded twice: it forgets everything at once when `entries` are kept, and keys longer than
 * `longestKey` are worked out every time, never kept (a megabyte header line would otherwise stay
 * alive until the next clearing, a couple of thousand times over).
 */
export const boundedMemo = <A>(options: { readonly entries: number; readonly longestKey: number }, compute: (key: string) => A) => {
  const kept = new Map<string, A>()
  return (key: string): A => {
    const known = kept.get(key)
    if (known !== undefined || kept.has(key)) return known as A
    const value = compute(key)
    if (key.length <= options.longestKey) {
      if (kept.size >= options.entries) kept.clear()
      kept.set(key, value)
    }
    return value
  }
}
