import { setFlagsFromString } from "node:v8"

/**
 * After each full GC V8 lets the old generation grow to up to 4× what survived; a pass promotes
 * every batch's short-lived garbage (mail held from FETCH to commit), so the heap filled to about
 * four times its live objects, and that set the peak RSS. This flag, read at every full GC (unlike
 * --max-semi-space-size, which V8 reads only when the heap is made), bounds the growth.
 *
 * How much garbage that lets pile up scales with the live heap: about 40 MB with one mailbox, and
 * about 0.2 MB more per further watched mailbox (docs/performance.md). 150% over one mailbox's
 * 40 MB lowered the backlog's peak for a few per cent of pass time; 150% over a thousand mailboxes'
 * 240 MB let the heap grow by 360 MB under load. So the allowance is held near a fixed size, and
 * never under 50%, below which V8 collects too often. An allowance of 30 MB once held the
 * 10,000-mail backlog's peak at 232–240 MB, when 60 MB let it reach 251–272 MB; smaller batches
 * (IMAP_BATCH_BYTES) have since brought it to 193–202 MB at 30 MB. 60 MB now costs 219–233 MB, and
 * took a tenth off the pass on the backlog and on small mail on one machine, while two earlier ones
 * measured no change beyond their swing (docs/performance.md, 2026-12-07).
 */
const allowanceMb = 60
const liveMb = (mailboxes: number) => 40 + 0.2 * (mailboxes - 1)

export const heapGrowthPercent = (mailboxes: number): number =>
  Math.round(Math.max(50, (100 * allowanceMb) / liveMb(mailboxes)))

/**
 * V8 doubles the young generation whenever enough of it survives a scavenge, up to 16 MB a
 * semi-space, and a pass's batches always look that way: 32 MB of RSS that scavenging never needed.
 * Kept at its first size (1 MB a semi-space), the 10,000-mail backlog, the small mail and a cold 20 ms
 * run took as long, at 15–25 MB less peak RSS (docs/performance.md, 2026-12-07). Unlike
 * --max-semi-space-size, which the Docker image sets, V8 reads this flag each time it would grow the
 * space, so the process can set it for itself.
 */
setFlagsFromString("--semi-space-growth-factor=1")

/** Called again once the number of watched mailboxes is known. */
export const fitHeapGrowth = (mailboxes: number) => setFlagsFromString(`--heap-growing-percent=${heapGrowthPercent(mailboxes)}`)

// Imported first by main.ts: one mailbox until the configuration says otherwise.
fitHeapGrowth(1)
