import { FETCH_PIECE_BYTES } from "./Imap.js"

/** A run of UIDs fetched with one UID FETCH and committed in one transaction. */
export interface FetchBatch {
  readonly uids: ReadonlyArray<number>
  readonly bytes: number
  /** Over MAX_MESSAGE_BYTES: only the headers are fetched, and each mail is quarantined. */
  readonly headersOnly: boolean
}

export interface BatchLimits {
  readonly maxMessageBytes: number
  readonly batchSize: number
  readonly batchBytes: number
}

/** Groups mails in UID order, so that committing batch after batch moves the cursor monotonically. */
export const planBatches = (
  sizes: ReadonlyArray<{ readonly uid: number; readonly size: number }>,
  limits: BatchLimits
): Array<FetchBatch> => {
  const batches: Array<FetchBatch> = []
  let current: { uids: Array<number>; bytes: number; headersOnly: boolean } | undefined
  for (const { uid, size } of [...sizes].sort((a, b) => a.uid - b.uid)) {
    const headersOnly = size > limits.maxMessageBytes
    const fits = current !== undefined && current.headersOnly === headersOnly &&
      current.uids.length < limits.batchSize && (current.uids.length === 0 || current.bytes + size <= limits.batchBytes)
    if (!fits) {
      current = { uids: [], bytes: 0, headersOnly }
      batches.push(current)
    }
    current!.uids.push(uid)
    current!.bytes += headersOnly ? 0 : size
  }
  return batches
}

/**
 * A size no planning decision tells apart from a smaller one: `batchSize` mails of this size fill
 * no more than `batchBytes`, none is quarantined nor fetched in pieces. For mail a SEARCH LARGER
 * says is no bigger, it stands in for the RFC822.SIZE not asked.
 */
export const smallMailBound = (limits: BatchLimits): number =>
  Math.min(Math.floor(limits.batchBytes / limits.batchSize), limits.maxMessageBytes, FETCH_PIECE_BYTES)
