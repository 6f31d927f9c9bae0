# Sourced by bench/start.sh and bench/seal.sh: their shared options and the table of their
# timings. The sourcing script defines `die`.

# Parse the options both benchmarks take: --rounds N, --out FILE, and -h/--help, which prints
# the sourcing script's header lines $1 (a sed range such as '2,18p'); everything else that is
# not an option is left in the array `positional`. Sets `rounds` and `out` (defaults are the
# caller's).
bench_options() {
    local help=$1
    shift
    positional=()
    while (($#)); do
        case $1 in
            --rounds) [[ $# -ge 2 ]] || die "--rounds needs a number"; rounds=$2; shift 2 ;;
            --out) [[ $# -ge 2 ]] || die "--out needs a file"; out=$2; shift 2 ;;
            -h|--help) sed -n "$help" "${BASH_SOURCE[1]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
            -*) die "unknown option '$1' (see --help)" ;;
            *) positional+=("$1"); shift ;;
        esac
    done
    [[ $rounds =~ ^[0-9]+$ && $rounds -gt 0 ]] || die "--rounds wants a positive number, not '$rounds'"
}

# min q1 median q3 max of the numbers on stdin, each divided by $1 and printed with printf
# format $2 (e.g. `quartiles 1 %d`, `quartiles 1000 %.1f`).
quartiles() {
    tr ' ' '\n' | grep -v '^$' | sort -n | awk -v div="$1" -v f="$2" '{a[NR] = $1}
        function q(p,  i) { i = 1 + p * (NR - 1); return a[int(i)] + (i - int(i)) * (a[int(i) + 1] - a[int(i)]) }
        END { printf f " " f " " f " " f " " f, a[1] / div, q(0.25) / div, q(0.5) / div, q(0.75) / div, a[NR] / div }'
}

# The table rows of configurations "${configs[@]}" from the associative arrays `times` and
# `diffs` (space-separated samples), divided by $1 and printed with format $2 (a `%d` or `%.1f`).
quartile_rows() {
    local div=$1 f=$2 c mn q1 md q3 mx d1 dm d3
    echo "| configuration | median ms | min / q1 / q3 / max ms | median of the paired +ms over runc (q1 .. q3) |"
    echo "|---|---|---|---|"
    for c in "${configs[@]}"; do
        read -r mn q1 md q3 mx <<<"$(quartiles "$div" "$f" <<<"${times[$c]}")"
        read -r _ d1 dm d3 _ <<<"$(quartiles "$div" "$f" <<<"${diffs[$c]}")"
        # shellcheck disable=SC2059 # the format is the caller's
        echo "| $c | $md | $mn / $q1 / $q3 / $mx | $(printf "%+${f#%}" "$dm") ($(printf "%+${f#%}" "$d1") .. $(printf "%+${f#%}" "$d3")) |"
    done
}
