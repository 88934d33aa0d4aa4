package pgxsuite

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestIssueDescribeExecAcrossSync: in QueryExecModeDescribeExec pgx describes each query as
// the unnamed statement in one Sync'ed exchange and binds it in the next. Many clients running
// different SQL texts must all get their answers (through muxql the Bind has been seen to land
// where the unnamed statement does not exist: 26000).
func TestIssueDescribeExecAcrossSync(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		ctx := testCtx(t, 60*time.Second)
		pool := newPool(t, ctx, tg, pgx.QueryExecModeDescribeExec, 200)

		const goroutines, queries = 200, 4
		var tally errTally
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for q := range queries {
					k := int32(g*queries + q)
					if err := describeExecQuery(ctx, pool, g, q, k); err != nil {
						tally.add("%v", err)
					}
				}
			})
		}
		wg.Wait()
		tally.report(t, tg, "DescribeExec queries", goroutines*queries)
	})
}

// describeExecQuery runs one of a few query shapes whose text is unique to (g, q).
func describeExecQuery(ctx context.Context, pool *pgxpool.Pool, g, q int, k int32) error {
	switch q % 2 {
	case 0:
		var got int32
		sql := fmt.Sprintf("SELECT $1::int4 + %d /* g%d q%d */", k, g, q)
		if err := pool.QueryRow(ctx, sql, k).Scan(&got); err != nil {
			return err
		}
		if got != 2*k {
			return fmt.Errorf("goroutine %d query %d: got %d, want %d", g, q, got, 2*k)
		}
	default:
		var s string
		var n int64
		sql := fmt.Sprintf("SELECT $1::text || '-%d', $2::int8 * %d /* g%d q%d */", k, k, g, q)
		if err := pool.QueryRow(ctx, sql, fmt.Sprint(g), int64(k)).Scan(&s, &n); err != nil {
			return err
		}
		if s != fmt.Sprintf("%d-%d", g, k) || n != int64(k)*int64(k) {
			return fmt.Errorf("goroutine %d query %d: got (%q, %d)", g, q, s, n)
		}
	}
	return nil
}

// TestIssueSchemaChangeCachedStatements: connections that cached `SELECT * FROM t WHERE id=$1`
// (the default QueryExecModeCacheStatement) see a column added. PostgreSQL answers each of them
// at most once with 0A000 "cached plan must not change result type"; pgx then drops the cached
// statement and the next call succeeds with the new column. Nothing else may happen (through
// muxql others have been seen to get 08P01 "bind message has 2 result formats but query has 3
// columns").
func TestIssueSchemaChangeCachedStatements(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		ctx := testCtx(t, 60*time.Second)
		table := tableName(tg, "schema")
		createTable(t, ctx, tg, table, "id int4 PRIMARY KEY, a int4 NOT NULL")
		admin := connect(t, ctx, tg, pgx.QueryExecModeSimpleProtocol)
		if _, err := admin.Exec(ctx, "INSERT INTO "+table+" VALUES (1, 10)"); err != nil {
			t.Fatalf("[%s] insert: %v", tg.name, err)
		}

		const nconns = 8
		query := "SELECT * FROM " + table + " WHERE id = $1"
		conns := make([]*pgx.Conn, nconns)
		for i := range conns {
			conns[i] = connect(t, ctx, tg, pgx.QueryExecModeCacheStatement)
			for range 2 {
				vals, err := selectValues(ctx, conns[i], query)
				if err != nil {
					t.Fatalf("[%s] conn %d before ALTER: %v", tg.name, i, err)
				}
				if want := []any{int32(1), int32(10)}; !reflect.DeepEqual(vals, want) {
					t.Fatalf("[%s] conn %d before ALTER: got %v, want %v", tg.name, i, vals, want)
				}
			}
		}

		if _, err := admin.Exec(ctx, "ALTER TABLE "+table+" ADD COLUMN b int4 NOT NULL DEFAULT 7"); err != nil {
			t.Fatalf("[%s] alter: %v", tg.name, err)
		}

		want := []any{int32(1), int32(10), int32(7)}
		var wg sync.WaitGroup
		problems := make([]string, nconns)
		errorsBefore := make([]int, nconns) // errors before the first success, per connection
		for i, conn := range conns {
			wg.Go(func() {
				// Up to 3 attempts, recording every error, so that the report shows whether a
				// connection recovers after an unexpected error.
				var seen []error
				for attempt := range 3 {
					vals, err := selectValues(ctx, conn, query)
					if err != nil {
						seen = append(seen, err)
						continue
					}
					errorsBefore[i] = len(seen)
					switch {
					case !reflect.DeepEqual(vals, want):
						problems[i] = fmt.Sprintf("conn %d attempt %d: got %v, want %v (errors before: %s)", i, attempt, vals, want, joinErrs(seen))
					case len(seen) > 1 || len(seen) == 1 && sqlState(seen[0]) != "0A000":
						problems[i] = fmt.Sprintf("conn %d: success on attempt %d after [%s], want at most one 0A000 before it", i, attempt, joinErrs(seen))
					default:
						if again, err := selectValues(ctx, conn, query); err != nil || !reflect.DeepEqual(again, want) {
							problems[i] = fmt.Sprintf("conn %d: query after success: got %v, %v", i, again, err)
						}
					}
					return
				}
				problems[i] = fmt.Sprintf("conn %d: no success in 3 attempts: [%s]", i, joinErrs(seen))
			})
		}
		wg.Wait()
		t.Logf("[%s] errors before the first success after ALTER, per connection: %v", tg.name, errorsBefore)
		for _, p := range problems {
			if p != "" {
				t.Errorf("[%s] %s", tg.name, p)
			}
		}
	})
}

// selectValues runs query with id 1 and returns the values of its single row.
func selectValues(ctx context.Context, conn *pgx.Conn, query string) ([]any, error) {
	rows, err := conn.Query(ctx, query, int32(1))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var vals []any
	n := 0
	for rows.Next() {
		n++
		if vals, err = rows.Values(); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if n != 1 {
		return nil, fmt.Errorf("got %d rows, want 1", n)
	}
	return vals, nil
}

// joinErrs lists errors separated by "; ".
func joinErrs(errs []error) string {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}
