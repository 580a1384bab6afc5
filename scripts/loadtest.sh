#!/bin/sh
# Load figures for the README: wrk at 16 connections against a running
# server whose database holds the Synthea set
#   fhirserver import ../shared/data/synthea-r4
#   fhirserver serve --auth none
# Usage: scripts/loadtest.sh [BASE] (default http://127.0.0.1:8080); needs
# wrk (apt-get install wrk), curl and python3. TOKEN, when set, is sent as a
# bearer token. Creates Observations (the create run).
set -eu
base=${1:-http://127.0.0.1:8080}
dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
auth=""
if [ -n "${TOKEN:-}" ]; then auth="Authorization: Bearer $TOKEN"; fi

ids() { # TYPE COUNT: ids of stored resources
	curl -sf ${auth:+-H "$auth"} "$base/fhir/$1?_count=$2&_elements=id" |
		python3 -c 'import json,sys; [print(e["resource"]["id"]) for e in json.load(sys.stdin).get("entry",[])]'
}
ids Observation 1000 >"$tmp/obs"
ids Patient 200 >"$tmp/patients"

run() { # NAME SCRIPT [wrk args]
	name=$1 script=$2
	shift 2
	printf '%-34s ' "$name"
	wrk -t2 -c16 -d10s --latency ${auth:+-H "$auth"} -s "$dir/wrk/$script" "$@" "$base" |
		awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} /Non-2xx/ {bad=$NF} END {printf "%8.0f req/s  p50 %-8s p99 %-8s %s\n", rps, p50, p99, bad ? "NON-2xx: " bad : ""}'
}
export IDS="$tmp/obs" PATIENTS="$tmp/patients"
run "read Observation by id" read.lua
search() { # NAME QUERY
	QUERY=$2
	export QUERY
	run "$1" search.lua
}
search "Patient?name=" 'Patient?name=ma'
search "Observation?patient=&code=" 'Observation?patient={P}&code=http://loinc.org|8302-2'
search "...&date=ge&_sort=-date" 'Observation?patient={P}&date=ge2015-01-01&_sort=-date'
search "Patient?_id=&_revinclude=" 'Patient?_id={P}&_revinclude=Encounter:patient'
search "chain subject:Patient.name" 'Encounter?subject:Patient.name=ma'
run "create Observation" create.lua
