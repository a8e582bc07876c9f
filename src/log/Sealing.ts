import type { Statement } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Schema } from "effect"
import { encodeEventData, EventData } from "./Event.js"
import type { StoredEvent } from "./Event.js"
import { fromHeaderAddress, personalFields, split } from "./Personal.js"
import type { KeysRead, VaultShape } from "./Vault.js"
import { decrypt, encrypt, SealBroken } from "./Vault.js"

const decodeData = Schema.decodeUnknownSync(EventData)

/** An event's data as the `events` row holds it. */
export interface SealedData {
  /** JSON: the whole data, or only its plain fields when the rest is sealed. */
  readonly data: string
  readonly keyId: string | null
  readonly sealed: Buffer | null
}

/** The customer whose key seals an event's personal fields; none for events that hold nobody's data. */
const ownerOf = (vault: Pick<VaultShape, "customerId">, data: Readonly<Record<string, unknown>>): string | null => {
  if (data._tag === "EmailQuarantined") {
    const address = fromHeaderAddress((data.headers as { readonly from: string | null }).from)
    return address === null ? null : vault.customerId(address)
  }
  return typeof data.customerId === "string" ? data.customerId : null
}

export interface Sealed {
  readonly rows: Array<SealedData>
  /** Stores the keys made for new customers: part of the same transaction as the rows (Vault.keysFor). */
  readonly insertKeys: Statement.Fragment | undefined
}

/**
 * Encodes each event, sealing its personal fields under its customer's key (made if new).
 * `read`: keys the caller has read already (Vault.keysFor).
 */
export const seal = (
  vault: VaultShape,
  events: ReadonlyArray<Pick<StoredEvent, "id" | "data">>,
  read?: KeysRead
): Effect.Effect<Sealed, SqlError> =>
  Effect.gen(function*() {
    const encoded = events.map((event) => encodeEventData(event.data))
    const owners = encoded.map((data) => personalFields[data._tag as StoredEvent["type"]] ? ownerOf(vault, data) : null)
    const { insert, keys } = yield* vault.keysFor([...new Set(owners.filter((owner) => owner !== null))], read)
    const rows = encoded.map((data, i): SealedData => {
      const fields = personalFields[data._tag as StoredEvent["type"]]
      const key = owners[i] === null ? undefined : keys.get(owners[i]!)
      if (fields === undefined || key === undefined) return { data: JSON.stringify(data), keyId: null, sealed: null }
      const { plain, personal } = split(fields, data)
      // The event id is authenticated with the box: a box copied into another event does not open.
      return { data: JSON.stringify(plain), keyId: key.id, sealed: encrypt(key.key, Buffer.from(JSON.stringify(personal)), events[i]!.id) }
    })
    return { rows, insertKeys: insert }
  })

export interface SealedRow {
  readonly id: string
  readonly data: unknown
  readonly key_id: string | null
  readonly sealed: Uint8Array | null
}

/** Each row's data, its sealed fields opened, or read as erased where the key is gone. */
export const open = (
  vault: Pick<VaultShape, "keysById">,
  rows: ReadonlyArray<SealedRow>
): Effect.Effect<Array<{ readonly data: EventData; readonly erased: boolean }>, SqlError> =>
  Effect.gen(function*() {
    const keys = yield* vault.keysById([...new Set(rows.flatMap((row) => row.key_id === null ? [] : [row.key_id]))])
    const opened: Array<{ readonly data: EventData; readonly erased: boolean }> = []
    for (const row of rows) {
      const stored = (typeof row.data === "string" ? JSON.parse(row.data) : row.data) as Record<string, unknown>
      if (row.key_id === null || row.sealed === null) {
        opened.push({ data: decodeData(stored), erased: false })
        continue
      }
      const key = keys.get(row.key_id)
      if (key === undefined) {
        opened.push({ data: decodeData({ ...stored, ...personalFields[stored._tag as StoredEvent["type"]]?.erased }), erased: true })
        continue
      }
      const personal = decrypt(key, row.sealed, row.id)
      // Not retried, not skipped: an altered row is a defect to look at, not mail to lose quietly.
      if (personal === undefined) return yield* Effect.die(new SealBroken({ eventId: row.id }))
      opened.push({ data: decodeData({ ...stored, ...JSON.parse(personal.toString("utf8")) }), erased: false })
    }
    return opened
  })
