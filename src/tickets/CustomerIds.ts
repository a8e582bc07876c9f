import { SqlClient } from "@effect/sql"
import { Effect } from "effect"
import { Vault } from "../log/Vault.js"

/**
 * The ids one address's mail was recorded under: the projection's (customers recorded before keyed
 * ids have a plain-hash one) and its keyed id. None but the keyed id once the customer is erased.
 */
export const customerIds = (address: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const keyed = (yield* Vault).customerId(address)
    const recorded = yield* sql<{ id: string }>`SELECT id FROM customers WHERE email = ${address}`
    return [...new Set([...recorded.map((row) => row.id), keyed])]
  })
