#!/bin/bash
# tests/run.sh - THE test command for nomade (CI's .ci/run calls exactly this).
#
#   bash tests/run.sh [extra pytest args for the main run]
#
# 1. installs what the tests need: Debian packages (when root), a Python 3.11 venv .venv with
#    torch==2.13.0 (CPU) first and then -e '.[train,dev,web,postgres]', and a Python 3.9 venv .venv39 (pyenv's
#    3.9) with -e '.[dev]' (runtime deps + pytest only). Venvs are rebuilt only when pyproject.toml
#    changes (stamp file .venv*/.nomade-stamp holds its hash); the C sacct reader
#    (nomade.slurm._sacct_scan) is rebuilt in both when one of its sources is newer, a failed
#    build logged in build-ext.log (under CI a failed build is an error: CI must test the C reader);
# 2. brings up the real Slurm cluster (tests/slurm/cluster.sh up) when root and exports
#    NOMADE_SLURM_READY=1;
# 3. runs ruff (pyproject.toml [tool.ruff]), then pytest with .venv on the whole suite, then .venv39 on
#    -m "not train and not slurm" (the browser tests included: the dashboard on 3.9 too);
# 4. exits non-zero if ruff found anything or either run failed (pytest's "no tests collected", rc 5, is a failure) and,
#    under CI (CI=true), also if any test marked slurm was skipped;
# 5. prints both pytest summary lines ("N passed, ...") at the end.
#
# Environment:
#   NOMADE_TEST_PYTHON311=python3          interpreter for .venv (must be 3.11)
#   NOMADE_TEST_PYTHON39=<pyenv 3.9>       interpreter for .venv39
#   NOMADE_TEST_APT_EXTRA="pkg ..."        more Debian packages to install (e.g. chromium)
#   NOMADE_TEST_SKIP_PY39=1                skip the Python 3.9 pass (local use only; refused under CI)
#   NOMADE_TEST_NO_SLURM=1                 do not bring the cluster up (slurm tests then skip; fails CI)
#   NOMADE_TEST_REPORT_DIR=/tmp/nomade-test-report   pytest logs, junit XML, skipped slurm tests
set -uo pipefail
T0=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export NOMADE_TEST_REPORT_DIR=${NOMADE_TEST_REPORT_DIR:-${TMPDIR:-/tmp}/nomade-test-report}
rm -rf "$NOMADE_TEST_REPORT_DIR"; mkdir -p "$NOMADE_TEST_REPORT_DIR"
CI=${CI:-false}
log() { printf '[run.sh %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { log "ERROR: $*"; exit 1; }
IS_ROOT=0; [ "$(id -u)" = 0 ] && IS_ROOT=1

# ------------------------------------------------------------------ 1a. Debian packages
APT_PKGS="sqlite3 lua5.1 gcc chromium prometheus prometheus-alertmanager postgresql ${NOMADE_TEST_APT_EXTRA:-}"
# gcc: the C sacct reader; chromium: browser tests; prometheus: promtool; prometheus-alertmanager: alert
# forwarding; postgresql: the store on PostgreSQL
if [ $IS_ROOT = 1 ] && command -v apt-get >/dev/null; then
  missing=""
  for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    log "apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends $missing >"$NOMADE_TEST_REPORT_DIR/apt.log" 2>&1 \
      || { apt-get update >>"$NOMADE_TEST_REPORT_DIR/apt.log" 2>&1 \
           && apt-get install -y --no-install-recommends $missing >>"$NOMADE_TEST_REPORT_DIR/apt.log" 2>&1; } \
      || die "apt-get install$missing failed (see $NOMADE_TEST_REPORT_DIR/apt.log)"
  fi
  # the Slurm stack (munge, slurm*, mariadb) is installed by cluster.sh up below
fi

# ------------------------------------------------------------------ 1b. venvs
STAMP=$( { cat pyproject.toml; echo "run.sh-venv-v1"; } | sha256sum | cut -c1-16)
find_py39() {
  [ -n "${NOMADE_TEST_PYTHON39:-}" ] && { echo "$NOMADE_TEST_PYTHON39"; return; }
  local p
  if command -v pyenv >/dev/null; then
    for p in "$(pyenv root)"/versions/3.9.*/bin/python; do [ -x "$p" ] && { echo "$p"; return; }; done
    p=$(pyenv which python3.9 2>/dev/null) && [ -x "$p" ] && { echo "$p"; return; }
  fi
  command -v python3.9 || true
}
make_venv() { # make_venv DIR PYTHON INSTALL-STEPS...
  local dir=$1 py=$2; shift 2
  if [ -f "$dir/.nomade-stamp" ] && [ "$(cat "$dir/.nomade-stamp")" = "$STAMP" ] && [ -x "$dir/bin/python" ]; then
    log "$dir up to date"; return 0
  fi
  log "building $dir with $($py --version 2>&1)"
  rm -rf "$dir"
  "$py" -m venv "$dir" || return 1
  local step
  for step in "$@"; do
    log "  $dir: pip install $step"
    # shellcheck disable=SC2086
    "$dir/bin/python" -m pip install -q $step >>"$NOMADE_TEST_REPORT_DIR/pip-$(basename "$dir").log" 2>&1 \
      || { tail -20 "$NOMADE_TEST_REPORT_DIR/pip-$(basename "$dir").log"; return 1; }
  done
  echo "$STAMP" > "$dir/.nomade-stamp"
}
PY311=${NOMADE_TEST_PYTHON311:-python3}
"$PY311" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || die "$PY311 is not Python 3.11 (set NOMADE_TEST_PYTHON311)"
# torch first and pinned: the CPU wheel from /opt/wheels when there, else the CPU index; never CUDA
TORCH_WHEEL=$(ls /opt/wheels/torch-2.13.0+cpu-cp311-*.whl 2>/dev/null | head -1)
TORCH_STEP=${TORCH_WHEEL:-"torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple"}
make_venv .venv "$PY311" "$TORCH_STEP" "-e .[train,dev,web,postgres]" || die "could not build .venv"
if [ "${NOMADE_TEST_SKIP_PY39:-0}" = 1 ] && [ "$CI" != true ]; then
  log "skipping the Python 3.9 pass (NOMADE_TEST_SKIP_PY39=1)"; PY39=""
else
  PY39=$(find_py39)
  [ -n "$PY39" ] || die "no Python 3.9 found (pyenv install 3.9, or set NOMADE_TEST_PYTHON39)"
  make_venv .venv39 "$PY39" "-e .[dev,web,postgres]" || die "could not build .venv39"
fi

# the C reader of sacct dumps (src/nomade/slurm/_sacct_scan.c + csrc/*.h) is built by the editable
# install; rebuilt here when a source is newer than the built module (a venv kept from an earlier run)
# (setup.py builds it as optional: a failed compile leaves pip's exit 0 and any older module in
# place, so the module is checked again after the build, and a stale one removed)
ext_stale() {  # $1: built module; true when missing or older than any of its sources
  for src in setup.py src/nomade/slurm/_sacct_scan.c src/nomade/slurm/csrc/*.h; do
    [ "$src" -nt "$1" ] && return 0
  done
  return 1
}
for v in .venv ${PY39:+.venv39}; do
  so=src/nomade/slurm/_sacct_scan$("$v/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
  if ext_stale "$so"; then
    log "  $v: building the C sacct reader"
    "$v/bin/python" -m pip install -q --no-deps -e . >>"$NOMADE_TEST_REPORT_DIR/build-ext.log" 2>&1
    if ext_stale "$so"; then
      rm -f "$so"
      [ "$CI" = true ] && die "the C sacct reader did not build for $v (see $NOMADE_TEST_REPORT_DIR/build-ext.log)"
      log "warning: the C sacct reader did not build for $v (see build-ext.log); the Python reader is used"
    fi
  fi
done

# ------------------------------------------------------------------ 2. the Slurm cluster
if [ $IS_ROOT = 1 ] && [ "${NOMADE_TEST_NO_SLURM:-0}" != 1 ]; then
  log "bringing up Slurm (tests/slurm/cluster.sh up)"
  if bash tests/slurm/cluster.sh up 2>"$NOMADE_TEST_REPORT_DIR/cluster-up.log"; then
    export NOMADE_SLURM_READY=1
    tail -1 "$NOMADE_TEST_REPORT_DIR/cluster-up.log"
  else
    tail -30 "$NOMADE_TEST_REPORT_DIR/cluster-up.log"
    log "cluster.sh up failed: the slurm tests will skip (and CI will fail)"
  fi
else
  log "not bringing up Slurm (not root or NOMADE_TEST_NO_SLURM=1): slurm tests will skip"
fi

# ------------------------------------------------------------------ 3. ruff, then pytest
# the lint rules (pyflakes, bugbear, bandit's S rules, blind except, no print in library code) are
# in pyproject.toml [tool.ruff]; a finding fails the run like a failing test
log "ruff check (.venv/bin/ruff $(.venv/bin/ruff --version 2>/dev/null | cut -d' ' -f2))"
.venv/bin/ruff check --output-format concise . 2>&1 | tee "$NOMADE_TEST_REPORT_DIR/ruff.log"
RC_RUFF=${PIPESTATUS[0]}

run_pytest() { # run_pytest NAME VENV ARGS... ; sets RC_<NAME>
  local name=$1 venv=$2; shift 2
  log "pytest ($name): $venv/bin/python -m pytest $*"
  "$venv/bin/python" -m pytest -rs -p no:cacheprovider --junitxml="$NOMADE_TEST_REPORT_DIR/$name.xml" "$@" \
    2>&1 | tee "$NOMADE_TEST_REPORT_DIR/pytest-$name.log"
  return "${PIPESTATUS[0]}"
}
run_pytest main .venv tests "$@"; RC_MAIN=$?
RC_39=0
if [ -n "${PY39:-}" ]; then
  run_pytest py39 .venv39 tests -m "not train and not slurm"; RC_39=$?
fi

# ------------------------------------------------------------------ 4/5. verdict
FAIL=0
echo "ruff: rc=$RC_RUFF  $(tail -1 "$NOMADE_TEST_REPORT_DIR/ruff.log")"
[ "$RC_RUFF" = 0 ] || FAIL=1
summary() { grep -E '^=+ .*(passed|failed|error|skipped|no tests ran).* =+$' "$NOMADE_TEST_REPORT_DIR/pytest-$1.log" | tail -1; }
echo
echo "==================== nomade test summary ===================="
echo "main (Python 3.11, whole suite): rc=$RC_MAIN  $(summary main)"
[ $RC_MAIN = 0 ] || FAIL=1
[ $RC_MAIN = 5 ] && echo "  main run collected no tests: that is a failure"
if [ -n "${PY39:-}" ]; then
  echo "py39 (Python 3.9, not train and not slurm): rc=$RC_39  $(summary py39)"
  [ $RC_39 = 0 ] || FAIL=1
fi
SKIPPED="$NOMADE_TEST_REPORT_DIR/skipped_slurm.txt"
if [ -s "$SKIPPED" ]; then
  echo "slurm tests skipped: $(wc -l < "$SKIPPED")"
  sed 's/^/  /' "$SKIPPED" | head -20
  if [ "$CI" = true ]; then echo "  CI=true: skipped slurm tests fail the run"; FAIL=1; fi
fi
echo "elapsed: $(( $(date +%s) - T0 )) s; logs in $NOMADE_TEST_REPORT_DIR"
[ $FAIL = 0 ] && echo "RESULT: PASS" || echo "RESULT: FAIL"
exit $FAIL
