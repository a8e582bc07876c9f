// npm test's last lines: the count over both projects, then each failure by name with the first
// lines of its message, so that a run read only from its tail (a CI log) still says what failed.
import { existsSync, readFileSync } from "node:fs"

let passed = 0
let failed = 0
let skipped = 0
const failures = []
for (const argument of process.argv.slice(2)) {
  // REPORT=EXIT: the JSON report and the exit code of the vitest run that wrote it.
  const [, file, exit] = /^(.*?)(?:=(\d+))?$/.exec(argument) ?? []
  if (!existsSync(file)) {
    failed += 1
    failures.push(`${file}: no report (the run stopped before writing it)`)
    continue
  }
  const report = JSON.parse(readFileSync(file, "utf8"))
  passed += report.numPassedTests
  skipped += report.numPendingTests + report.numTodoTests
  failed += report.numFailedTests
  let wholeFiles = 0
  for (const suite of report.testResults ?? []) {
    for (const test of suite.assertionResults ?? []) {
      if (test.status !== "failed") continue
      failures.push(`${suite.name}: ${test.fullName}\n${firstLines(test.failureMessages?.join("\n") ?? "")}`)
    }
    // A file that failed as a whole (it did not load, or an error escaped its tests).
    if (suite.status === "failed" && (suite.assertionResults ?? []).every((test) => test.status !== "failed")) {
      wholeFiles += 1
      failures.push(`${suite.name}\n${firstLines(suite.message ?? "")}`)
    }
  }
  failed += wholeFiles
  if ((!report.success || (exit ?? "0") !== "0") && report.numFailedTests === 0 && wholeFiles === 0) {
    failed += 1
    failures.push(`${file}: vitest exited ${exit} with no test failed (an error outside the tests: see the log above)`)
  }
}
if (passed === 0) failed += 1

function firstLines(text) {
  return text.split("\n")
    .filter((line) => line.trim() !== "" && !/node_modules|node:internal|new Promise/.test(line))
    .slice(0, 6).map((line) => `    ${line.slice(0, 300)}`).join("\n")
}

for (const failure of failures) console.log(`FAILED ${failure}`)
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""))
process.exit(failed > 0 ? 1 : 0)
