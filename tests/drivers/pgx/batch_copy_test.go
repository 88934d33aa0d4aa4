package pgxsuite

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestBatch sends a pgx.Batch of inserts, an update and queries in every exec mode and checks
// each queued result in order.
func TestBatch(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		for _, m := range execModes {
			t.Run(m.name, func(t *testing.T) {
				ctx := testCtx(t, 30*time.Second)
				table := tableName(tg, "batch_"+m.name)
				createTable(t, ctx, tg, table, "id int8 PRIMARY KEY, v text NOT NULL")
				conn := connect(t, ctx, tg, m.mode)
				for round := range 3 {
					base := int64(round * 100)
					b := &pgx.Batch{}
					const n = 20
					for i := range int64(n) {
						b.Queue("INSERT INTO "+table+" (id, v) VALUES ($1, $2)", base+i, fmt.Sprintf("r%d-%d", round, i))
					}
					b.Queue("UPDATE "+table+" SET v = v || '!' WHERE id >= $1 AND id < $2", base, base+5)
					b.Queue("SELECT id, v FROM "+table+" WHERE id >= $1 AND id < $2 ORDER BY id", base, base+n)
					b.Queue("SELECT count(*), sum(id) FROM "+table+" WHERE id >= $1", base)
					b.Queue("SELECT $1::text || '-' || $2::int4", "echo", round)

					br := conn.SendBatch(ctx, b)
					for i := range n {
						tag, err := br.Exec()
						if err != nil {
							t.Fatalf("[%s] round %d insert %d: %v", tg.name, round, i, err)
						}
						if tag.RowsAffected() != 1 {
							t.Fatalf("[%s] round %d insert %d: tag %q", tg.name, round, i, tag)
						}
					}
					tag, err := br.Exec()
					if err != nil || tag.RowsAffected() != 5 {
						t.Fatalf("[%s] round %d update: tag %q, err %v; want 5 rows", tg.name, round, tag, err)
					}
					rows, err := br.Query()
					if err != nil {
						t.Fatalf("[%s] round %d select: %v", tg.name, round, err)
					}
					i := int64(0)
					for rows.Next() {
						var id int64
						var v string
						if err := rows.Scan(&id, &v); err != nil {
							t.Fatalf("[%s] round %d select scan: %v", tg.name, round, err)
						}
						want := fmt.Sprintf("r%d-%d", round, i)
						if i < 5 {
							want += "!"
						}
						if id != base+i || v != want {
							t.Fatalf("[%s] round %d row %d: got (%d, %q), want (%d, %q)", tg.name, round, i, id, v, base+i, want)
						}
						i++
					}
					if err := rows.Err(); err != nil || i != n {
						t.Fatalf("[%s] round %d select: %d rows, err %v; want %d rows", tg.name, round, i, err, n)
					}
					var count, sum int64
					if err := br.QueryRow().Scan(&count, &sum); err != nil {
						t.Fatalf("[%s] round %d count: %v", tg.name, round, err)
					}
					if count != n || sum != n*base+n*(n-1)/2 {
						t.Fatalf("[%s] round %d count/sum: got %d/%d", tg.name, round, count, sum)
					}
					var echo string
					if err := br.QueryRow().Scan(&echo); err != nil || echo != fmt.Sprintf("echo-%d", round) {
						t.Fatalf("[%s] round %d echo: got %q, %v", tg.name, round, echo, err)
					}
					if err := br.Close(); err != nil {
						t.Fatalf("[%s] round %d batch close: %v", tg.name, round, err)
					}
				}
			})
		}
	})
}

// TestCopyFrom copies rows in with CopyFrom, on its own and inside a rolled-back transaction,
// and checks what the table holds.
func TestCopyFrom(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		ctx := testCtx(t, 30*time.Second)
		table := tableName(tg, "copy")
		createTable(t, ctx, tg, table, "id int8 PRIMARY KEY, name text, amount float8, at timestamptz")
		conn := connect(t, ctx, tg, pgx.QueryExecModeCacheStatement)

		const n = 5000
		base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		rows := make([][]any, n)
		for i := range n {
			var name any = fmt.Sprintf("name-%d", i)
			if i%10 == 0 {
				name = nil
			}
			rows[i] = []any{int64(i), name, float64(i) / 4, base.Add(time.Duration(i) * time.Minute)}
		}
		cols := []string{"id", "name", "amount", "at"}
		copied, err := conn.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
		if err != nil {
			t.Fatalf("[%s] CopyFrom: %v", tg.name, err)
		}
		if copied != n {
			t.Fatalf("[%s] CopyFrom: copied %d, want %d", tg.name, copied, n)
		}

		// A copy inside a transaction that is rolled back leaves nothing behind.
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatalf("[%s] begin: %v", tg.name, err)
		}
		extra := [][]any{{int64(n), "extra", 1.0, base}, {int64(n + 1), "extra", 2.0, base}}
		if c, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(extra)); err != nil || c != 2 {
			t.Fatalf("[%s] CopyFrom in tx: copied %d, %v", tg.name, c, err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatalf("[%s] rollback: %v", tg.name, err)
		}

		// A copy that violates the primary key fails and the connection stays usable.
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows[:1])); sqlState(err) != "23505" {
			t.Fatalf("[%s] duplicate CopyFrom: got %v, want SQLSTATE 23505", tg.name, err)
		}

		var count, nulls int64
		var sumAmount float64
		var maxAt time.Time
		err = conn.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE name IS NULL), sum(amount), max(at) FROM "+table).
			Scan(&count, &nulls, &sumAmount, &maxAt)
		if err != nil {
			t.Fatalf("[%s] check: %v", tg.name, err)
		}
		wantSum := float64(n*(n-1)/2) / 4
		wantAt := base.Add(time.Duration(n-1) * time.Minute)
		if count != n || nulls != n/10 || sumAmount != wantSum || !maxAt.Equal(wantAt) {
			t.Fatalf("[%s] check: got count=%d nulls=%d sum=%v max(at)=%v; want %d, %d, %v, %v",
				tg.name, count, nulls, sumAmount, maxAt, n, n/10, wantSum, wantAt)
		}
	})
}
