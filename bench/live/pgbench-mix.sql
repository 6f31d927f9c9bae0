-- A read-mostly reporting transaction mixed into the pgbench load of the live evaluation.
\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SELECT bid, sum(abalance), count(*) FROM pgbench_accounts WHERE bid = :bid AND aid BETWEEN :aid - 500 AND :aid GROUP BY bid;
SELECT tid, delta, mtime FROM pgbench_history ORDER BY mtime DESC LIMIT 10;
