import { hostname } from "node:os"

/** Names this process in `status`, in the lock holder's PostgreSQL session and in logs. */
export const instanceId = `${hostname()}/${process.pid}`
