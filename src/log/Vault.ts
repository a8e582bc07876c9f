import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, randomUUID, timingSafeEqual } from "node:crypto"
import { SqlClient } from "@effect/sql"
import type { Statement } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer, Option, Redacted } from "effect"
import type { ConfigError } from "effect"
import { secretKey } from "../config/Config.js"
import { boundedMemo } from "../lib/BoundedMemo.js"
import { inTransaction } from "./Sql.js"

/**
 * Crypto-shredding. Each customer's personal data in the log is sealed (AES-256-GCM) under a key of
 * their own, kept in `customer_keys` wrapped by a key derived from MAILROOM_SECRET_KEY (or, without
 * it, from a random root kept in the database). `mailroom erase` destroys a customer's keys: the
 * events stay, their personal fields can no longer be read by anyone. Customer ids are keyed hashes
 * of the address, so that an id on Kafka or in a trace cannot be matched to an address by guessing.
 */

export class SecretKeyMismatch extends Data.TaggedError("SecretKeyMismatch")<{}> {
  override get message() {
    return "MAILROOM_SECRET_KEY is not the key this database's customer keys were sealed with: start mailroom with the key it had before (or unset it, if it was never set)"
  }
}

/** A sealed box that does not open under its own key: the row was altered, or copied from another event. */
export class SealBroken extends Data.TaggedError("SealBroken")<{ readonly eventId: string }> {
  override get message() {
    return `the personal data of event ${this.eventId} does not decrypt under its customer's key: the row was altered`
  }
}

const IV = 12
const TAG = 16

/**
 * Fresh random IVs, drawn from the CSPRNG 4 KB at a time: a draw per event cost about 10 µs, as
 * much as the encryption of a small mail's fields. Each IV is used once.
 */
let ivs = Buffer.alloc(0)
let nextIv = 0
const freshIv = (): Buffer => {
  if (nextIv + IV > ivs.length) {
    ivs = randomBytes(IV * 341)
    nextIv = 0
  }
  nextIv += IV
  return ivs.subarray(nextIv - IV, nextIv)
}

export const encrypt = (key: Uint8Array, plain: Buffer, aad: string): Buffer => {
  const iv = freshIv()
  const cipher = createCipheriv("aes-256-gcm", key, iv)
  cipher.setAAD(Buffer.from(aad, "utf8"))
  const body = Buffer.concat([cipher.update(plain), cipher.final()])
  return Buffer.concat([iv, cipher.getAuthTag(), body])
}

/** Undefined when the box was altered or belongs to another `aad`. */
export const decrypt = (key: Uint8Array, box: Uint8Array, aad: string): Buffer | undefined => {
  const bytes = Buffer.from(box.buffer, box.byteOffset, box.byteLength)
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, IV))
    decipher.setAAD(Buffer.from(aad, "utf8"))
    decipher.setAuthTag(bytes.subarray(IV, IV + TAG))
    return Buffer.concat([decipher.update(bytes.subarray(IV + TAG)), decipher.final()])
  } catch {
    return undefined
  }
}

const derive = (root: Uint8Array, purpose: string) => Buffer.from(hkdfSync("sha256", root, "mailroom", purpose, 32))

/** What a root secret gives: the customer-id key, the key that wraps customer keys, and a check value. */
export const keysFrom = (root: Uint8Array) => {
  const idKey = derive(root, "customer-id")
  const wrapKey = derive(root, "customer-keys")
  return { idKey, wrapKey, check: createHmac("sha256", wrapKey).update("mailroom/vault-check").digest() }
}

/** The keyed id of an address, shaped as a UUID (version 8: custom) so that it fits the uuid columns. */
export const keyedCustomerId = (idKey: Uint8Array, address: string): string => {
  const hex = createHmac("sha256", idKey).update(address.toLowerCase()).digest("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-b${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

/** A customer's live data key: its row id (stored with every event it seals) and the key itself. */
export interface DataKey {
  readonly id: string
  readonly key: Buffer
}

/** A live key as `liveKeysJson` reads it: its row id, its customer, the wrapped key in hex. */
export type KeyRow = readonly [id: string, customerId: string, wrapped: string]

/**
 * Keys read ahead, in a statement of the caller's under the append lock (`liveKeysJson`): the
 * customers looked up, and the live keys among them. A customer looked up without a row has none.
 */
export interface KeysRead {
  readonly customers: ReadonlySet<string>
  readonly rows: ReadonlyArray<KeyRow>
}

export interface KeysFound {
  readonly keys: ReadonlyMap<string, DataKey>
  /** Stores the keys made for customers who had none: to run in the same transaction as what they seal. */
  readonly insert: Statement.Fragment | undefined
}

export interface VaultShape {
  readonly customerId: (address: string) => string
  /**
   * Every customer's live key, made for those who have none; run inside the append transaction, and
   * `insert` with it. Customers in `read` are not looked up again.
   */
  readonly keysFor: (customerIds: ReadonlyArray<string>, read?: KeysRead) => Effect.Effect<KeysFound, SqlError>
  /** Keys by row id; a destroyed key is absent. */
  readonly keysById: (ids: ReadonlyArray<string>) => Effect.Effect<ReadonlyMap<string, Buffer>, SqlError>
  /** Destroys every key of the customer; returns how many. */
  readonly destroy: (customerId: string) => Effect.Effect<number, SqlError>
}

/** One at a time across instances: the first start writes the root and the check value. */
const SETUP_LOCK = 0x7661756c

const secretRow = (sql: SqlClient.SqlClient, name: string) =>
  sql<{ value: Uint8Array }>`SELECT value FROM mailroom_secrets WHERE name = ${name}`.pipe(
    Effect.map((rows) => Option.fromNullable(rows[0]).pipe(Option.map((row) => Buffer.from(row.value))))
  )

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b)

/**
 * The root in use, checked against the one that sealed the stored keys. A database that had no
 * MAILROOM_SECRET_KEY gets its keys wrapped again the first time one is set; any other change stops.
 */
const openRoot = (sql: SqlClient.SqlClient, configured: Option.Option<Redacted.Redacted>) =>
  Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(${SETUP_LOCK})`
    let stored = yield* secretRow(sql, "root")
    if (Option.isNone(configured) && Option.isNone(stored)) {
      yield* sql`INSERT INTO mailroom_secrets (name, value) VALUES ('root', ${randomBytes(32)})`
      stored = yield* secretRow(sql, "root")
    }
    const root = Option.match(configured, {
      onSome: (secret) => Buffer.from(Redacted.value(secret), "utf8"),
      onNone: () => Option.getOrThrow(stored)
    })
    const keys = keysFrom(root)
    const check = yield* secretRow(sql, "check")
    if (Option.isNone(check)) {
      yield* sql`INSERT INTO mailroom_secrets (name, value) VALUES ('check', ${keys.check})`
    } else if (!sameBytes(check.value, keys.check)) {
      const before = Option.map(stored, keysFrom)
      if (Option.isNone(configured) || Option.isNone(before) || !sameBytes(before.value.check, check.value)) {
        return yield* new SecretKeyMismatch()
      }
      const wrapped = yield* sql<{ id: string; key: Uint8Array }>`SELECT id, key FROM customer_keys WHERE key IS NOT NULL`
      for (const row of wrapped) {
        const key = decrypt(before.value.wrapKey, row.key, row.id)
        if (key === undefined) return yield* new SecretKeyMismatch()
        yield* sql`UPDATE customer_keys SET key = ${encrypt(keys.wrapKey, key, row.id)} WHERE id = ${row.id}`
      }
      yield* sql`UPDATE mailroom_secrets SET value = ${keys.check} WHERE name = 'check'`
      yield* sql`DELETE FROM mailroom_secrets WHERE name = 'root'`
      yield* Effect.logInfo(`MAILROOM_SECRET_KEY now seals the ${wrapped.length} customer key(s)`)
    }
    return keys
  }).pipe(inTransaction(sql))

const make = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { idKey, wrapKey } = yield* openRoot(sql, yield* secretKey)
  const unwrapOnce = (id: string, wrapped: Uint8Array) => {
    const key = decrypt(wrapKey, wrapped, id)
    // openRoot checked the wrapping key: a key that does not unwrap was altered in the table.
    if (key === undefined) throw new Error(`customer key ${id} does not unwrap: the customer_keys row was altered`)
    return key
  }
  // Every commit reads its senders' wrapped keys again, and customers write again: the same row id
  // and wrapped bytes always open to the same key, so the opened key is kept (an AES-GCM open per
  // sender and batch was a per cent of a small pass). Only the bytes just read from the table are
  // looked up: a key `destroy` erased is never read back, so a kept copy is never used again.
  const unwrapHex = boundedMemo({ entries: 10_000, longestKey: 200 }, (idAndHex) => {
    const at = idAndHex.indexOf(":")
    return unwrapOnce(idAndHex.slice(0, at), Buffer.from(idAndHex.slice(at + 1), "hex"))
  })
  const unwrap = (row: { readonly id: string; readonly key: Uint8Array }) =>
    unwrapHex(`${row.id}:${Buffer.from(row.key.buffer, row.key.byteOffset, row.key.byteLength).toString("hex")}`)

  const keysFor = (customerIds: ReadonlyArray<string>, read?: KeysRead) =>
    Effect.gen(function*() {
      const keys = new Map<string, DataKey>()
      const wanted = new Set(customerIds)
      for (const [id, customerId, wrapped] of read?.rows ?? []) {
        if (wanted.has(customerId)) keys.set(customerId, { id, key: unwrapHex(`${id}:${wrapped}`) })
      }
      const unread = customerIds.filter((id) => !read?.customers.has(id))
      if (unread.length > 0) {
        const rows = yield* sql<{ id: string; customer_id: string; key: Uint8Array }>`
          SELECT id, customer_id, key FROM customer_keys WHERE customer_id = ANY(${unread}) AND key IS NOT NULL
        `
        for (const row of rows) keys.set(row.customer_id, { id: row.id, key: unwrap(row) })
      }
      const fresh = customerIds.filter((id) => !keys.has(id)).map((customerId) => {
        const id = randomUUID()
        const key = randomBytes(32)
        keys.set(customerId, { id, key })
        return { id, customer_id: customerId, key: encrypt(wrapKey, key, id) }
      })
      return { keys, insert: fresh.length === 0 ? undefined : sql`INSERT INTO customer_keys ${sql.insert(fresh)}` }
    })

  // Each mail's sender is keyed twice per commit (what is known, then the decision), and customers
  // write again: an HMAC is a few microseconds, a look-up a fraction of one. 320 is the longest address.
  const customerId = boundedMemo({ entries: 10_000, longestKey: 320 }, (address) => keyedCustomerId(idKey, address))

  return Vault.of({
    customerId,
    keysFor,
    keysById: (ids) =>
      ids.length === 0
        ? Effect.succeed(new Map())
        : sql<{ id: string; key: Uint8Array }>`SELECT id, key FROM customer_keys WHERE id = ANY(${ids}) AND key IS NOT NULL`.pipe(
          Effect.map((rows) => new Map(rows.map((row) => [row.id, unwrap(row)])))
        ),
    destroy: (customerId) =>
      sql<{ id: string }>`
        UPDATE customer_keys SET key = NULL, erased_at = now() WHERE customer_id = ${customerId} AND key IS NOT NULL RETURNING id
      `.pipe(Effect.map((rows) => rows.length))
  })
})

/**
 * A subquery for a caller's statement: the live keys of the customers `customers` (a query of ids)
 * selects, as a JSON array of KeyRow, for `keysFor`'s `read`.
 */
export const liveKeysJson = (sql: SqlClient.SqlClient, customers: Statement.Fragment) =>
  sql`(SELECT coalesce(json_agg(json_build_array(id, customer_id, encode(key, 'hex'))), '[]') FROM customer_keys
    WHERE key IS NOT NULL AND customer_id IN (${customers}))`

export class Vault extends Context.Tag("mailroom/Vault")<Vault, VaultShape>() {
  static readonly Live: Layer.Layer<Vault, SqlError | SecretKeyMismatch | ConfigError.ConfigError, SqlClient.SqlClient> = Layer.effect(Vault, make)

  /** For tests without a database: keyed ids from a fixed root; nothing to seal with. */
  static readonly Test: Layer.Layer<Vault> = Layer.sync(Vault, () => {
    const { idKey } = keysFrom(Buffer.from("mailroom test root"))
    return Vault.of({
      customerId: (address) => keyedCustomerId(idKey, address),
      keysFor: () => Effect.succeed({ keys: new Map(), insert: undefined }),
      keysById: () => Effect.succeed(new Map()),
      destroy: () => Effect.succeed(0)
    })
  })
}
