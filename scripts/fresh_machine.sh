#!/usr/bin/env bash
# Fresh-machine check: clone the repository into a temporary folder and run the README's
# set-up and test commands exactly as the README writes them, nothing else.
#
#   scripts/fresh_machine.sh [REPO] [--worktree] [--keep]
#
# REPO        path or URL to clone (default: this repository); the clone is the HEAD of
#             its checked-out branch, so uncommitted changes are NOT in it
# --worktree  instead of cloning, copy this repository's working tree (tracked files and
#             untracked files git does not ignore) into the temporary folder: checks the
#             state about to be committed
# --keep      keep the temporary folder (it is deleted on success otherwise)
#
# The commands are the lines of the first ```bash block under the README's "## Two
# commands" heading, run one by one with bash in the clone, in an environment without this
# checkout's virtual environment or CMEDU_* settings. `make lab` (it opens JupyterLab and
# never returns) is the only line left out. Any step the README does not mention (a
# package to install by hand, a file outside the repository, a download the tests need)
# therefore fails the check. Prints the time of every command and the total.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$here" worktree=0 keep=0
for arg in "$@"; do
    case "$arg" in
        --worktree) worktree=1 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) repo="$arg" ;;
    esac
done

work="$(mktemp -d "${TMPDIR:-/tmp}/cmedu-fresh.XXXXXX")"
clone="$work/cmedu"
cleanup() {
    status=$?
    if [ "$status" = 0 ] && [ "$keep" = 0 ]; then rm -rf "$work"; else echo "kept: $work"; fi
}
trap cleanup EXIT

start=$(date +%s)
if [ "$worktree" = 1 ]; then
    echo "== copying the working tree of $here into $clone"
    mkdir -p "$clone"
    (cd "$here" && git ls-files -z --cached --others --exclude-standard \
        | xargs -0 -I{} sh -c 'test -e "$1" && printf "%s\0" "$1" || true' _ {} \
        | tar --null -T - -cf -) | tar -xf - -C "$clone"
    git -C "$clone" init -q && git -C "$clone" add -A
    git -C "$clone" -c user.name=fresh -c user.email=fresh@localhost commit -qm "working tree"
else
    case "$repo" in *://*) url="$repo" ;; *) url="file://$(cd "$repo" && pwd)" ;; esac
    echo "== git clone $url $clone"
    git clone --quiet "$url" "$clone"
fi
echo "   at $(git -C "$clone" log -1 --format='%h %s')"

# The README's commands: the first ```bash block under "## Two commands".
mapfile -t commands < <(awk '
    /^## / { in_section = ($0 ~ /^## Two commands/) }
    in_section && /^```bash/ { in_block = 1; next }
    in_block && /^```/ { exit }
    in_block && NF { print }
' "$clone/README.md")
if [ "${#commands[@]}" = 0 ]; then
    echo "FAILED: no \`\`\`bash block under '## Two commands' in README.md" >&2
    exit 1
fi

# A fresh shell: nothing from this checkout's environment leaks in.
unset VIRTUAL_ENV PYTHONPATH PYTHONHOME CONDA_PREFIX CONDA_DEFAULT_ENV
for v in $(env | grep -o '^\(CMEDU\|JUPYTER\)[A-Z_]*' || true); do unset "$v"; done
PATH="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v -x -F "$here/.venv/bin" | paste -sd:)"
export PATH

for line in "${commands[@]}"; do
    cmd="${line%%#*}"                      # the command as written, without its comment
    cmd="$(printf '%s' "$cmd" | sed 's/[[:space:]]*$//')"
    if [ -z "$cmd" ]; then continue; fi
    if [ "$cmd" = "make lab" ]; then
        echo "== skipped: $cmd (opens JupyterLab and waits; the end-to-end test covers it)"
        continue
    fi
    echo "== $cmd"
    t0=$(date +%s)
    if ! (cd "$clone" && bash -euo pipefail -c "$cmd"); then
        echo "FAILED after $(( $(date +%s) - t0 )) s: $cmd (in $clone)" >&2
        exit 1
    fi
    echo "== ok in $(( $(date +%s) - t0 )) s: $cmd"
done
total=$(( $(date +%s) - start ))
printf 'fresh-machine check passed in %d min %02d s\n' $((total / 60)) $((total % 60))
