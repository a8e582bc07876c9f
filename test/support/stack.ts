import type { SqlError } from "@effect/sql/SqlError"
import type { Scope } from "effect"
import { Effect, Layer } from "effect"
import { pipelineOn } from "../../src/Layers.js"
import { EventBus, MemoryEventBus } from "../../src/bus/EventBus.js"
import type { Imap } from "../../src/mailbox/Imap.js"
import { configLayer } from "../unit/layers.js"
import type { Postgres } from "./postgres.js"
import { freshDataDir, freshDatabase } from "./postgres.js"

export type Backend = "postgres" | "pglite"

/** Settings that point the SQL layer at a fresh database of the given kind (made on `server`'s connection when given). */
export const databaseEnv = (
  backend: Backend,
  label: string,
  server: Pick<Postgres, "freshDatabase"> = { freshDatabase }
): Effect.Effect<Record<string, string>, SqlError, Scope.Scope> =>
  backend === "postgres"
    ? Effect.map(server.freshDatabase(label), (db) => ({ DATABASE_URL: db.url }))
    : Effect.map(freshDataDir, (dir) => ({ MAILROOM_DATA_DIR: dir }))

/** The live pipeline (real SQL) over the given mailbox layer, with a recording event bus; its database made on `server`'s connection when given. */
export const sqlPipeline = <E, R>(
  backend: Backend,
  label: string,
  imap: Layer.Layer<Imap, E, R>,
  env: Record<string, string> = {},
  server?: Pick<Postgres, "freshDatabase">
) =>
  Layer.unwrapScoped(
    Effect.map(databaseEnv(backend, label, server), (dbEnv) =>
      pipelineOn(imap, EventBus.Test(new MemoryEventBus())).pipe(
        Layer.provide(configLayer({ ...dbEnv, ...env }))
      )
    )
  )
