#!/usr/bin/env bash
# npm test: installs what the integration tests need on a fresh machine, then runs unit and
# integration tests. A missing service fails the run; nothing is skipped silently.
set -uo pipefail
cd "$(dirname "$0")/.."

say() { printf '[test] %s\n' "$*"; }
die() { printf '[test] FAILED: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  say "installing $* from Debian packages"
  as_root apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null \
    || die "could not install $*"
}

[ -x /usr/sbin/dovecot ] || apt_install dovecot-imapd
command -v java >/dev/null || apt_install openjdk-17-jre-headless
command -v mvn >/dev/null || apt_install maven
command -v psql >/dev/null || apt_install postgresql-client
command -v openssl >/dev/null || apt_install openssl

# The machine's PostgreSQL on 127.0.0.1:5432 (trust auth); start it if it is installed but stopped.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && command -v pg_ctlcluster >/dev/null; then
  say "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
pg_isready -q -h 127.0.0.1 -p 5432 || die "no PostgreSQL on 127.0.0.1:5432 (set MAILROOM_TEST_PG_URL to use another server)"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund >/dev/null || die "npm ci failed"
fi

if [ -f test/support/kafka/fetch.sh ]; then
  say "fetching Kafka (cached after the first run)"
  bash test/support/kafka/fetch.sh >/dev/null || die "could not fetch Apache Kafka from Maven Central"
fi

greenmail_version="$(sed -n 's/^export const GREENMAIL_VERSION = "\(.*\)"$/\1/p' test/support/greenmail.ts)"
[ -n "$greenmail_version" ] || die "no GREENMAIL_VERSION in test/support/greenmail.ts"
greenmail_dir="${MAILROOM_CACHE:-.cache}/greenmail-$greenmail_version"
if [ ! -f "$greenmail_dir/greenmail-standalone-$greenmail_version.jar" ]; then
  say "fetching GreenMail $greenmail_version (cached after the first run)"
  mvn -q -B dependency:copy -Dartifact="com.icegreen:greenmail-standalone:$greenmail_version" -DoutputDirectory="$greenmail_dir" >&2 \
    || die "could not fetch GreenMail $greenmail_version from Maven Central"
fi

say "fetching real-world mail from Debian's packages (cached after the first run)"
bash test/support/realWorld/fetch.sh >/dev/null || die "could not fetch the real-world mail (test/support/realWorld/fetch.sh)"

say "type check and build"
npx tsc -p tsconfig.json --noEmit || die "type errors"
npm run -s build || die "build failed"

results=$(mktemp -d)
status=0
say "unit tests"
npx vitest run --project unit --reporter=default --reporter=json --outputFile="$results/unit.json"
unit_exit=$?
say "integration tests (Dovecot, GreenMail, PostgreSQL, PGlite, Kafka, SMTP, OpenAI-compatible and OTLP servers on loopback)"
npx vitest run --project integration --no-file-parallelism --reporter=default --reporter=json \
  --outputFile="$results/integration.json"
integration_exit=$?

# Each report with the exit code of the run that wrote it: vitest exits 1 on an error no test owns.
node test/support/summary.mjs "$results/unit.json=$unit_exit" "$results/integration.json=$integration_exit" || status=1
rm -rf "$results"
exit $status
