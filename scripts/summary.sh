# Sourced by scripts/test.sh: the counts behind `make test`'s last line. Each count_* function
# prints "PASSED FAILED" for one suite, from its log and its exit status. A suite that failed
# without its runner counting a failure (it did not build, died before or inside its runner, ran
# no test, or its log is missing) counts as one failure: the line never says 0 failed while a
# suite did not pass.

# cargo test's "test result: ok. 12 passed; 0 failed; ..." lines, one per test binary.
count_cargo() { # LOG STATUS
  local passed failed
  passed=$(grep -ohE 'test result: [A-Za-z]+\. [0-9]+ passed' "$1" 2>/dev/null | awk '{s += $4} END {print s + 0}')
  failed=$(grep -ohE 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$1" 2>/dev/null | awk '{s += $6} END {print s + 0}')
  settle "$passed" "$failed" "$2"
}

# pytest's closing line: "[=== ]N failed, M passed, K errors[, S skipped] in 1.23s[ ===]", or
# "no tests ran in 0.01s".
count_pytest() { # LOG STATUS
  local last passed failed
  last=$(grep -E '(passed|failed|errors?|skipped|no tests ran).* in [0-9.]+s' "$1" 2>/dev/null | tail -n 1)
  passed=$(grep -oE '[0-9]+ passed' <<< "$last" | awk '{s += $1} END {print s + 0}')
  failed=$(grep -oE '[0-9]+ (failed|errors?)' <<< "$last" | awk '{s += $1} END {print s + 0}')
  settle "$passed" "$failed" "$2"
}

# node --test's closing lines, "# tests N" then "# pass N", "# fail N", "# cancelled N" (TAP; the
# spec reporter writes "ℹ pass N"), summed over the runs in the log. A cancelled test (its file
# died, or it timed out) is a failure; a test's own output ("# pass 9" before the closing lines)
# is not counted.
count_node() { # LOG STATUS
  local passed=0 failed=0
  if [ -r "$1" ]; then
    read -r passed failed < <(awk '
      /^(# |ℹ )tests [0-9]+$/ { closing = 1 }
      closing && /^(# |ℹ )pass [0-9]+$/ { passed += $3 }
      closing && /^(# |ℹ )(fail|cancelled) [0-9]+$/ { failed += $3 }
      /^(# |ℹ )duration_ms / { closing = 0 }
      END { print passed + 0, failed + 0 }' "$1")
  fi
  settle "$passed" "$failed" "$2"
}

# A check with no count of its own (fmt, clippy, the template lint): one failure when it failed.
count_check() { # STATUS
  settle 0 0 "$1"
}

settle() { # PASSED FAILED STATUS
  local failed=$2
  if [ "$3" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
  fi
  echo "$1 $failed"
}

# The running totals: add NAME "PASSED FAILED" adds one suite's or check's counts; summary prints
# the suites that failed and the line, and fails when anything failed.
passed=0 failed=0 failures=()
add() { # NAME "PASSED FAILED"
  local p f
  read -r p f <<< "$2"
  passed=$((passed + p)) failed=$((failed + f))
  if [ "$f" -ne 0 ]; then
    failures+=("$1")
  fi
}
summary() {
  if [ ${#failures[@]} -ne 0 ]; then
    local joined
    printf -v joined '%s, ' "${failures[@]}"
    echo "failed: ${joined%, }"
  fi
  echo "tests: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
