# Report tables from runs.tsv. -v pairs="scenario:baseline:other ..." in the order of $SCENARIOS.
function median(list,   n, a, i, j, t) {
  n = split(list, a, " ")
  if (n == 0) return "NA"
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function fmt_ms(v) { return (v == "NA") ? v : sprintf("%.2f ms", v) }
function fmt_us(v) { return (v == "NA") ? v : sprintf("%.1f", v) }
function fmt_n(v) { return (v == "NA") ? v : sprintf("%.0f", v) }
function div(a, b) { return (a == "NA" || b == "NA" || b + 0 <= 0) ? "NA" : a / b }
function fmt_r(v) { return (v == "NA") ? v : sprintf("%.2f", v) }
function paired(s, num, den,   r, list) { # median over rounds of req/s num / req/s den (same round)
  list = ""
  for (r = 1; r <= maxround; r++)
    if ((s, num, r) in rr && (s, den, r) in rr && rr[s, den, r] > 0) list = list " " rr[s, num, r] / rr[s, den, r]
  return median(list)
}
function verdict(v, goal) { return (v == "NA") ? "NA" : (v + 0 >= goal ? "met" : "**not met**") }
NR > 1 && $4 != "NA" {
  k = $1 SUBSEP $2
  rps[k] = rps[k] " " $4; p99[k] = p99[k] " " $6; cpu[k] = cpu[k] " " $7; p50[k] = p50[k] " " $5
  rr[$1, $2, $3] = $4
  if ($3 + 0 > maxround) maxround = $3 + 0
  if ($9 != "c0 r0 w0 s0 t0") errs[k] = errs[k] " r" $3 ":" $9
}
END {
  n = split(pairs, ps, " ")
  for (i = 1; i <= n; i++) { split(ps[i], f, ":"); S[i] = f[1]; A[i] = f[2]; B[i] = f[3] }
  # 1. gerbang vs NGINX (the WAF rows compare gerbang+waf with nginx+modsecurity).
  nn = 0
  for (i = 1; i <= n; i++) if (B[i] ~ /^nginx/) nn++
  if (nn) {
    print "| scenario | gerbang req/s | nginx req/s | ratio | gerbang p99 | nginx p99 | gerbang µs CPU/req | nginx µs CPU/req |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
      if (B[i] !~ /^nginx/) continue
      s = S[i]; g = s SUBSEP A[i]; x = s SUBSEP B[i]
      label = (A[i] == "gerbang") ? s : s " (" A[i] " vs " B[i] ")"
      gr = median(rps[g]); nr = median(rps[x])
      printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", label, fmt_n(gr), fmt_n(nr), fmt_r(div(gr, nr)),
        fmt_ms(median(p99[g])), fmt_ms(median(p99[x])), fmt_us(median(cpu[g])), fmt_us(median(cpu[x]))
    }
    print ""
    printf "p50 latency, gerbang / nginx (medians):"
    j = 0
    for (i = 1; i <= n; i++) {
      if (B[i] !~ /^nginx/) continue
      printf "%s %s %s / %s", (j++ == 0 ? "" : ";"), S[i], fmt_ms(median(p50[S[i] SUBSEP A[i]])), fmt_ms(median(p50[S[i] SUBSEP B[i]]))
    }
    print "."
    print ""
  }
  # 2. Cost of gerbang's features against the plain gerbang.
  nf = 0
  for (i = 1; i <= n; i++) if (B[i] ~ /^gerbang\+/) nf++
  if (nf) {
    print "Feature cost, gerbang with the feature against the plain gerbang in the same run (ratio = with / without;"
    print "paired = median over rounds of the per-round ratio; CPU ratio = µs CPU/req without / with):"
    print ""
    print "| scenario | plain req/s | with feature req/s | ratio | paired | plain p99 | feature p99 | plain µs CPU/req | feature µs CPU/req | CPU ratio |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
      if (B[i] !~ /^gerbang\+/) continue
      s = S[i]; g = s SUBSEP A[i]; x = s SUBSEP B[i]
      gr = median(rps[g]); xr = median(rps[x]); gc = median(cpu[g]); xc = median(cpu[x])
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s, fmt_n(gr), fmt_n(xr), fmt_r(div(xr, gr)),
        fmt_r(paired(s, B[i], A[i])), fmt_ms(median(p99[g])), fmt_ms(median(p99[x])), fmt_us(gc), fmt_us(xc), fmt_r(div(gc, xc))
    }
    print ""
  }
  # 3. Goals (issues #3, #4, #5).
  ng = 0
  for (i = 1; i <= n; i++) {
    s = S[i]; g = s SUBSEP A[i]; x = s SUBSEP B[i]
    gr = median(rps[g]); xr = median(rps[x]); gc = median(cpu[g]); xc = median(cpu[x])
    if (s == "policies" || s == "audit-strict" || s == "audit-batched") {
      goal = (s == "policies") ? 0.90 : (s == "audit-strict") ? 0.85 : 0
      name = (s == "policies") ? "policy stack costs ≤ 10% of requests/s (issue #3)" : (s == "audit-strict") ? \
        "strict audit costs ≤ 15% of requests/s (issue #4)" : "batched audit (no goal set; issue #4)"
      line = sprintf("- %s: req/s ratio %s (paired %s); CPU ratio %s (%s → %s µs/req, +%s)", name, fmt_r(div(xr, gr)),
        fmt_r(paired(s, B[i], A[i])), fmt_r(div(gc, xc)), fmt_us(gc), fmt_us(xc), (gc == "NA" || xc == "NA") ? "NA" : sprintf("%.1f", xc - gc))
      if (goal > 0) line = line sprintf(" — goal ≥ %.2f: %s by req/s, %s by CPU", goal, verdict(div(xr, gr), goal), verdict(div(gc, xc), goal))
      goals[++ng] = line
    } else if (s ~ /^waf-/) {
      goals[++ng] = sprintf("- %s: gerbang+waf / nginx+modsecurity req/s %s (paired %s); CPU ratio nginx / gerbang %s (%s vs %s µs/req) — goal ≥ 1.5 (issue #5): %s by req/s, %s by CPU",
        s, fmt_r(div(gr, xr)), fmt_r(paired(s, A[i], B[i])), fmt_r(div(xc, gc)), fmt_us(gc), fmt_us(xc),
        verdict(div(gr, xr), 1.5), verdict(div(xc, gc), 1.5))
    }
  }
  if (ng) {
    print "Goals:"
    print ""
    for (i = 1; i <= ng; i++) print goals[i]
    print ""
  }
  for (k in errs) { split(k, kk, SUBSEP); printf "wrk errors, %s %s (round:c=connect r=read w=write s=status t=timeout):%s\n\n", kk[2], kk[1], errs[k] }
}
