package pgxsuite

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var execModes = []struct {
	name string
	mode pgx.QueryExecMode
}{
	{"CacheStatement", pgx.QueryExecModeCacheStatement},
	{"CacheDescribe", pgx.QueryExecModeCacheDescribe},
	{"DescribeExec", pgx.QueryExecModeDescribeExec},
	{"Exec", pgx.QueryExecModeExec},
	{"SimpleProtocol", pgx.QueryExecModeSimpleProtocol},
}

// TestExecModes runs parameterised queries, DML and a transaction in every query exec mode,
// each query several times so that the cached modes also run from their caches.
func TestExecModes(t *testing.T) {
	forEachTarget(t, func(t *testing.T, tg target) {
		for _, m := range execModes {
			t.Run(m.name, func(t *testing.T) {
				ctx := testCtx(t, 30*time.Second)
				table := tableName(tg, "modes_"+m.name)
				createTable(t, ctx, tg, table, "id int8 PRIMARY KEY, v text NOT NULL")
				conn := connect(t, ctx, tg, m.mode)
				for round := range 3 {
					checkScalarQueries(t, ctx, tg, conn, round)
					checkTypeRoundTrip(t, ctx, tg, conn)
					checkRows(t, ctx, tg, conn, round)
					checkDML(t, ctx, tg, conn, table, round)
				}
				checkTx(t, ctx, tg, conn, table)
			})
		}
	})
}

func checkScalarQueries(t *testing.T, ctx context.Context, tg target, conn *pgx.Conn, round int) {
	t.Helper()
	var sum int32
	if err := conn.QueryRow(ctx, "SELECT $1::int4 + $2::int4", 40, int32(round)).Scan(&sum); err != nil {
		t.Fatalf("[%s] int sum: %v", tg.name, err)
	}
	if sum != int32(40+round) {
		t.Fatalf("[%s] int sum: got %d, want %d", tg.name, sum, 40+round)
	}

	var s string
	arg := fmt.Sprintf("round %d: 'quoted' \\ and ünïcode", round)
	if err := conn.QueryRow(ctx, "SELECT $1::text || $2::text", arg, "!").Scan(&s); err != nil {
		t.Fatalf("[%s] text concat: %v", tg.name, err)
	}
	if s != arg+"!" {
		t.Fatalf("[%s] text concat: got %q, want %q", tg.name, s, arg+"!")
	}

	var isNull bool
	var echo *string
	if err := conn.QueryRow(ctx, "SELECT $1::int8 IS NULL, $2::text", nil, nil).Scan(&isNull, &echo); err != nil {
		t.Fatalf("[%s] nulls: %v", tg.name, err)
	}
	if !isNull || echo != nil {
		t.Fatalf("[%s] nulls: got isNull=%v echo=%v, want true and nil", tg.name, isNull, echo)
	}
}

func checkTypeRoundTrip(t *testing.T, ctx context.Context, tg target, conn *pgx.Conn) {
	t.Helper()
	ts := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
	in := struct {
		b    bool
		f    float64
		by   []byte
		ts   time.Time
		uuid string
		arr  []int32
		js   string // sent as text: the Exec and SimpleProtocol modes cannot encode a map for an unknown type
		big  int64
	}{true, 2.5, []byte{0, 1, 2, 0xfe, 0xff}, ts, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", []int32{3, 1, 4, 1, 5}, `{"k": "v", "n": 7}`, 1 << 40}

	var (
		b    bool
		f    float64
		by   []byte
		gotT time.Time
		uuid string
		arr  []int32
		js   map[string]any
		big  int64
	)
	err := conn.QueryRow(ctx,
		"SELECT $1::bool, $2::float8, $3::bytea, $4::timestamptz, $5::uuid::text, $6::int4[], $7::jsonb, $8::int8",
		in.b, in.f, in.by, in.ts, in.uuid, in.arr, in.js, in.big,
	).Scan(&b, &f, &by, &gotT, &uuid, &arr, &js, &big)
	if err != nil {
		t.Fatalf("[%s] type round trip: %v", tg.name, err)
	}
	if b != in.b || f != in.f || !reflect.DeepEqual(by, in.by) || !gotT.Equal(in.ts) || uuid != in.uuid ||
		!reflect.DeepEqual(arr, in.arr) || !reflect.DeepEqual(js, map[string]any{"k": "v", "n": 7.0}) || big != in.big {
		got, _ := json.Marshal([]any{b, f, by, gotT, uuid, arr, js, big})
		want, _ := json.Marshal([]any{in.b, in.f, in.by, in.ts, in.uuid, in.arr, in.js, in.big})
		t.Fatalf("[%s] type round trip: got %s, want %s", tg.name, got, want)
	}
}

func checkRows(t *testing.T, ctx context.Context, tg target, conn *pgx.Conn, round int) {
	t.Helper()
	n := 100 + round
	mul := int64(round + 3)
	rows, err := conn.Query(ctx, "SELECT g, g * $1::int8, repeat('x', g) FROM generate_series(1, $2::int4) g", mul, n)
	if err != nil {
		t.Fatalf("[%s] rows: %v", tg.name, err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		i++
		var g int32
		var prod int64
		var xs string
		if err := rows.Scan(&g, &prod, &xs); err != nil {
			t.Fatalf("[%s] rows scan: %v", tg.name, err)
		}
		if int(g) != i || prod != int64(i)*mul || len(xs) != i {
			t.Fatalf("[%s] row %d: got (%d, %d, len %d)", tg.name, i, g, prod, len(xs))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("[%s] rows: %v", tg.name, err)
	}
	if i != n {
		t.Fatalf("[%s] rows: got %d rows, want %d", tg.name, i, n)
	}
}

func checkDML(t *testing.T, ctx context.Context, tg target, conn *pgx.Conn, table string, round int) {
	t.Helper()
	id := int64(round)
	tag, err := conn.Exec(ctx, "INSERT INTO "+table+" (id, v) VALUES ($1, $2)", id, fmt.Sprintf("v%d", round))
	if err != nil {
		t.Fatalf("[%s] insert: %v", tg.name, err)
	}
	if !tag.Insert() || tag.RowsAffected() != 1 {
		t.Fatalf("[%s] insert: command tag %q", tg.name, tag)
	}
	tag, err = conn.Exec(ctx, "UPDATE "+table+" SET v = v || $2 WHERE id = $1", id, "-upd")
	if err != nil {
		t.Fatalf("[%s] update: %v", tg.name, err)
	}
	if !tag.Update() || tag.RowsAffected() != 1 {
		t.Fatalf("[%s] update: command tag %q", tg.name, tag)
	}
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM "+table+" WHERE id = $1", id).Scan(&v); err != nil {
		t.Fatalf("[%s] select after update: %v", tg.name, err)
	}
	if want := fmt.Sprintf("v%d-upd", round); v != want {
		t.Fatalf("[%s] select after update: got %q, want %q", tg.name, v, want)
	}
	var count int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id <= $1", id).Scan(&count); err != nil {
		t.Fatalf("[%s] count: %v", tg.name, err)
	}
	if count != id+1 {
		t.Fatalf("[%s] count: got %d, want %d", tg.name, count, id+1)
	}
}

// checkTx checks that a transaction sees its own insert and that a rollback removes it.
func checkTx(t *testing.T, ctx context.Context, tg target, conn *pgx.Conn, table string) {
	t.Helper()
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatalf("[%s] begin: %v", tg.name, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (id, v) VALUES ($1, $2)", int64(1000), "in tx"); err != nil {
		t.Fatalf("[%s] insert in tx: %v", tg.name, err)
	}
	var v string
	if err := tx.QueryRow(ctx, "SELECT v FROM "+table+" WHERE id = $1", int64(1000)).Scan(&v); err != nil || v != "in tx" {
		t.Fatalf("[%s] select in tx: got %q, %v", tg.name, v, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("[%s] rollback: %v", tg.name, err)
	}
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE id = $1", int64(1000)).Scan(&n); err != nil || n != 0 {
		t.Fatalf("[%s] after rollback: got count %d, %v; want 0", tg.name, n, err)
	}
}
