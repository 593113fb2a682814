#!/usr/bin/env bash
# scripts/staticcheck.sh: staticcheck's default checks over the module.
#
# Findings listed below as pending (a file and a check) wait for the owner of
# that file to fix them; any other finding fails, and so does a pending entry
# that no longer matches one. `make lint` runs it with STATICCHECK set to the
# pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
STATICCHECK=${STATICCHECK:?set STATICCHECK to honnef.co/go/tools/cmd/staticcheck@VERSION}

# "file check", one per entry. Keep it short, and empty when it can be.
pending=()

# Findings are lines "file:line:col: message (CHECK)"; staticcheck exits 1
# when it finds anything (go run then adds "exit status 1"), which is judged
# below instead. Any other line (staticcheck itself failing) fails the check.
out=$($GO run "$STATICCHECK" ./... 2>&1 | grep -vx 'exit status 1') || true
keys=$(sed -nE 's/^([^:]+):[0-9]+:[0-9]+: .* \(([A-Z]+[0-9]+)\)$/\1 \2/p' <<<"$out" | sort -u)
fail=0
for p in "${pending[@]}"; do
	if ! grep -qxF "$p" <<<"$keys"; then
		echo "staticcheck: \"$p\" is no longer reported: remove it from the pending list in scripts/staticcheck.sh" >&2
		fail=1
	fi
done
while IFS= read -r line; do
	[ -n "$line" ] || continue
	key=$(sed -nE 's/^([^:]+):[0-9]+:[0-9]+: .* \(([A-Z]+[0-9]+)\)$/\1 \2/p' <<<"$line")
	if [ -z "$key" ] || ! printf '%s\n' "${pending[@]}" | grep -qxF "$key"; then
		echo "$line" >&2
		fail=1
	fi
done <<<"$out"
[ "$fail" -eq 0 ] || exit 1
echo "staticcheck: no other findings (${#pending[@]} pending: $(printf '%s; ' "${pending[@]}" | sed 's/; $//'))"
