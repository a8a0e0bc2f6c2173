#!/usr/bin/env bash
# The main job on the bundled demo class: the whole instructor cycle, start to finish.
#
#   bash scripts/demo.sh [WORK_DIR]
#
# Installs what is missing (scripts/setup.sh), copies the course (source/, nbgrader_config.py)
# into WORK_DIR (default: a new temporary folder; it must be empty or absent) so that no real
# gradebook, submission or release in the repository is ever touched, then there:
#   1. nbgrader generate_assignment, for every assignment in source/
#   2. python -m grader.demo             writes submitted/<student>/<assignment>/ for the 30
#                                        generated demo students (grader/demo.py)
#   3. python -m grader autograde        per assignment: reports/<a>.json and reports/<a>.md
#                                        (exit code 1 = some checks failed, 2 = a submission
#                                        could not be graded; neither stops the demo)
#   4. the grade table (one row per student, one column per assignment; "--": not graded)
#   5. nbgrader generate_feedback        feedback/<student>/<assignment>/*.html
#   6. nbgrader export                   reports/grades.csv
#   7. the class report                  reports/class/ (pass rates, misconceptions, histogram)
# The reports are copied to reports/demo/ in the repository (git-ignored) at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
export PATH="$ROOT/.venv/bin:$PATH"   # nbgrader runs alembic from PATH

say() { printf '\n[demo %4ss] %s\n' "$SECONDS" "$*"; }
note() { printf '[demo] note: %s\n' "$*"; }

WORK="${1:-}"
if [ -z "$WORK" ]; then
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/convgrade-demo.XXXXXX")"
elif [ -e "$WORK" ] && [ -n "$(ls -A "$WORK" 2>/dev/null)" ]; then
    echo "[demo] ERROR: $WORK exists and is not empty; give a new or empty folder" >&2
    exit 1
fi
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"

[ -d source ] || { echo "[demo] ERROR: no source/ folder in $ROOT" >&2; exit 1; }
cp -R source "$WORK/source"
cp nbgrader_config.py "$WORK/"
find "$WORK/source" \( -name .ipynb_checkpoints -o -name __pycache__ \) -prune -exec rm -rf {} +
mkdir -p "$WORK/exchange" "$WORK/reports"
chmod 777 "$WORK/exchange"
export CONVGRADE_EXCHANGE="$WORK/exchange"
unset CONVGRADE_DB_URL          # the demo always uses its own sqlite gradebook
cd "$WORK"
say "course copied to $WORK"

mapfile -t ASSIGNMENTS < <(find source -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%f\n' | sort)
[ "${#ASSIGNMENTS[@]}" -gt 0 ] || { echo "[demo] ERROR: source/ has no assignment" >&2; exit 1; }
say "assignments: ${ASSIGNMENTS[*]}"

# 1. release -------------------------------------------------------------------------------
for a in "${ASSIGNMENTS[@]}"; do
    say "nbgrader generate_assignment $a"
    nbgrader generate_assignment "$a" --log-level=WARN
done

# 2. demo submissions ------------------------------------------------------------------------
say "python -m grader.demo (demo students' submissions)"
python -m grader.demo --course "$WORK"

# 3. autograde -------------------------------------------------------------------------------
HAVE_CLI=0
if python -c 'import importlib.util as u, sys; sys.exit(u.find_spec("grader.__main__") is None)'; then
    HAVE_CLI=1
fi
for a in "${ASSIGNMENTS[@]}"; do
    if [ "$HAVE_CLI" -eq 1 ]; then
        say "python -m grader autograde submitted/ --assignment $a"
        set +e
        # The CLI's grade table goes to reports/<a>.txt (the demo prints one table for all
        # assignments below) and its per-submission progress lines are dropped; its last line
        # and any other message (a warning, an error) are shown.
        python -m grader autograde submitted/ --assignment "$a" \
            --json "reports/$a.json" --markdown "reports/$a.md" >"reports/$a.txt" \
            2> >(grep -Ev '^(checking|running|recording) [0-9]+/[0-9]+: ' >&2)
        rc=$?
        tail -n 1 "reports/$a.txt"
        set -e
        case "$rc" in
            0) ;;
            1) note "$a: some checks failed (exit 1), as expected for the demo's wrong answers" ;;
            2) note "$a: some submission could not be graded (exit 2); see reports/$a.md" ;;
            *) echo "[demo] ERROR: the grader failed on $a with exit code $rc" >&2; exit "$rc" ;;
        esac
    else
        note "the grader CLI (python -m grader) is not installed; using stock nbgrader autograde"
        nbgrader autograde "$a" --log-level=WARN || note "nbgrader autograde $a exited with $?"
    fi
done

# 4. grade table -----------------------------------------------------------------------------
if [ "$HAVE_CLI" -eq 1 ]; then
    say "grades"
    python - "${ASSIGNMENTS[@]}" <<'PY'
import json
import sys
from pathlib import Path

scores: dict[str, dict[str, str]] = {}
tops: dict[str, float] = {}
notes: list[str] = []
for assignment in sys.argv[1:]:
    path = Path("reports") / f"{assignment}.json"
    if not path.is_file():
        print(f"  (no {path})")
        continue
    for sub in json.loads(path.read_text(encoding="utf-8")).get("results", []):
        student = sub.get("student", "?")
        top = sub.get("max_score") or 0
        tops[assignment] = max(tops.get(assignment, 0), top)
        if not sub.get("graded", True):
            scores.setdefault(student, {})[assignment] = "--"
        else:
            scores.setdefault(student, {})[assignment] = f"{sub.get('score') or 0:g}"
        if sub.get("error"):
            notes.append(f"{student} {assignment}: {sub['error']}")
names = [a for a in sys.argv[1:] if a in tops]
width = max([len(a) for a in names] + [7])
print(f"  {'student':<12}" + "".join(f"{a:>{width + 2}}" for a in names))
print(f"  {'(max)':<12}" + "".join(f"{tops[a]:>{width + 2}g}" for a in names))
for student in sorted(scores):
    row = scores[student]
    print(f"  {student:<12}" + "".join(f"{row.get(a, ''):>{width + 2}}" for a in names))
for a in names:
    graded = [float(r[a]) for r in scores.values() if r.get(a, "--") != "--"]
    mean = sum(graded) / len(graded) if graded else 0.0
    full = sum(1 for g in graded if g == tops[a])
    print(f"  {a}: mean {mean:.1f}/{tops[a]:g}, {full} of {len(graded)} graded with full marks")
for note in notes:
    print(f"  note: {note[:110]}")
PY
fi

# 5. feedback --------------------------------------------------------------------------------
# One process per assignment, side by side: they only read the gradebook, and rendering the
# HTML is most of the demo's CPU after grading.
say "nbgrader generate_feedback ${ASSIGNMENTS[*]} (side by side)"
pids=()
for a in "${ASSIGNMENTS[@]}"; do
    nbgrader generate_feedback "$a" --log-level=WARN &
    pids+=("$!")
done
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "[demo] ERROR: nbgrader generate_feedback ${ASSIGNMENTS[$i]} failed" >&2; exit 1; }
done

# 6. export ----------------------------------------------------------------------------------
say "nbgrader export --to reports/grades.csv"
nbgrader export --to reports/grades.csv --log-level=WARN
if [ "$HAVE_CLI" -eq 0 ]; then
    say "grades (from the gradebook)"
    column -s, -t < reports/grades.csv 2>/dev/null || cat reports/grades.csv
fi

# 7. class report ----------------------------------------------------------------------------
shopt -s nullglob
JSONS=(reports/*.json)
if [ "${#JSONS[@]}" -eq 0 ]; then
    note "no autograde JSON, so no class report"
elif [ "$HAVE_CLI" -eq 1 ] && python -m grader report --help >/dev/null 2>&1; then
    say "python -m grader report"
    python -m grader report "${JSONS[@]}" --out reports/class
elif python -c 'import grader.engine.classreport' >/dev/null 2>&1; then
    say "python -m grader.engine.classreport"
    python -m grader.engine.classreport "${JSONS[@]}" --out reports/class
else
    note "the class report (grader.engine.classreport) is not installed yet; skipped"
fi

# done ---------------------------------------------------------------------------------------
mkdir -p "$ROOT/reports/demo"
cp -R reports/. "$ROOT/reports/demo/"
say "done in ${SECONDS} s. Course folder: $WORK"
echo "  reports:  $ROOT/reports/demo/ (grades.csv, <assignment>.json/.md, class/)"
echo "  feedback: $WORK/feedback/<student>/<assignment>/"
