#!/bin/sh
# run.sh - run every libFuzzer target for FUZZ_SECONDS each.
#
# Seeds are committed under tests/fuzz/seeds/<target>/; the growing corpus
# and any crash artifacts go under build/fuzz/. One line per target with its
# executions; a target that finds a crash fails the run and names the input.
set -u
cd "$(dirname "$0")/../.."
FUZZ_BUILD=${FUZZ_BUILD:-build/fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
passed=0
failed=0
stats="$FUZZ_BUILD/stats.tsv"
: >"$stats"
for bin in "$FUZZ_BUILD"/fuzz_*; do
	[ -x "$bin" ] || continue
	case "$bin" in *.o|*.a) continue ;; esac
	name=$(basename "$bin")
	corpus="$FUZZ_BUILD/corpus/$name"
	artifacts="$FUZZ_BUILD/artifacts/$name/"
	seeds="tests/fuzz/seeds/$name"
	mkdir -p "$corpus" "$artifacts"
	[ -d "$seeds" ] || seeds=""
	log="$FUZZ_BUILD/$name.log"
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
		-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts" \
		"$corpus" $seeds >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	execs=${execs:-0}
	printf '%s\t%s\t%s\n' "$name" "$execs" "$rc" >>"$stats"
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "fuzz $name: ok, $execs executions in ${FUZZ_SECONDS}s"
	else
		failed=$((failed + 1))
		echo "fuzz $name: FAILED (exit $rc) after $execs executions"
		grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
