#!/usr/bin/env bash
# scripts/deadcode.sh: no unreachable function in the module.
#
# Runs deadcode (golang.org/x/tools/cmd/deadcode) with the tests as roots: a
# function that no program and no test reaches is dead, exported or not (an
# exported one that is API wants a test). deadcode cannot see calls from C,
# so functions exported to C with //export are not reported. `make lint`
# runs it with DEADCODE set to the pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
DEADCODE=${DEADCODE:?set DEADCODE to golang.org/x/tools/cmd/deadcode@VERSION}

# Reported functions waiting for their owners to remove them: package path
# in the module, a dot, the function. Keep it short, and empty when it can be.
pending=()

mod=$($GO list -m)
out=$($GO run "$DEADCODE" -test \
	-f '{{range .Funcs}}{{$.Path}}.{{.Name}} {{.Position.File}}:{{.Position.Line}}{{"\n"}}{{end}}' ./...)
# Names exported to C, one per line.
exported=$(grep -rh --include='*.go' --exclude-dir=.git '^//export ' . | awk '{print $2}' | tr '\n' ' ')
dead=$(printf '%s\n' "$out" | sed "s|^$mod/||" |
	awk -v skip="${pending[*]}" -v cnames="$exported" '
		BEGIN {
			n = split(skip, a, " "); for (i = 1; i <= n; i++) s[a[i]] = 1
			n = split(cnames, b, " "); for (i = 1; i <= n; i++) e[b[i]] = 1
		}
		NF == 0 || ($1 in s) { next }
		{ name = $1; sub(/.*\./, "", name); if (name in e) next; print }')
# A pending entry that deadcode no longer reports is stale.
reported=$(printf '%s\n' "$out" | sed "s|^$mod/||" | awk '{print $1}')
for p in "${pending[@]}"; do
	if ! grep -qxF "$p" <<<"$reported"; then
		echo "deadcode: $p is no longer reported: remove it from the pending list in scripts/deadcode.sh" >&2
		exit 1
	fi
done
if [ -n "$dead" ]; then
	echo "deadcode: unreachable functions (remove them; if one is API, test it):" >&2
	echo "$dead" >&2
	exit 1
fi
echo "deadcode: no other unreachable functions (${#pending[@]} pending: ${pending[*]})"
