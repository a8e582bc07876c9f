#!/usr/bin/env bash
# Fetches Apache Kafka (kafka_2.13, KRaft) and its runtime jars from Maven Central, once, and prints
# the folder of jars. The integration tests run the broker from there with the machine's Java.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's:.*<artifactId>kafka_2.13</artifactId><version>\(.*\)</version>.*:\1:p' "$here/pom.xml")"
cache="${MAILROOM_CACHE:-$here/../../../.cache}/kafka-$version"
libs="$cache/libs"
if [ ! -f "$cache/.complete" ]; then
  command -v java >/dev/null || { echo "java not found: install openjdk-17-jre-headless" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "mvn not found: install maven" >&2; exit 1; }
  rm -rf "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$libs" -DincludeScope=runtime >&2 \
    || { echo "could not fetch Kafka $version from Maven Central" >&2; exit 1; }
  touch "$cache/.complete"
fi
echo "$libs"
