package muxql

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

const testTarget = "127.0.0.1:1"

// testConfig is a config with one PostgreSQL and one MySQL route and a user, plus settings.
func testConfig(t *testing.T, settings ...string) *Config {
	t.Helper()
	cfg, err := NewConfig()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cfg.Close() })
	if err := cfg.AddRoute(Postgres, "app", testTarget, "up", "up_pw", "", 2); err != nil {
		t.Fatal(err)
	}
	if err := cfg.AddRoute(MySQL, "app", "/run/mysqld.sock", "up", "up_pw", "other", 0); err != nil {
		t.Fatal(err)
	}
	if err := cfg.AddUser("alice", "secret"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(settings); i += 2 {
		if err := cfg.Set(settings[i], settings[i+1]); err != nil {
			t.Fatalf("Set(%q, %q): %v", settings[i], settings[i+1], err)
		}
	}
	return cfg
}

func testEngine(t *testing.T, settings ...string) *Engine {
	t.Helper()
	e, err := NewEngine(testConfig(t, settings...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// wantCode fails unless err is an *Error with code.
func wantCode(t *testing.T, what string, err error, code ResultCode) {
	t.Helper()
	var me *Error
	if !errors.As(err, &me) || me.Code != code {
		t.Fatalf("%s: got %v, want an error with code %d (%v)", what, err, code, code)
	}
	if !errors.Is(err, &Error{Code: code}) {
		t.Fatalf("%s: errors.Is does not match code %d", what, code)
	}
}

// startup is a PostgreSQL StartupMessage (protocol 3.0) for user and database.
func startup(user, database string) []byte {
	var body bytes.Buffer
	binary.Write(&body, binary.BigEndian, uint32(196608))
	for _, s := range []string{"user", user, "database", database} {
		body.WriteString(s)
		body.WriteByte(0)
	}
	body.WriteByte(0)
	msg := binary.BigEndian.AppendUint32(nil, uint32(body.Len()+4))
	return append(msg, body.Bytes()...)
}

// pollAll polls until no action is left.
func pollAll(t *testing.T, e *Engine) []Action {
	t.Helper()
	var all []Action
	for {
		batch, err := e.Poll(make([]Action, 0, 4))
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			return all
		}
		all = append(all, batch...)
	}
}

func TestConfigErrors(t *testing.T) {
	cfg, err := NewConfig()
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	wantCode(t, "unknown protocol", cfg.AddRoute(Protocol(7), "db", testTarget, "u", "", "", 0), ResultInvalidArgument)
	wantCode(t, "NUL in database", cfg.AddRoute(Postgres, "d\x00b", testTarget, "u", "", "", 0), ResultInvalidArgument)
	wantCode(t, "negative pool", cfg.AddRoute(Postgres, "db", testTarget, "u", "", "", -1), ResultInvalidArgument)
	wantCode(t, "NUL in password", cfg.AddUser("u", "p\x00w"), ResultInvalidArgument)
	wantCode(t, "unknown setting", cfg.Set("no_such_setting", "1"), ResultInvalidArgument)
	wantCode(t, "bad auth", cfg.Set("auth", "kerberos"), ResultInvalidArgument)
	wantCode(t, "bad number", cfg.Set("pipeline_depth", "many"), ResultInvalidArgument)
	if !errors.Is(cfg.Set("auth", "kerberos"), ErrInvalidArgument) {
		t.Fatal("errors.Is(err, ErrInvalidArgument) does not hold")
	}
	if err := cfg.Set("auth", "trust"); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("NewEngine(nil): %v", err)
	}
	// A user given twice with different passwords is refused when the engine is created, with
	// a message naming the problem.
	if err := cfg.AddRoute(Postgres, "db", testTarget, "u", "", "", 0); err != nil {
		t.Fatal(err)
	}
	cfg.AddUser("twice", "a")
	cfg.AddUser("twice", "b")
	_, err = NewEngine(cfg)
	wantCode(t, "user twice", err, ResultInvalidConfig)
	if !strings.Contains(err.Error(), "twice") {
		t.Fatalf("message %q does not name the user", err)
	}
	if err := cfg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Close(); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		cfg.AddRoute(Postgres, "db", testTarget, "u", "", "", 0),
		cfg.AddUser("u", "p"),
		cfg.Set("auth", "md5"),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("closed config: got %v, want ErrClosed", err)
		}
	}
	if _, err := NewEngine(cfg); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewEngine(closed): %v", err)
	}
	if _, err := NewProxy(testConfig(t, "client_tls", "offer")); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewProxy with client_tls: %v", err)
	}
}

func TestRouteSettings(t *testing.T) {
	cfg := testConfig(t, "auth", "trust")
	defer cfg.Close()
	wantCode(t, "no such route", cfg.SetRoute(5, "pool_mode", "session"), ResultInvalidArgument)
	wantCode(t, "negative route", cfg.SetRoute(-1, "pool_mode", "session"), ResultInvalidArgument)
	wantCode(t, "unknown key", cfg.SetRoute(0, "colour", "blue"), ResultInvalidArgument)
	wantCode(t, "bad mode", cfg.SetRoute(0, "upstream_tls", "sometimes"), ResultInvalidArgument)
	if err := cfg.SetRoute(0, "pool_mode", "session"); err != nil {
		t.Fatal(err)
	}
	// The verify modes need a CA file: refused when the engine is created, with the reason.
	if err := cfg.SetRoute(0, "upstream_tls", "verify-full"); err != nil {
		t.Fatal(err)
	}
	_, err := NewEngine(cfg)
	wantCode(t, "verify-full without a CA", err, ResultInvalidConfig)
	if !strings.Contains(err.Error(), "CA file") {
		t.Fatalf("message %q does not name the CA file", err)
	}
	if err := cfg.SetRoute(0, "upstream_tls_ca", "/etc/ssl/ca.pem"); err != nil {
		t.Fatal(err)
	}
	eng, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	eng.Close()
	// Proxy does not run upstream TLS: it says so instead of failing every login.
	if _, err := NewProxy(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewProxy with upstream TLS: %v", err)
	}
}

func TestUnknownIDs(t *testing.T) {
	e := testEngine(t)
	const bogus = 424242
	wantCode(t, "ClientData", e.ClientData(bogus, []byte("x"), 1), ResultUnknownID)
	wantCode(t, "UpstreamData", e.UpstreamData(bogus, []byte("x"), 1), ResultUnknownID)
	wantCode(t, "ClientClosed", e.ClientClosed(bogus, 1), ResultUnknownID)
	wantCode(t, "UpstreamConnected", e.UpstreamConnected(bogus, 1), ResultUnknownID)
	wantCode(t, "UpstreamClosed", e.UpstreamClosed(bogus, 1), ResultUnknownID)
	wantCode(t, "SendBlocked", e.SendBlocked(PeerClient, bogus, 1), ResultUnknownID)
	wantCode(t, "SendDrained", e.SendDrained(PeerUpstream, bogus, 1), ResultUnknownID)
	if err := e.CancelDone(bogus, 1); err != nil {
		t.Fatalf("CancelDone of an unknown id must be fine: %v", err)
	}
	if !errors.Is(e.ClientClosed(bogus, 1), ErrUnknownID) {
		t.Fatal("errors.Is(err, ErrUnknownID) does not hold")
	}
	_, err := e.ClientOpen(Protocol(9), 1)
	wantCode(t, "ClientOpen(bad protocol)", err, ResultInvalidArgument)
	_, err = e.RouteTarget(99)
	wantCode(t, "RouteTarget(99)", err, ResultInvalidArgument)
	err = e.SendBlocked(Peer(7), 1, 1)
	var me *Error
	if !errors.As(err, &me) || me.Text == "" || !strings.HasPrefix(err.Error(), "muxql: ") {
		t.Fatalf("SendBlocked(bad peer): %v", err)
	}
}

func TestCloseAndUseAfterClose(t *testing.T) {
	e := testEngine(t)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.ClientOpen(Postgres, 1)
	errs := []error{err, e.ClientData(1, []byte("x"), 1), e.UpstreamData(1, nil, 1), e.ClientClosed(1, 1),
		e.UpstreamConnected(1, 1), e.UpstreamClosed(1, 1), e.CancelDone(1, 1), e.HandleTimeout(1),
		e.SendBlocked(PeerClient, 1, 1), e.SendDrained(PeerClient, 1, 1)}
	_, err = e.Poll(nil)
	errs = append(errs, err)
	_, err = e.NextDeadline()
	errs = append(errs, err)
	_, err = e.RouteTarget(0)
	errs = append(errs, err)
	_, err = e.Stats()
	errs = append(errs, err)
	for i, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("call %d after Close: got %v, want ErrClosed", i, err)
		}
	}
}

func TestPostgresStartupConnectsUpstream(t *testing.T) {
	e := testEngine(t, "auth", "trust")
	id, err := e.ClientOpen(Postgres, 1)
	if err != nil {
		t.Fatal(err)
	}
	if acts := pollAll(t, e); len(acts) != 0 {
		t.Fatalf("a PostgreSQL client speaks first; got %v", acts)
	}
	if err := e.ClientData(id, startup("alice", "app"), 2); err != nil {
		t.Fatal(err)
	}
	acts := pollAll(t, e)
	var connect *Action
	for i := range acts {
		if acts[i].Kind == ActionConnectUpstream {
			connect = &acts[i]
		}
	}
	if connect == nil {
		t.Fatalf("no CONNECT_UPSTREAM after the startup message; got %v", acts)
	}
	if string(connect.Data) != testTarget || connect.Route != 0 {
		t.Fatalf("connect to %q on route %d, want %q on 0", connect.Data, connect.Route, testTarget)
	}
	if target, err := e.RouteTarget(connect.Route); err != nil || target != testTarget {
		t.Fatalf("RouteTarget: %q, %v", target, err)
	}
	d, err := e.NextDeadline()
	if err != nil || d == NoDeadline {
		t.Fatalf("the connect timeout must be armed: %d, %v", d, err)
	}
	st, err := e.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Routes) != 2 || st.Routes[0].Database != "app" || st.Routes[0].Protocol != "postgres" ||
		st.Routes[1].Protocol != "mysql" || st.Routes[0].Upstreams != 1 {
		t.Fatalf("stats: %+v", st)
	}
	// The upstream cannot connect: the engine hears of it, and the client gets an error and is
	// closed once the connect fails (no crash, no error from the calls).
	if err := e.UpstreamClosed(UpstreamID(connect.ID), 3); err != nil {
		t.Fatal(err)
	}
	if err := e.HandleTimeout(d); err != nil {
		t.Fatal(err)
	}
	pollAll(t, e)
}

func TestMySQLClientOpenConnectsUpstream(t *testing.T) {
	e := testEngine(t)
	id, err := e.ClientOpen(MySQL, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The greeting carries the server's version: the engine opens an upstream first.
	acts := pollAll(t, e)
	if len(acts) != 1 || acts[0].Kind != ActionConnectUpstream || acts[0].Route != 1 ||
		string(acts[0].Data) != "/run/mysqld.sock" {
		t.Fatalf("want CONNECT_UPSTREAM to route 1, got %v", acts)
	}
	if target, err := e.RouteTarget(1); err != nil || target != "/run/mysqld.sock" {
		t.Fatalf("RouteTarget(1): %q, %v", target, err)
	}
	if err := e.ClientClosed(id, 2); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "ClientClosed twice", e.ClientClosed(id, 3), ResultUnknownID)
}

func TestPollBatchAndDataCopies(t *testing.T) {
	e := testEngine(t, "auth", "trust")
	for range 3 {
		id, err := e.ClientOpen(Postgres, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.ClientData(id, startup("alice", "app"), 1); err != nil {
			t.Fatal(err)
		}
	}
	// Three AuthenticationOk messages and one connect are pending.
	one, err := e.Poll(make([]Action, 0, 1))
	if err != nil || len(one) != 1 || one[0].Kind != ActionSendClient {
		t.Fatalf("Poll with room for one: %v, %v", one, err)
	}
	authOK := []byte{'R', 0, 0, 0, 8, 0, 0, 0, 0}
	// Poll appends to what buf holds (a full buf takes a batch of up to 64); the bytes handed
	// out are Go copies that later calls do not touch.
	got, err := e.Poll(one)
	if err != nil || len(got) != 4 || got[0].ID != one[0].ID || got[1].Kind != ActionConnectUpstream {
		t.Fatalf("Poll(append): %v, %v", got, err)
	}
	rest := pollAll(t, e)
	if _, err := e.ClientOpen(MySQL, 2); err != nil {
		t.Fatal(err)
	}
	pollAll(t, e)
	if !bytes.Equal(one[0].Data, authOK) || len(rest) != 0 {
		t.Fatalf("first action's bytes %x changed, or %d actions left", one[0].Data, len(rest))
	}
	if s := ActionSendClient.String(); s != "SEND_CLIENT" {
		t.Fatalf("ActionSendClient.String() = %q", s)
	}
	if s := ResultUnknownID.String(); s == "" {
		t.Fatal("empty result text")
	}
}

// TestMisuseNeverCrashes feeds random bytes, unknown ids and out-of-order calls to an engine
// with clients of both protocols; every call returns (an error or not) and the engine stays
// usable.
func TestMisuseNeverCrashes(t *testing.T) {
	e := testEngine(t, "auth", "trust")
	rng := rand.New(rand.NewPCG(1, 2))
	now := uint64(1)
	var ids []ClientID
	for round := range 400 {
		now += uint64(rng.IntN(50))
		switch rng.IntN(6) {
		case 0:
			id, err := e.ClientOpen(Protocol(1+rng.IntN(2)), now)
			if err == nil {
				ids = append(ids, id)
			}
		case 1, 2:
			if len(ids) > 0 {
				junk := make([]byte, rng.IntN(64))
				for i := range junk {
					junk[i] = byte(rng.Uint32())
				}
				if round%7 == 0 {
					junk = startup("alice", "app")
				}
				e.ClientData(ids[rng.IntN(len(ids))], junk, now)
			}
		case 3:
			e.UpstreamData(UpstreamID(rng.Uint64N(8)), []byte{1, 2, 3}, now)
			e.UpstreamConnected(UpstreamID(rng.Uint64N(8)), now)
		case 4:
			e.HandleTimeout(now)
			e.SendBlocked(Peer(rng.IntN(4)), rng.Uint64N(8), now)
		case 5:
			if len(ids) > 0 {
				e.ClientClosed(ids[rng.IntN(len(ids))], now)
			}
		}
		if _, err := e.Poll(nil); err != nil {
			t.Fatalf("round %d: Poll: %v", round, err)
		}
	}
	if _, err := e.Stats(); err != nil {
		t.Fatal(err)
	}
}
