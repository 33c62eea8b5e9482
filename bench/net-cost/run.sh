#!/usr/bin/env bash
# The safety net's cost on a rewritten single-row UPDATE, as backend CPU ticks (bench/README.md):
# N statements in one DO loop per variant, the backend's utime+stime read from /proc/self/stat
# before and after (superuser: pg_read_file), tables vacuumed before each run, ROUNDS rounds
# interleaved. Variants:
#   a   the dual-write's form before the net (no trigger)
#   a3  + the tableoid filter (no trigger)
#   b0  the rewrite's form today (tableoid filter, marker above a sort), no trigger
#   b   b0 + the net as committed (row trigger + statement trigger)
#   c2  the marker set ahead by a gating InitPlan + a row trigger with a WHEN condition
#   Not rewritten at all (a plain UPDATE), the trigger mirroring every row:
#   p   one plpgsql row trigger, the writer's rights, the key read back and upserted inline
#   pd  p as SECURITY DEFINER (no SET clause)
#   pds pd with SET search_path FROM CURRENT
#   q   p mirroring NEW instead of reading the row back
#   r   the net as committed mirroring an unrewritten row (SECURITY DEFINER mirror function)
#   s   r without SECURITY DEFINER and its SET clause
#   h   one SECURITY DEFINER function with SET search_path for the row and statement triggers:
#       the marker test first, then pd's inline mirror (a hybrid: unrewritten single-row writes
#       mirrored by the net, multi-row ones still rewritten); hb: b's rewritten form under h
#   hi, hib: h and hb with the writer's rights (no SECURITY DEFINER, no SET)
#   bulka, bulkb, bulkpd, bulkh: a, b, pd and hb on 1000-row UPDATEs (small N, e.g. N=300)
# Usage: PGHOST=127.0.0.1 PGUSER=postgres bench/net-cost/run.sh   (creates database net_cost)
#        VARIANTS="a b p pd" picks variants (default: a a3 b0 b c2)
set -euo pipefail
cd "$(dirname "$0")"
N=${N:-50000}
ROUNDS=${ROUNDS:-3}
psql -qX -c "DROP DATABASE IF EXISTS net_cost" -c "CREATE DATABASE net_cost"
psql -qX -d net_cost -f setup.sql >/dev/null
# The trigger a variant runs. pds, s and hi differ from pd, r and h only in how the function runs
# (with or without SECURITY DEFINER and SET search_path), so they are made from them.
DEFINER_SET='SECURITY DEFINER SET search_path FROM CURRENT'
trigger_sql() {
  case $1 in
    b | bulkb) cat trigger_b.sql ;;
    pd | bulkpd) cat trigger_pd.sql ;;
    pds) sed "s/SECURITY DEFINER AS/$DEFINER_SET AS/" trigger_pd.sql ;;
    s) sed "s/ $DEFINER_SET//" trigger_r.sql ;;
    h | hb | bulkh) cat trigger_h.sql ;;
    hi | hib) sed "s/ $DEFINER_SET//" trigger_h.sql ;;
    c2 | p | q | r) cat "trigger_$1.sql" ;;
    *) cat trigger_none.sql ;;
  esac
}
stmt_of() {
  case $1 in
    p | pd | pds | q | r | s | h | hi) echo stmt_plain.sql ;;
    hb | hib) echo stmt_b.sql ;;
    bulkh) echo stmt_bulkb.sql ;;
    bulkpd) echo stmt_bulkplain.sql ;;
    *) echo "stmt_${1%0}.sql" ;;
  esac
}
for round in $(seq 1 "$ROUNDS"); do
  for v in ${VARIANTS:-a a3 b0 b c2}; do
    trigger_sql "$v" | psql -qX -d net_cost -f - -c "VACUUM t" -c "VACUUM t__duet" 2>/dev/null
    stmt=$(sed -n '2,$p' "$(stmt_of $v)" | tr '\n' ' ' | sed 's/:id/(1 + (i * 7919) % 100000)/g')
    ticks=$(PGOPTIONS='-c synchronous_commit=off' psql -qX -d net_cost -At 2>&1 <<SQL | grep -o "ticks [0-9]*\|ERROR.*"
DO \$\$ DECLARE s0 text; s1 text; BEGIN
 s0 := pg_read_file('/proc/self/stat');
 FOR i IN 1..$N LOOP $stmt END LOOP;
 s1 := pg_read_file('/proc/self/stat');
 RAISE NOTICE 'ticks %', (split_part(s1,' ',14)::int + split_part(s1,' ',15)::int)
                       - (split_part(s0,' ',14)::int + split_part(s0,' ',15)::int);
END \$\$;
SQL
)
    echo "round $round $v $ticks"
  done
done
psql -qX -c "DROP DATABASE net_cost"
