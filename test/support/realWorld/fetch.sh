#!/usr/bin/env bash
# Fetches real-world mail for the tests from Debian's packages, once, and prints the folder it is in:
# the test messages of Python's email package (libpython3.X-testsuite), the malformed and ordinary
# mail that enmime collected from its bug reports (golang-github-jhillyerd-enmime-dev, testdata under
# CC0), and SpamAssassin's spam and ham samples. The packages are downloaded and unpacked here, never
# installed; SOURCES in the folder names each package's version.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${MAILROOM_CACHE:-$here/../../../.cache}/real-world-mail"
# The test suite of the release's own Python (3.11 on Debian 12).
python_version="$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3.11)"
packages=("libpython$python_version-testsuite" golang-github-jhillyerd-enmime-dev spamassassin)
if [ ! -f "$cache/.complete" ]; then
  command -v apt-get >/dev/null || { echo "apt-get not found: the real-world mail comes from Debian's packages" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  # apt-get download needs the package lists; a fresh machine may have none yet.
  ( cd "$work" && apt-get download -qq "${packages[@]}" >/dev/null 2>&1 ) || {
    if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null; else sudo apt-get update -qq >/dev/null; fi
    ( cd "$work" && apt-get download -qq "${packages[@]}" >/dev/null ) || { echo "could not download ${packages[*]} from Debian" >&2; exit 1; }
  }
  rm -rf "$cache"
  mkdir -p "$cache/python" "$cache/enmime" "$cache/spamassassin" "$work/x"
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
  cp "$work"/x/usr/lib/python3.*/test/test_email/data/msg_*.txt "$cache/python/"
  for kind in mail low-quality parts; do
    for file in "$work"/x/usr/share/gocode/src/github.com/jhillyerd/enmime/testdata/"$kind"/*.raw; do
      cp "$file" "$cache/enmime/$kind-$(basename "$file")"
    done
  done
  cp "$work"/x/usr/share/doc/spamassassin/examples/sample-*.txt "$cache/spamassassin/"
  for deb in "$work"/*.deb; do dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb"; done > "$cache/SOURCES"
  for dir in python enmime spamassassin; do
    [ -n "$(ls -A "$cache/$dir")" ] || { echo "no mail found in the package for $dir" >&2; exit 1; }
  done
  touch "$cache/.complete"
fi
echo "$cache"
