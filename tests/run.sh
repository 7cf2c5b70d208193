#!/bin/sh
# run.sh - run every test: the C unit tests, then the integration suite
# (pytest on Debian's python3). The last line is "N passed, N failed, N skipped".
#
#   BUILD=build/rel   where the binaries are (set by make)
#   TESTS=...         extra pytest arguments (e.g. "-k sftp")
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/rel}
export ASSETD_BUILD="$BUILD"
out=build/test-results
rm -rf "$out"
mkdir -p "$out"

passed=0
failed=0
skipped=0

# C unit tests (cmocka): one binary per file, counted per test case.
for t in "$BUILD"/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	log="$out/$name.log"
	CMOCKA_MESSAGE_OUTPUT=stdout "$t" >"$log" 2>&1
	rc=$?
	p=$(sed -n 's/.*\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	f=$(sed -n 's/.*\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
	p=${p:-0}
	f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1 # crashed or exited early
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -ne 0 ]; then
		echo "unit $name: FAILED ($f)"
		cat "$log"
	else
		echo "unit $name: $p passed"
	fi
done

# Fuzz smoke: each libFuzzer target for a few seconds (make fuzz runs long).
FUZZ_BUILD=${FUZZ_BUILD:-build/fuzz}
if ls "$FUZZ_BUILD"/fuzz_* >/dev/null 2>&1; then
	FUZZ_BUILD="$FUZZ_BUILD" FUZZ_SECONDS=${FUZZ_SMOKE_SECONDS:-3} \
		sh tests/fuzz/run.sh >"$out/fuzz.log" 2>&1
	fp=$(sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$out/fuzz.log")
	ff=$(sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$out/fuzz.log")
	[ -n "$fp" ] || { fp=0; ff=1; }
	grep '^fuzz ' "$out/fuzz.log"
	passed=$((passed + fp))
	failed=$((failed + ff))
fi

# Integration tests: the real daemon with real clients.
if [ -d tests/integration ]; then
	/usr/bin/python3 -m pytest tests/integration -q -rfE \
		-p no:cacheprovider --junitxml="$out/integration.xml" ${TESTS:-}
	counts=$(/usr/bin/python3 - "$out/integration.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 1 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = f = s = 0
for su in suites:
    t += int(su.get("tests", 0))
    f += int(su.get("failures", 0)) + int(su.get("errors", 0))
    s += int(su.get("skipped", 0))
print(t - f - s, f, s)
PY
)
	set -- $counts
	passed=$((passed + $1))
	failed=$((failed + $2))
	skipped=$((skipped + $3))
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
