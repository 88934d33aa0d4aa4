// Command muxql-go-proxy is a PostgreSQL and MySQL/MariaDB multiplexing proxy hosted in Go: the
// muxql Engine behind the Go binding's Proxy.
//
//	muxql-go-proxy --listen-pg 127.0.0.1:6432 --pg-upstream postgres://app:pw@127.0.0.1:5432/app \
//	               [--listen-mysql ADDR --mysql-upstream mysql://app:pw@127.0.0.1:3306/app] \
//	               [--pool N] [--auth scram|md5|cleartext|trust] [--mysql-auth PLUGIN] \
//	               [--user name:password ...] [--cpuprofile FILE]
//
// Each upstream URL makes a route for its database, served as its user and password, and a
// client login with the same credentials. SIGINT or SIGTERM stops accepting, waits up to 10 s
// for clients to leave, then exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	muxql "github.com/muxql/muxql/bindings/go"
)

// users collects repeated --user flags.
type users []string

// String joins the logins given so far (flag.Value).
func (u *users) String() string { return strings.Join(*u, ",") }

// Set adds one name:password login (flag.Value).
func (u *users) Set(v string) error {
	if !strings.Contains(v, ":") {
		return errors.New("want name:password")
	}
	*u = append(*u, v)
	return nil
}

// upstream is a parsed --pg-upstream or --mysql-upstream URL.
type upstream struct {
	user, password, target, database string
}

func parseUpstream(raw string, schemes []string, defaultPort string) (upstream, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return upstream{}, err
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		return upstream{}, fmt.Errorf("%q: scheme must be one of %v", raw, schemes)
	}
	if u.User == nil || u.User.Username() == "" {
		return upstream{}, fmt.Errorf("%q: no user", raw)
	}
	password, _ := u.User.Password()
	database := strings.TrimPrefix(u.Path, "/")
	if database == "" || u.Hostname() == "" {
		return upstream{}, fmt.Errorf("%q: want USER:PASS@HOST[:PORT]/DB", raw)
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	return upstream{u.User.Username(), password, net.JoinHostPort(u.Hostname(), port), database}, nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "muxql-go-proxy:", err)
		os.Exit(2)
	}
}

func run() error {
	var extra users
	listenPG := flag.String("listen-pg", "", "PostgreSQL listen address (host:port)")
	listenMy := flag.String("listen-mysql", "", "MySQL listen address (host:port)")
	pgUp := flag.String("pg-upstream", "", "postgres://user:pass@host:port/db")
	myUp := flag.String("mysql-upstream", "", "mysql://user:pass@host:port/db")
	pool := flag.Int("pool", 0, "upstream connections per route (0: the engine's default, 10)")
	auth := flag.String("auth", "", "PostgreSQL client authentication: scram, md5, cleartext, trust")
	myAuth := flag.String("mysql-auth", "", "MySQL client authentication plugin")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile to this file until exit")
	flag.Var(&extra, "user", "extra client login name:password (repeatable)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	if (*listenPG == "") != (*pgUp == "") || (*listenMy == "") != (*myUp == "") || (*listenPG == "" && *listenMy == "") {
		return errors.New("give --listen-pg with --pg-upstream and/or --listen-mysql with --mysql-upstream")
	}

	cfg, err := muxql.NewConfig()
	if err != nil {
		return err
	}
	defer cfg.Close()
	type listener struct {
		addr     string
		protocol muxql.Protocol
	}
	var listeners []listener
	for _, r := range []struct {
		listen, raw string
		protocol    muxql.Protocol
		schemes     []string
		port        string
	}{
		{*listenPG, *pgUp, muxql.Postgres, []string{"postgres", "postgresql"}, "5432"},
		{*listenMy, *myUp, muxql.MySQL, []string{"mysql", "mariadb"}, "3306"},
	} {
		if r.listen == "" {
			continue
		}
		up, err := parseUpstream(r.raw, r.schemes, r.port)
		if err != nil {
			return err
		}
		if err := cfg.AddRoute(r.protocol, up.database, up.target, up.user, up.password, "", *pool); err != nil {
			return err
		}
		if err := cfg.AddUser(up.user, up.password); err != nil {
			return err
		}
		listeners = append(listeners, listener{r.listen, r.protocol})
	}
	for _, u := range extra {
		name, password, _ := strings.Cut(u, ":")
		if err := cfg.AddUser(name, password); err != nil {
			return err
		}
	}
	for key, value := range map[string]string{"auth": *auth, "mysql_auth": *myAuth} {
		if value != "" {
			if err := cfg.Set(key, value); err != nil {
				return fmt.Errorf("--%s %s: %w", strings.ReplaceAll(key, "_", "-"), value, err)
			}
		}
	}
	p, err := muxql.NewProxy(cfg)
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	served := make(chan error, len(listeners))
	for _, l := range listeners {
		nl, err := net.Listen("tcp", l.addr)
		if err != nil {
			p.Close()
			return err
		}
		fmt.Fprintf(os.Stderr, "muxql-go-proxy: muxql %s, %s clients on %s\n", muxql.Version(), l.protocol, nl.Addr())
		go func() { served <- p.Serve(nl, l.protocol) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case err := <-served:
		p.Close()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
