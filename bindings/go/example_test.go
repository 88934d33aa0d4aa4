package muxql_test

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/jackc/pgx/v5"

	muxql "github.com/muxql/muxql/bindings/go"
)

// An Engine driven by hand: a MySQL client connects, and the engine first asks for an upstream
// connection (the greeting carries the server's version).
func ExampleEngine() {
	cfg, err := muxql.NewConfig()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cfg.Close()
	if err := cfg.AddRoute(muxql.MySQL, "app", "127.0.0.1:3306", "app", "secret", "", 4); err != nil {
		fmt.Println(err)
		return
	}
	e, err := muxql.NewEngine(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()
	if _, err := e.ClientOpen(muxql.MySQL, 1); err != nil {
		fmt.Println(err)
		return
	}
	actions, err := e.Poll(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range actions {
		fmt.Println(a.Kind, a.Route, string(a.Data))
	}
	// Output: CONNECT_UPSTREAM 0 127.0.0.1:3306
}

// A Proxy in front of PostgreSQL (the database from scripts/dbs env), used through pgx.
func ExampleProxy() {
	db, user, password := os.Getenv("MUXQL_PG_DB"), os.Getenv("MUXQL_PG_SCRAM_USER"), os.Getenv("MUXQL_PG_PASSWORD")
	target := "127.0.0.1:" + os.Getenv("MUXQL_PG_PORT")

	cfg, err := muxql.NewConfig()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cfg.Close()
	for _, err := range []error{
		cfg.AddRoute(muxql.Postgres, db, target, user, password, "", 4),
		cfg.AddUser(user, password),
	} {
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	p, err := muxql.NewProxy(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go p.Serve(l, muxql.Postgres)
	defer p.Shutdown(context.Background())

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s/%s", user, password, l.Addr(), db))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close(ctx)
	var sum int
	if err := conn.QueryRow(ctx, "SELECT $1::int + 1", 1).Scan(&sum); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sum)
	// Output: 2
}
