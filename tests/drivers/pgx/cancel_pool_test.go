package pgxsuite

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestContextCancel cancels a long pg_sleep through its context in every exec mode: the query
// must fail quickly with 57014 and the connection must stay usable.
func TestContextCancel(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		for _, m := range execModes {
			t.Run(m.name, func(t *testing.T) {
				ctx := testCtx(t, 30*time.Second)
				conn := connect(t, ctx, tg, m.mode)
				for round := range 2 {
					qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
					start := time.Now()
					_, err := conn.Exec(qctx, "SELECT pg_sleep($1::float8)", 20.0)
					elapsed := time.Since(start)
					cancel()
					if err == nil {
						t.Fatalf("[%s] round %d: pg_sleep(20) returned no error after %v", tg.name, round, elapsed)
					}
					// The CancelRequest reaches the server, which ends the query with 57014 (a
					// context error alone would mean the fallback deadline closed the socket).
					if sqlState(err) != "57014" {
						t.Fatalf("[%s] round %d: got %v, want SQLSTATE 57014", tg.name, round, err)
					}
					if round == 0 {
						t.Logf("[%s] cancelled after %v: %v", tg.name, elapsed.Round(time.Millisecond), err)
					}
					if elapsed > 5*time.Second {
						t.Fatalf("[%s] round %d: cancel took %v", tg.name, round, elapsed)
					}
					if conn.IsClosed() {
						t.Fatalf("[%s] round %d: connection closed after cancel (%v)", tg.name, round, err)
					}
					for i := range 3 {
						var v int32
						if err := conn.QueryRow(ctx, "SELECT $1::int4", int32(i)).Scan(&v); err != nil || v != int32(i) {
							t.Fatalf("[%s] round %d: query %d after cancel: got %d, %v", tg.name, round, i, v, err)
						}
					}
				}
			})
		}
	})
}

// TestPoolConcurrency runs 200 goroutines over one pgxpool of up to 200 connections (through
// muxql they share its small upstream pool); each checks the results of its own queries and
// transactions.
func TestPoolConcurrency(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		ctx := testCtx(t, 60*time.Second)
		table := tableName(tg, "pool")
		createTable(t, ctx, tg, table, "id int8 PRIMARY KEY, owner int4 NOT NULL, v text NOT NULL")
		pool := newPool(t, ctx, tg, pgx.QueryExecModeCacheStatement, 200)

		const goroutines, iters = 200, 5
		var tally errTally
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range iters {
					if err := poolIteration(ctx, pool, table, g, i); err != nil {
						tally.add("%v", err)
					}
				}
			})
		}
		wg.Wait()
		tally.report(t, tg, "pool goroutines", goroutines*iters)

		var count, owners int64
		if err := pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT owner) FROM "+table).Scan(&count, &owners); err != nil {
			t.Fatalf("[%s] final count: %v", tg.name, err)
		}
		if tally.total == 0 && (count != goroutines*iters || owners != goroutines) {
			t.Fatalf("[%s] final count: %d rows of %d owners, want %d rows of %d owners", tg.name, count, owners, goroutines*iters, goroutines)
		}
	})
}

// poolIteration runs one query and one transaction for goroutine g and checks that every
// answer is its own.
func poolIteration(ctx context.Context, pool *pgxpool.Pool, table string, g, i int) error {
	id := int64(g*1000 + i)
	var gotID int64
	var gotMD5, wantMD5 string
	err := pool.QueryRow(ctx, "SELECT $1::int8, md5($1::int8::text), md5($2::text)", id, fmt.Sprint(id)).
		Scan(&gotID, &gotMD5, &wantMD5)
	if err != nil {
		return fmt.Errorf("select: %w", err)
	}
	if gotID != id || gotMD5 != wantMD5 {
		return fmt.Errorf("select: goroutine %d got someone else's answer (%d, %s)", g, gotID, gotMD5)
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit
	val := fmt.Sprintf("g%d-i%d", g, i)
	if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (id, owner, v) VALUES ($1, $2, $3)", id, int32(g), val); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	var n int64
	var v string
	if err := tx.QueryRow(ctx, "SELECT count(*) OVER (), v FROM "+table+" WHERE owner = $1 AND id = $2", int32(g), id).Scan(&n, &v); err != nil {
		return fmt.Errorf("select in tx: %w", err)
	}
	if n != 1 || v != val {
		return fmt.Errorf("select in tx: goroutine %d got (%d, %q), want (1, %q)", g, n, v, val)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
