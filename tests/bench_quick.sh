#!/usr/bin/env bash
# Smoke test of eelsvae-bench: --help, a usage error, and a --quick run whose
# outputs are checked: every file (and every figure the report shows) exists,
# results.csv has the documented header, row count, methods and values in
# [0, 1], summary.md holds the F1 table.
# usage: bench_quick.sh BUILD_EXAMPLES_DIR
set -euo pipefail
bin=$1/eelsvae-bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Into a file, not a pipe: grep -q exits at the first line, and a help text
# over the pipe's buffer then dies of SIGPIPE, which pipefail reports.
"$bin" --help >"$tmp/help" && grep -q "^Usage: eelsvae-bench" "$tmp/help" || fail "--help"
set +e; "$bin" --no-such-option >/dev/null 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 2 ]] && grep -q "unknown option" "$tmp/err" || fail "bad option: rc $rc, $(cat "$tmp/err")"
set +e; "$bin" --quick >/dev/null 2>"$tmp/err"; rc=$?; set -e
[[ $rc -eq 2 ]] && grep -q -- "--out" "$tmp/err" || fail "missing --out: rc $rc, $(cat "$tmp/err")"

out=$tmp/run
"$bin" --quick --out "$out" >"$tmp/stdout" 2>"$tmp/stderr" || fail "eelsvae-bench --quick: $(tail -5 "$tmp/stderr")"
grep -q "^| VAE |" "$tmp/stdout" || fail "no F1 table on stdout"
grep -q "total wall time" "$tmp/stdout" || fail "no wall time on stdout"

for f in results.csv summary.md report.html; do [[ -s "$out/$f" ]] || fail "no $f"; done

# results.csv: the header, then 4 methods × (2 shifts + 2 sweep settings at
# ΔE 2.4 eV, the quick run's shifts being 0.9 and 5.4) = 16 rows.
expected='method,shift_ev,disks,radius,precision,recall,f1,iou,roc_auc,pr_auc,rule,rule_precision,rule_recall,rule_f1'
[[ "$(head -1 "$out/results.csv")" == "$expected" ]] || fail "results.csv header: $(head -1 "$out/results.csv")"
rows=$(($(wc -l <"$out/results.csv") - 1))
[[ $rows -eq 16 ]] || fail "results.csv has $rows rows, expected 16"
# roc_auc and pr_auc may be nan only when the truth has one class, which a
# disk mask on this scan never has: here every value must be in [0, 1]. The
# rule's metrics (the default fdr:0.01) are in [0, 1] too (an empty mask has
# precision 0 by the library's convention, never nan).
awk -F, 'NR > 1 {
  if (NF != 14) { print "line " NR ": " NF " fields"; bad = 1 }
  if ($1 !~ /^(vae|pca3|pca4|pca5)$/) { print "line " NR ": method " $1; bad = 1 }
  if ($2 + 0 <= 0 || $3 + 0 < 1 || $4 + 0 <= 0) { print "line " NR ": bad shift/disks/radius"; bad = 1 }
  if ($11 != "fdr:0.01") { print "line " NR ": rule " $11; bad = 1 }
  for (i = 5; i <= 14; i++)
    if (i != 11 && ($i !~ /^[0-9.eE+-]+$/ || $i + 0 < 0 || $i + 0 > 1)) { print "line " NR ": field " i " = " $i; bad = 1 }
} END { exit bad }' "$out/results.csv" || fail "results.csv values"
for m in vae pca3 pca4 pca5; do
  n=$(grep -c "^$m," "$out/results.csv")
  [[ $n -eq 4 ]] || fail "method $m has $n rows, expected 4"
done
grep -q "^vae,2.4,1,3," "$out/results.csv" || fail "no sweep row for one disk of radius 3"

# summary.md: the F1 table in BENCHMARK.md's layout, and the timings.
grep -q "^| ΔE | 0.9 | 5.4 |$" "$out/summary.md" || fail "summary.md: no F1 table header"
for label in VAE "PCA 3" "PCA 4" "PCA 5"; do
  grep -q "^| $label | [0-9.]* | [0-9.]* |$" "$out/summary.md" || fail "summary.md: no F1 row for $label"
done
grep -q "^| total |" "$out/summary.md" || fail "summary.md: no timings"

# The misses table, "missed (on the outer ring) / false alarms" per method and
# shift, must agree with results.csv: with A anomalous pixels (the summary's
# percentage of the 48 × 48 scan), missed = A·(1 − recall) and false alarms =
# TP·(1/precision − 1); the ring's count is part of the misses.
percent=$(grep -o "radius 5 px ([0-9.]* % of the pixels)" "$out/summary.md" | grep -o "[0-9.]* %" | tr -d ' %')
[[ -n "$percent" ]] || fail "summary.md: no anomalous fraction"
anomalous=$(awk -v f="$percent" 'BEGIN { printf "%d", f / 100 * 48 * 48 + 0.5 }')
declare -A csv_id=([VAE]=vae ["PCA 3"]=pca3 ["PCA 4"]=pca4 ["PCA 5"]=pca5)
for label in VAE "PCA 3" "PCA 4" "PCA 5"; do
  row=$(grep "^| $label | [0-9]* ([0-9]*) / [0-9]* |" "$out/summary.md") || fail "summary.md: no misses row for $label"
  col=0
  for shift in 0.9 5.4; do
    col=$((col + 1))
    read -r missed rim alarms < <(echo "$row" | awk -F'|' -v c=$((col + 2)) '{ gsub(/[()\/]/, " ", $c); print $c }')
    [[ $rim -le $missed ]] || fail "$label at $shift eV: $rim ring misses of $missed"
    awk -F, -v m="${csv_id[$label]}" -v s=$shift -v a="$anomalous" -v miss="$missed" -v fa="$alarms" '
      $1 == m && $2 == s && $3 == 2 && $4 == 5 {
        found = 1; tp = a - miss
        if (miss != int(a * (1 - $6) + 0.5)) { print "misses " miss ", recall " $6 " of " a; bad = 1 }
        if ($5 > 0 && fa != int(tp * (1 / $5 - 1) + 0.5)) { print "false alarms " fa ", precision " $5; bad = 1 }
      } END { exit bad || !found }' "$out/results.csv" || fail "$label at $shift eV: misses table vs results.csv"
  done
done

# report.html shows every figure, and every file it refers to exists.
for fig in fig1_maps.svg fig2_spectrum.svg fig3_histograms.svg fig4_f1.svg fig4b_precision_recall.svg \
    fig5_latent.svg fig6_concentration.svg; do
  grep -q "src=\"$fig\"" "$out/report.html" || fail "report.html does not show $fig"
done
grep -o '\(src\|href\)="[^"#:]*"' "$out/report.html" | sed 's/^[a-z]*="//; s/"$//' | sort -u >"$tmp/refs"
[[ -s "$tmp/refs" ]] || fail "report.html refers to no file"
while read -r ref; do [[ -s "$out/$ref" ]] || fail "report.html refers to missing $ref"; done <"$tmp/refs"
for f in "$out"/*.svg; do grep -q "</svg>" "$f" || fail "$f is not a complete SVG"; done

# The options that make the benchmark report what a user gets: usage errors
# name the option; a tiny run with the realistic noise and a self-trained VAE
# has a vae-self row per injected SI (the shift and one sweep setting) and
# shows it, and the F1 at the rule, in summary.md. The rule is Otsu's own
# here, so its precision, recall and F1 must equal Otsu's columns.
for bad in "--noise loud" "--threshold fdr:2" "--noise paper --cube x.npy"; do
  set +e; "$bin" --quick --out "$tmp/bad" $bad >/dev/null 2>"$tmp/err"; rc=$?; set -e
  [[ $rc -eq 2 ]] && grep -q -- "${bad%% *}" "$tmp/err" || fail "$bad: rc $rc, $(cat "$tmp/err")"
done
self=$tmp/self
"$bin" --quick --size 32 --shifts 5.4 --disks 1 --radius 3 --noise paper --self-train --threshold otsu:256 \
  --out "$self" >"$tmp/self.out" 2>"$tmp/self.err" || fail "--self-train: $(tail -5 "$tmp/self.err")"
[[ $(grep -c "^vae-self," "$self/results.csv") -eq 2 ]] || fail "--self-train: vae-self rows: $(cat "$self/results.csv")"
awk -F, 'NR > 1 && ($11 != "otsu:256" || $12 != $5 || $13 != $6 || $14 != $7) { bad = 1 } END { exit bad }' \
  "$self/results.csv" || fail "--threshold otsu:256: the rule's columns differ from Otsu's: $(cat "$self/results.csv")"
grep -q "^| VAE self-trained | [0-9.]* |$" "$self/summary.md" || fail "summary.md: no vae-self row"
grep -q "F1 at the rule otsu:256" "$self/summary.md" || fail "summary.md: no F1 at the rule"
grep -q "noise paper (realistic setting): dose 9" "$self/summary.md" || fail "summary.md: no realistic setting"
echo "1 passed, 0 failed"
