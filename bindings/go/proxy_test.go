package muxql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// dbEnv holds the throwaway databases' settings (scripts/dbs env).
type dbEnv struct {
	pgPort, pgDB, pgUser, pgPassword string
	myPort, myDB, myUser, myPassword string
}

// requireEnv reads the database settings; a missing one fails the test (it is not skipped).
func requireEnv(t testing.TB) dbEnv {
	t.Helper()
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			t.Fatalf("%s is not set: run the tests under `eval \"$(scripts/dbs env DIR)\"` (scripts/test does)", name)
		}
		return v
	}
	return dbEnv{
		pgPort: get("MUXQL_PG_PORT"), pgDB: get("MUXQL_PG_DB"), pgUser: get("MUXQL_PG_SCRAM_USER"),
		pgPassword: get("MUXQL_PG_PASSWORD"),
		myPort:     get("MUXQL_MY_PORT"), myDB: get("MUXQL_MY_DB"), myUser: get("MUXQL_MY_USER"),
		myPassword: get("MUXQL_MY_PASSWORD"),
	}
}

// proxyConfig is the configuration the integration tests serve: a PostgreSQL and a MySQL route
// with a pool of pool each, their users as client logins, SCRAM for PostgreSQL clients.
func proxyConfig(t testing.TB, env dbEnv, pool int) *Config {
	t.Helper()
	cfg, err := NewConfig()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cfg.Close() })
	steps := []error{
		cfg.AddRoute(Postgres, env.pgDB, "127.0.0.1:"+env.pgPort, env.pgUser, env.pgPassword, "", pool),
		cfg.AddRoute(MySQL, env.myDB, "127.0.0.1:"+env.myPort, env.myUser, env.myPassword, "", pool),
		cfg.AddUser(env.pgUser, env.pgPassword),
		cfg.AddUser(env.myUser, env.myPassword),
		cfg.Set("auth", "scram"),
	}
	for _, err := range steps {
		if err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

// testProxy is a Proxy serving a PostgreSQL and a MySQL listener on loopback ports.
type testProxy struct {
	*Proxy
	env             dbEnv
	pgURL, mysqlDSN string
}

// logBuffer collects what a Proxy logs, for the test to fail on.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startProxy(t *testing.T, pool int, opts ...ProxyOption) *testProxy {
	t.Helper()
	env := requireEnv(t)
	var logged logBuffer
	opts = append(opts, WithErrorLog(log.New(&logged, "", 0)))
	t.Cleanup(func() {
		if s := logged.String(); s != "" {
			t.Errorf("the Proxy logged failures:\n%s", s)
		}
	})
	p, err := NewProxy(proxyConfig(t, env, pool), opts...)
	if err != nil {
		t.Fatal(err)
	}
	pgL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	myL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 2)
	go func() { served <- p.Serve(pgL, Postgres) }()
	go func() { served <- p.Serve(myL, MySQL) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		for range 2 {
			if err := <-served; !errors.Is(err, ErrProxyClosed) {
				t.Errorf("Serve returned %v, want ErrProxyClosed", err)
			}
		}
	})
	return &testProxy{
		Proxy: p,
		env:   env,
		pgURL: fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", env.pgUser, env.pgPassword,
			pgL.Addr(), env.pgDB),
		mysqlDSN: fmt.Sprintf("%s:%s@tcp(%s)/%s", env.myUser, env.myPassword, myL.Addr(), env.myDB),
	}
}

// settled waits until the Proxy holds at most clients clients and no connection the engine
// closed is left over.
func settled(t *testing.T, p *Proxy, clients int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n, flushing int
		p.query(func() { n, flushing = len(p.clients), len(p.flushing) })
		if n <= clients && flushing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients and %d closing connections left, want at most %d and none", n, flushing, clients)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pgConnect opens a pgx connection through the proxy; a context cancel sends a CancelRequest.
func (tp *testProxy) pgConnect(t *testing.T, ctx context.Context) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(tp.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 10 * time.Second}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("pgx connect through the proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// pgTable creates a table through the proxy and drops it when the test ends.
func (tp *testProxy) pgTable(t *testing.T, ctx context.Context, purpose, columns string) string {
	t.Helper()
	name := fmt.Sprintf("go_binding_%s_%d", purpose, os.Getpid())
	conn := tp.pgConnect(t, ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (%s)", name, name, columns)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return name
}

func (tp *testProxy) mysqlDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", tp.mysqlDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// errTally counts the errors of a concurrent run by message.
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

func (e *errTally) check(t *testing.T) {
	t.Helper()
	if e.total > 0 {
		var b strings.Builder
		for msg, n := range e.counts {
			fmt.Fprintf(&b, "\n  %dx %s", n, msg)
		}
		t.Fatalf("%d errors:%s", e.total, b.String())
	}
}

func TestPgxThroughProxy(t *testing.T) {
	tp := startProxy(t, 4)
	ctx := testCtx(t, 60*time.Second)
	conn := tp.pgConnect(t, ctx)

	t.Run("statement cache", func(t *testing.T) {
		// The default exec mode caches prepared statements per connection.
		for i := range 50 {
			var got int
			var s string
			if err := conn.QueryRow(ctx, "SELECT $1::int4 * 2, $2::text", i, fmt.Sprint("v", i)).Scan(&got, &s); err != nil {
				t.Fatal(err)
			}
			if got != 2*i || s != fmt.Sprint("v", i) {
				t.Fatalf("round %d: got %d %q", i, got, s)
			}
		}
	})

	t.Run("batch", func(t *testing.T) {
		table := tp.pgTable(t, ctx, "batch", "id int8 PRIMARY KEY, v text NOT NULL")
		b := &pgx.Batch{}
		for i := range 20 {
			b.Queue("INSERT INTO "+table+" (id, v) VALUES ($1, $2)", i, fmt.Sprint("r", i))
		}
		b.Queue("SELECT count(*), sum(id) FROM " + table)
		br := conn.SendBatch(ctx, b)
		for i := range 20 {
			if tag, err := br.Exec(); err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("insert %d: %v %v", i, tag, err)
			}
		}
		var count, sum int64
		if err := br.QueryRow().Scan(&count, &sum); err != nil || count != 20 || sum != 190 {
			t.Fatalf("count/sum: %d/%d, %v", count, sum, err)
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("copy from", func(t *testing.T) {
		table := tp.pgTable(t, ctx, "copy", "id int8, v text")
		rows := make([][]any, 5000)
		for i := range rows {
			rows[i] = []any{int64(i), strings.Repeat("x", i%100)}
		}
		n, err := conn.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "v"}, pgx.CopyFromRows(rows))
		if err != nil || n != int64(len(rows)) {
			t.Fatalf("CopyFrom: %d rows, %v", n, err)
		}
		var count, length int64
		if err := conn.QueryRow(ctx, "SELECT count(*), sum(length(v)) FROM "+table).Scan(&count, &length); err != nil {
			t.Fatal(err)
		}
		if count != 5000 || length != 50*99*50 {
			t.Fatalf("after COPY: %d rows, %d bytes", count, length)
		}
	})

	t.Run("context cancel", func(t *testing.T) {
		for round := range 2 {
			qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			start := time.Now()
			_, err := conn.Exec(qctx, "SELECT pg_sleep(20)")
			cancel()
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
				t.Fatalf("round %d: got %v after %v, want SQLSTATE 57014", round, err, time.Since(start))
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Fatalf("round %d: the cancel took %v", round, elapsed)
			}
			var one int
			if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("round %d: the connection is not usable after the cancel: %v", round, err)
			}
		}
	})

	t.Run("large result with backpressure", func(t *testing.T) {
		var total int64
		rows, err := conn.Query(ctx, "SELECT repeat('y', 1000) FROM generate_series(1, 20000)")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			total += int64(len(s))
		}
		if err := rows.Err(); err != nil || total != 20000*1000 {
			t.Fatalf("read %d bytes, %v", total, err)
		}
	})

	st, err := tp.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Routes) != 2 || st.Routes[0].Queries == 0 || st.Routes[0].PeakUpstreams > 4 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestPgxConcurrent runs 200 goroutines, each with its own connection, over a pool of 4: each
// selects its own id back and, in transactions, inserts its own rows and reads them back.
func TestPgxConcurrent(t *testing.T) {
	tp := startProxy(t, 4)
	ctx := testCtx(t, 90*time.Second)
	table := tp.pgTable(t, ctx, "concurrent", "worker int4, n int4, PRIMARY KEY (worker, n)")
	const workers, rounds = 200, 5
	var errs errTally
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			cfg, err := pgx.ParseConfig(tp.pgURL)
			if err != nil {
				errs.add("parse: %v", err)
				return
			}
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				errs.add("connect: %v", err)
				return
			}
			defer conn.Close(context.Background())
			for n := range rounds {
				var got int
				if err := conn.QueryRow(ctx, "SELECT $1::int4", w).Scan(&got); err != nil || got != w {
					errs.add("select own id: got %d, %v", got, err)
				}
				err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "INSERT INTO "+table+" VALUES ($1, $2)", w, n); err != nil {
						return err
					}
					var count int
					if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE worker = $1", w).Scan(&count); err != nil {
						return err
					}
					if count != n+1 {
						return fmt.Errorf("worker sees %d own rows, want %d", count, n+1)
					}
					return nil
				})
				if err != nil {
					errs.add("transaction: %v", err)
				}
			}
		})
	}
	wg.Wait()
	errs.check(t)
	settled(t, tp.Proxy, 2) // the table's connection and the one counting below
	var total int
	if err := tp.pgConnect(t, ctx).QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&total); err != nil || total != workers*rounds {
		t.Fatalf("%d rows in all, want %d (%v)", total, workers*rounds, err)
	}
	st, err := tp.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Routes[0].PeakUpstreams > 4 || st.Routes[0].PeakClients < workers/2 {
		t.Fatalf("pool of 4 exceeded or too few clients at once: %+v", st.Routes[0])
	}
}

// TestBackpressureWatermarks serves a large result through tiny write queues, so that the
// Proxy reports blocked and drained connections all the time.
func TestBackpressureWatermarks(t *testing.T) {
	tp := startProxy(t, 2, WithWatermarks(2048, 512))
	ctx := testCtx(t, 60*time.Second)
	conn := tp.pgConnect(t, ctx)
	for round := range 3 {
		var count, size int64
		rows, err := conn.Query(ctx, "SELECT g, repeat('z', 500) FROM generate_series(1, 10000) g")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var g int64
			var s string
			if err := rows.Scan(&g, &s); err != nil {
				t.Fatal(err)
			}
			if g != count+1 {
				t.Fatalf("round %d: row %d out of order (%d)", round, count+1, g)
			}
			count++
			size += int64(len(s))
			if count%2000 == 0 {
				time.Sleep(5 * time.Millisecond) // a slow reader fills the queue
			}
		}
		if err := rows.Err(); err != nil || count != 10000 || size != 5000000 {
			t.Fatalf("round %d: %d rows, %d bytes, %v", round, count, size, err)
		}
	}
}

func TestMySQLThroughProxy(t *testing.T) {
	tp := startProxy(t, 4)
	ctx := testCtx(t, 60*time.Second)
	db := tp.mysqlDB(t)
	table := fmt.Sprintf("go_binding_my_%d", os.Getpid())
	if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (worker INT, n INT, v VARCHAR(64), PRIMARY KEY (worker, n))"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + table) })

	t.Run("prepared statements", func(t *testing.T) {
		stmt, err := db.PrepareContext(ctx, "SELECT ? + 1, CONCAT('v', ?)")
		if err != nil {
			t.Fatal(err)
		}
		defer stmt.Close()
		for i := range 50 {
			var got int
			var s string
			if err := stmt.QueryRowContext(ctx, i, i).Scan(&got, &s); err != nil || got != i+1 || s != fmt.Sprint("v", i) {
				t.Fatalf("round %d: %d %q %v", i, got, s, err)
			}
		}
	})

	t.Run("transactions", func(t *testing.T) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+table+" VALUES (?, ?, ?)", -1, 1, "rolled back"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		tx, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+table+" VALUES (?, ?, ?)", -1, 2, "kept"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var vs []string
		rows, err := db.QueryContext(ctx, "SELECT v FROM "+table+" WHERE worker = -1 ORDER BY n")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			rows.Scan(&v)
			vs = append(vs, v)
		}
		if err := rows.Err(); err != nil || len(vs) != 1 || vs[0] != "kept" {
			t.Fatalf("after rollback and commit: %q, %v", vs, err)
		}
	})

	t.Run("context cancel", func(t *testing.T) {
		// go-sql-driver/mysql ends a cancelled query by closing its connection; the proxy must
		// give the upstream back clean (or drop it) and keep serving.
		for round := range 2 {
			qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			start := time.Now()
			_, err := db.ExecContext(qctx, "SELECT SLEEP(20)")
			cancel()
			if err == nil {
				t.Fatalf("round %d: SLEEP(20) returned without error", round)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Fatalf("round %d: the cancel took %v", round, elapsed)
			}
			var one int
			if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("round %d: not usable after the cancel: %v", round, err)
			}
		}
	})

	t.Run("200 concurrent", func(t *testing.T) {
		const workers, rounds = 200, 5
		db.SetMaxOpenConns(workers)
		db.SetMaxIdleConns(workers)
		var errs errTally
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				c, err := db.Conn(ctx)
				if err != nil {
					errs.add("conn: %v", err)
					return
				}
				defer c.Close()
				for n := range rounds {
					var got int
					if err := c.QueryRowContext(ctx, "SELECT ?", w).Scan(&got); err != nil || got != w {
						errs.add("select own id: got %d, %v", got, err)
					}
					tx, err := c.BeginTx(ctx, nil)
					if err != nil {
						errs.add("begin: %v", err)
						continue
					}
					if _, err := tx.ExecContext(ctx, "INSERT INTO "+table+" VALUES (?, ?, ?)", w, n, fmt.Sprint(w, "-", n)); err != nil {
						errs.add("insert: %v", err)
						tx.Rollback()
						continue
					}
					var count int
					var last string
					if err := tx.QueryRowContext(ctx, "SELECT COUNT(*), MAX(CONCAT(LPAD(n, 3, '0'), v)) FROM "+table+" WHERE worker = ?", w).Scan(&count, &last); err != nil {
						errs.add("read back: %v", err)
					} else if count != n+1 || !strings.HasSuffix(last, fmt.Sprint(w, "-", n)) {
						errs.add("read back: %d rows, last %q", count, last)
					}
					if err := tx.Commit(); err != nil {
						errs.add("commit: %v", err)
					}
				}
			})
		}
		wg.Wait()
		errs.check(t)
		db.SetMaxIdleConns(0) // the driver closes its idle connections: the proxy lets them go
		settled(t, tp.Proxy, 0)
		st, err := tp.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Routes[1].PeakUpstreams > 4 {
			t.Fatalf("pool of 4 exceeded: %+v", st.Routes[1])
		}
	})
	var me *mysql.MySQLError
	_, err := db.ExecContext(ctx, "SELECT * FROM no_such_table_here")
	if !errors.As(err, &me) || me.Number != 1146 {
		t.Fatalf("a server error must come through: %v", err)
	}
}

// TestShutdownWaitsForClients checks that Shutdown waits for a connected client until its
// context expires, that Serve then returns ErrProxyClosed, and that a second Shutdown is fine.
func TestShutdownWaitsForClients(t *testing.T) {
	env := requireEnv(t)
	p, err := NewProxy(proxyConfig(t, env, 2))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- p.Serve(l, Postgres) }()
	ctx := testCtx(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", env.pgUser, env.pgPassword, l.Addr(), env.pgDB))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Shutdown(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a client connected: %v", err)
	}
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
		t.Fatalf("Shutdown did not wait (%v)", elapsed)
	}
	if err := <-served; !errors.Is(err, ErrProxyClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("the client connection survived Shutdown")
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
	if _, err := p.Stats(); !errors.Is(err, ErrProxyClosed) {
		t.Fatalf("Stats after Shutdown: %v", err)
	}
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Serve(l2, Postgres); !errors.Is(err, ErrProxyClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

// TestUpstreamDown checks that a route whose server refuses connections gives the client an
// error instead of a hang, through the engine's own connect handling.
func TestUpstreamDown(t *testing.T) {
	env := requireEnv(t)
	cfg := proxyConfig(t, env, 2)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	if err := cfg.AddRoute(Postgres, "nowhere", deadAddr, env.pgUser, env.pgPassword, "", 1); err != nil {
		t.Fatal(err)
	}
	p, err := NewProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(l, Postgres)
	ctx := testCtx(t, 30*time.Second)
	_, err = pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s/nowhere?sslmode=disable", env.pgUser, env.pgPassword, l.Addr()))
	if err == nil {
		t.Fatal("connecting through a route whose server is down succeeded")
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "08006" {
		t.Fatalf("got %v, want the proxy's SQLSTATE 08006", err)
	}
}

// plainConn hides the socket behind a net.Conn (as a TLS or WebSocket adapter does), so the
// Proxy must use Read instead of the raw file descriptor.
type plainConn struct{ net.Conn }

type plainListener struct{ net.Listener }

func (l plainListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return plainConn{c}, nil
}

// TestWrappedListenerAndUnixUpstream serves clients from a listener whose connections are not
// sockets, over upstream connections to PostgreSQL's Unix socket.
func TestWrappedListenerAndUnixUpstream(t *testing.T) {
	env := requireEnv(t)
	dir := os.Getenv("MUXQL_PG_SOCKET_DIR")
	if dir == "" {
		t.Fatal("MUXQL_PG_SOCKET_DIR is not set (scripts/dbs env sets it)")
	}
	cfg, err := NewConfig()
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	socket := fmt.Sprintf("%s/.s.PGSQL.%s", dir, env.pgPort)
	if err := cfg.AddRoute(Postgres, env.pgDB, socket, env.pgUser, env.pgPassword, "", 2); err != nil {
		t.Fatal(err)
	}
	if err := cfg.AddUser(env.pgUser, env.pgPassword); err != nil {
		t.Fatal(err)
	}
	var dials sync.Map // network -> *atomic.Int64
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		n, _ := dials.LoadOrStore(network+" "+address, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	p, err := NewProxy(cfg, WithDialer(dial), WithErrorLog(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.Close()
		n, ok := dials.Load("unix " + socket)
		if !ok || n.(*atomic.Int64).Load() == 0 || n.(*atomic.Int64).Load() > 2 {
			var seen []string
			dials.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
			t.Errorf("want 1 or 2 dials of unix %s, got %v", socket, seen)
		}
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(plainListener{l}, Postgres)
	ctx := testCtx(t, 30*time.Second)
	url := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", env.pgUser, env.pgPassword, l.Addr(), env.pgDB)
	var wg sync.WaitGroup
	var errs errTally
	for w := range 20 {
		wg.Go(func() {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				errs.add("connect: %v", err)
				return
			}
			defer conn.Close(context.Background())
			var got int
			var path string
			// An upstream on a Unix socket has no client address.
			err = conn.QueryRow(ctx, "SELECT $1::int4, coalesce(inet_client_addr()::text, 'unix')", w).Scan(&got, &path)
			if err != nil || got != w || path != "unix" {
				errs.add("select: %d %q %v", got, path, err)
			}
			var n int64
			rows, err := conn.Query(ctx, "SELECT repeat('w', 300) FROM generate_series(1, 2000)")
			if err != nil {
				errs.add("query: %v", err)
				return
			}
			for rows.Next() {
				n++
			}
			if rows.Err() != nil || n != 2000 {
				errs.add("rows: %d %v", n, rows.Err())
			}
		})
	}
	wg.Wait()
	errs.check(t)
}

// TestCloseWhilePaused drops clients whose results are held back by backpressure (their
// upstream is paused) and then shuts the Proxy down while one is paused: neither may hang.
func TestCloseWhilePaused(t *testing.T) {
	env := requireEnv(t)
	p, err := NewProxy(proxyConfig(t, env, 1), WithWatermarks(1024, 256))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(l, Postgres)
	ctx := testCtx(t, 30*time.Second)
	url := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", env.pgUser, env.pgPassword, l.Addr(), env.pgDB)
	stalled := func() *pgx.Conn {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, "SELECT repeat('p', 1000) FROM generate_series(1, 100000)")
		if err != nil {
			t.Fatal(err)
		}
		if !rows.Next() {
			t.Fatalf("no first row: %v", rows.Err())
		}
		// Stop reading: the client's socket buffers fill, its queue passes the high-water
		// mark, and the engine pauses the upstream.
		time.Sleep(300 * time.Millisecond)
		return conn
	}
	for round := range 2 {
		conn := stalled()
		conn.PgConn().Conn().Close()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		// The Proxy stays responsive and the pool of one serves the next client.
		other, err := pgx.Connect(sctx, url)
		if err != nil {
			t.Fatalf("round %d: connect after dropping a paused client: %v", round, err)
		}
		var one int
		if err := other.QueryRow(sctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("round %d: query after dropping a paused client: %v", round, err)
		}
		other.Close(sctx)
		cancel()
	}
	conn := stalled()
	defer conn.PgConn().Conn().Close()
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs with a paused connection")
	}
}
