import { Console, Effect } from "effect"
import type { CustomerErased } from "../log/Event.js"
import { customerArgument } from "./Fatal.js"
import { eraseCustomer } from "../tickets/Erase.js"
import { exportCustomer } from "../tickets/Export.js"

export const formatErasure = (address: string, erased: CustomerErased): string =>
  [
    `Erased ${address} (customer ${erased.customerId}): ${erased.ticketIds.length} ticket(s) and ${erased.messagesDeleted} message(s) deleted, ` +
    `${erased.rawMessagesDeleted} raw mail(s) deleted, ${erased.keysDestroyed} key(s) destroyed`,
    "Their personal fields in the event log can no longer be read; CustomerErased is recorded, and Kafka gets tombstones for their tickets",
    ...(erased.unsealedEvents > 0
      ? [
        `${erased.unsealedEvents} event(s) recorded before this version sealed personal data still hold theirs: the log is never rewritten (docs/architecture.md, Erasure)`
      ]
      : [])
  ].join("\n")

/** `mailroom erase --customer ADDRESS`. */
export const eraseCommand = (input: string) =>
  Effect.gen(function*() {
    const address = yield* customerArgument(input)
    const erased = yield* eraseCustomer(address)
    yield* Console.log(formatErasure(address, erased))
    return erased
  })

/**
 * `mailroom export --customer ADDRESS [--raw]`: everything mailroom holds of the customer, as JSON
 * on stdout (redirect it to a file); a summary line on stderr.
 */
export const exportCommand = (input: string, options: { readonly raw: boolean }) =>
  Effect.gen(function*() {
    const address = yield* customerArgument(input)
    const exported = yield* exportCustomer(address, options)
    yield* Console.log(JSON.stringify(exported, null, 2))
    const messages = [...exported.tickets.flatMap((ticket) => ticket.messages), ...exported.elsewhere]
    const others = messages.filter((m) => m.others).length
    yield* Console.error(
      `Exported ${address}: ${exported.tickets.length} ticket(s), ${messages.length} message(s), ${exported.events.length} event(s)` +
        (options.raw ? `, ${exported.rawMail.length} raw mail(s)` : " (add --raw for the raw mail)") +
        (others > 0 ? `; ${others} message(s) from or to other people, marked "others": read them before handing this over` : "")
    )
    return exported
  })
