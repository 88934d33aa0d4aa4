package pgxsuite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// target is one PostgreSQL endpoint the suite runs against.
type target struct {
	name string // "direct" or "muxql"
	url  string
}

var targetEnv = []struct{ name, env string }{
	{"direct", "MUXQL_TEST_PG_DIRECT_URL"},
	{"muxql", "MUXQL_TEST_PG_MUXQL_URL"},
}

// runID keeps the table names of concurrent or repeated runs apart.
var runID = rand.Uint32() % 1_000_000

// forEachTarget runs fn as one subtest per target. Both variables are required: a run that
// cannot compare the two targets fails instead of silently testing half.
func forEachTarget(t *testing.T, fn func(t *testing.T, tg target)) {
	t.Helper()
	for _, te := range targetEnv {
		url := os.Getenv(te.env)
		if url == "" {
			t.Fatalf("%s is not set (a postgres:// URL); see tests/drivers/README.md", te.env)
		}
		tg := target{name: te.name, url: url}
		t.Run(tg.name, func(t *testing.T) { fn(t, tg) })
	}
}

// testCtx is a context that ends well before the go test timeout, so a hang fails one case.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connConfig parses the target URL and applies the settings every connection of the suite
// uses: a context cancel sends a CancelRequest (instead of the default of closing the socket)
// and the connection is kept.
func connConfig(t *testing.T, tg target, mode pgx.QueryExecMode) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(tg.url)
	if err != nil {
		t.Fatalf("[%s] parse URL: %v", tg.name, err)
	}
	cfg.DefaultQueryExecMode = mode
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 10 * time.Second}
	}
	return cfg
}

// connect opens one connection with the given default exec mode, closed at the end of the test.
func connect(t *testing.T, ctx context.Context, tg target, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	conn, err := pgx.ConnectConfig(ctx, connConfig(t, tg, mode))
	if err != nil {
		t.Fatalf("[%s] connect: %v", tg.name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	})
	return conn
}

// newPool opens a pgxpool of up to maxConns connections with the given default exec mode.
func newPool(t *testing.T, ctx context.Context, tg target, mode pgx.QueryExecMode, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(tg.url)
	if err != nil {
		t.Fatalf("[%s] parse URL: %v", tg.name, err)
	}
	cc := connConfig(t, tg, mode)
	cfg.ConnConfig.DefaultQueryExecMode = cc.DefaultQueryExecMode
	cfg.ConnConfig.BuildContextWatcherHandler = cc.BuildContextWatcherHandler
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("[%s] pool: %v", tg.name, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// tableName is a table name unique to this run, target and purpose.
func tableName(tg target, purpose string) string {
	return fmt.Sprintf("drv_pgx_%s_%s_%d", purpose, tg.name, runID)
}

// createTable creates a table (dropping any leftover of the same name) and drops it when the
// test ends, through its own connection so that a broken test connection does not leak it.
func createTable(t *testing.T, ctx context.Context, tg target, name, columns string) {
	t.Helper()
	conn := connect(t, ctx, tg, pgx.QueryExecModeSimpleProtocol)
	if _, err := conn.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (%s)", name, name, columns)); err != nil {
		t.Fatalf("[%s] create table %s: %v", tg.name, name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(ctx, connConfig(t, tg, pgx.QueryExecModeSimpleProtocol))
		if err != nil {
			t.Errorf("[%s] drop table %s: connect: %v", tg.name, name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
			t.Errorf("[%s] drop table %s: %v", tg.name, name, err)
		}
	})
}

// sqlState is the SQLSTATE of a server error in err's chain, or "".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// errTally counts errors by message for a compact report of a concurrent run.
type errTally struct {
	mu     sync.Mutex
	total  int
	counts map[string]int
}

func (e *errTally) add(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts == nil {
		e.counts = map[string]int{}
	}
	e.total++
	e.counts[msg]++
}

// report fails the test when any error was counted, listing the most frequent messages.
func (e *errTally) report(t *testing.T, tg target, what string, attempts int) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.total == 0 {
		t.Logf("[%s] %s: %d operations, no errors", tg.name, what, attempts)
		return
	}
	msgs := make([]string, 0, len(e.counts))
	for m := range e.counts {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(i, j int) bool { return e.counts[msgs[i]] > e.counts[msgs[j]] })
	if len(msgs) > 8 {
		msgs = msgs[:8]
	}
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "\n  %5d x %s", e.counts[m], m)
	}
	t.Errorf("[%s] %s: %d of %d operations failed; most frequent errors:%s", tg.name, what, e.total, attempts, b.String())
}
