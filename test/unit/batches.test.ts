import { describe, expect, it } from "vitest"
import { startingCursor } from "../../src/tickets/Intake.js"
import { planBatches } from "../../src/mailbox/Batches.js"

describe("planBatches", () => {
  const limits = { maxMessageBytes: 1000, batchSize: 3, batchBytes: 2500 }

  it("keeps UID order, caps count and bytes, and fetches oversized mail headers-only on its own", () => {
    const sizes = [
      { uid: 5, size: 100 },
      { uid: 1, size: 900 },
      { uid: 2, size: 900 },
      { uid: 3, size: 900 },
      { uid: 4, size: 5000 },
      { uid: 6, size: 100 },
      { uid: 7, size: 100 },
      { uid: 8, size: 100 }
    ]
    expect(planBatches(sizes, limits)).toEqual([
      { uids: [1, 2], bytes: 1800, headersOnly: false },
      { uids: [3], bytes: 900, headersOnly: false },
      { uids: [4], bytes: 0, headersOnly: true },
      { uids: [5, 6, 7], bytes: 300, headersOnly: false },
      { uids: [8], bytes: 100, headersOnly: false }
    ])
  })
})

describe("startingCursor", () => {
  const status = { path: "INBOX", uidValidity: 7, uidNext: 101, exists: 100 }
  it("unseen: existing UIDs only if unread; all: everything; none: nothing old", () => {
    expect(startingCursor("INBOX", status, "unseen")).toMatchObject({ lastUid: 0, backfillTo: 100 })
    expect(startingCursor("INBOX", status, "all")).toMatchObject({ lastUid: 0, backfillTo: 0 })
    expect(startingCursor("INBOX", status, "none")).toMatchObject({ lastUid: 100, backfillTo: 100, seenUid: 100 })
  })
})
