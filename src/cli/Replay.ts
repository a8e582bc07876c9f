import { Console, Data, Effect } from "effect"
import type { ReplayReport, RowDifference, TableDifference } from "../tickets/Replay.js"
import { replayProjections } from "../tickets/Replay.js"

/** `replay --check` found projections that the log does not account for: exit code 1. */
export class ProjectionsDiffer extends Data.TaggedError("ProjectionsDiffer")<{ readonly tables: ReadonlyArray<string> }> {
  override get message() {
    return `${this.tables.join(", ")} differ from what the event log says; run \`mailroom replay\` to rebuild them from the log`
  }
}

const shown = (value: unknown) => {
  const text = value === null || value === undefined ? "null" : JSON.stringify(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

const describeRow = (row: RowDifference) =>
  row.columns.length === 1 && row.columns[0]!.column === "row"
    ? `    ${row.key}: ${row.columns[0]!.live === null ? "missing from the live table" : "not in the log"}`
    : `    ${row.key}: ${row.columns.map((c) => `${c.column} ${shown(c.live)} live, ${shown(c.replayed)} from the log`).join("; ")}`

const describeTable = (table: TableDifference) => [
  `  ${table.table.padEnd(20)} ${table.live} live, ${table.replayed} from the log: ${
    table.differing === 0 ? "equal" : `${table.differing} row(s) differ`
  }`,
  ...table.samples.map(describeRow),
  ...(table.differing > table.samples.length ? [`    ... and ${table.differing - table.samples.length} more`] : [])
]

export const formatReplay = (report: ReplayReport): string =>
  [
    `Replayed ${report.events} event(s), up to seq ${report.lastSeq}${report.swapped ? "" : " (check only: nothing changed)"}`,
    ...report.tables.flatMap(describeTable),
    report.swapped
      ? report.equal
        ? "The projections already matched the log; they were rebuilt anyway"
        : "Rebuilt customers, tickets, messages and ticket_participants from the log and swapped them in"
      : report.equal
      ? "The projections match the log"
      : "The projections differ from the log"
  ].join("\n")

/**
 * `mailroom replay [--check]`: prints the comparison; with --check, fails with ProjectionsDiffer
 * (exit code 1) when the projections and the log disagree.
 */
export const replayCommand = (options: { readonly check: boolean }) =>
  Effect.gen(function*() {
    const report = yield* replayProjections(options)
    yield* Console.log(formatReplay(report))
    if (options.check && !report.equal) {
      return yield* new ProjectionsDiffer({ tables: report.tables.filter((t) => t.differing > 0).map((t) => t.table) })
    }
    return report
  })
