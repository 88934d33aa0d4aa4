package muxql

/*
#include <stdlib.h>
#include "muxql.h"
*/
import "C"

import (
	"runtime"
	"sync"
)

// Config is an engine configuration under construction (muxql_config): routes, client users
// and settings. An Engine keeps its own copy, so a Config may be reused or closed once
// NewEngine or NewProxy returned. Its methods may be called from any goroutine.
type Config struct {
	mu  sync.Mutex
	ptr *C.muxql_config
	// clientTLS is the last "client_tls" value set ("" when never set).
	clientTLS string
	// upstreamTLS is true once a route was given an "upstream_tls" other than "disable".
	upstreamTLS bool
}

// NewConfig creates an empty configuration: engine defaults, no routes, no users.
func NewConfig() (*Config, error) {
	var ptr *C.muxql_config
	if err := check(C.muxql_config_new(&ptr), ""); err != nil {
		return nil, err
	}
	c := &Config{ptr: ptr}
	runtime.SetFinalizer(c, (*Config).Close)
	return c, nil
}

// AddRoute adds a route: clients of protocol asking for database are served over at most
// poolSize (0: the default, 10) connections to target ("host:port", or a Unix socket path),
// opened as upstreamUser/upstreamPassword on upstreamDatabase ("": database). Routes match in
// the order they are added.
func (c *Config) AddRoute(protocol Protocol, database, target, upstreamUser, upstreamPassword, upstreamDatabase string, poolSize int) error {
	if poolSize < 0 {
		return invalid("pool size %d is negative", poolSize)
	}
	args := []struct{ what, s string }{
		{"database", database}, {"target", target}, {"upstream user", upstreamUser},
		{"upstream password", upstreamPassword}, {"upstream database", upstreamDatabase},
	}
	cs := make([]*C.char, len(args))
	defer func() { freeAll(cs...) }()
	for i, a := range args {
		if i == 4 && a.s == "" {
			break // NULL: the route's database
		}
		p, err := cString(a.what, a.s)
		if err != nil {
			return err
		}
		cs[i] = p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return ErrClosed
	}
	return check(C.muxql_config_add_route(c.ptr, C.uint32_t(protocol), cs[0], cs[1], cs[2], cs[3], cs[4], C.size_t(poolSize)), "")
}

// AddUser adds a user clients may log in as.
func (c *Config) AddUser(name, password string) error {
	n, err := cString("user name", name)
	if err != nil {
		return err
	}
	defer freeAll(n)
	p, err := cString("password", password)
	if err != nil {
		return err
	}
	defer freeAll(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return ErrClosed
	}
	return check(C.muxql_config_add_user(c.ptr, n, p), "")
}

// Set sets one setting by its TOML name (docs/configuration.md): "auth" (scram, md5,
// cleartext, trust), "mysql_auth", "pin_policy", "pool_mode", the millisecond timeouts
// "wait_timeout_ms", "idle_timeout_ms", "server_lifetime_ms", "connect_timeout_ms",
// "client_login_timeout_ms", the numbers "max_clients", "max_logins" (0: no limit),
// "statement_cache_size", "pipeline_depth", "max_message", "scram_iterations",
// "client_backlog_limit", and "close_on_upstream_loss" (true/false). Unknown keys and malformed values
// are refused here (ErrInvalidArgument); the whole is checked when the engine is created.
// "client_tls" is accepted for Engine hosts that terminate TLS; NewProxy refuses anything but
// "off", since Proxy does not.
func (c *Config) Set(key, value string) error {
	k, err := cString("setting name", key)
	if err != nil {
		return err
	}
	defer freeAll(k)
	v, err := cString("setting value", value)
	if err != nil {
		return err
	}
	defer freeAll(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return ErrClosed
	}
	if err := check(C.muxql_config_set(c.ptr, k, v), ""); err != nil {
		return err
	}
	if key == "client_tls" {
		c.clientTLS = value
	}
	return nil
}

// SetRoute sets one setting of route number route (0 for the first AddRoute, and so on):
// "pool_mode", "client_user", "upstream_tls" (disable, prefer, require, verify-ca,
// verify-full) and the PEM file paths "upstream_tls_ca", "upstream_tls_cert",
// "upstream_tls_key". Unknown routes, keys and values are refused (ErrInvalidArgument).
// Upstream TLS is for Engine hosts that run the handshake on ActionStartUpstreamTLS; NewProxy
// refuses it, since Proxy does not.
func (c *Config) SetRoute(route int, key, value string) error {
	if route < 0 {
		return invalid("route %d is negative", route)
	}
	k, err := cString("setting name", key)
	if err != nil {
		return err
	}
	defer freeAll(k)
	v, err := cString("setting value", value)
	if err != nil {
		return err
	}
	defer freeAll(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr == nil {
		return ErrClosed
	}
	if err := check(C.muxql_config_set_route(c.ptr, C.size_t(route), k, v), ""); err != nil {
		return err
	}
	if key == "upstream_tls" && value != "disable" {
		c.upstreamTLS = true
	}
	return nil
}

// Close frees the configuration. Closing twice is fine; other methods then return ErrClosed.
func (c *Config) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ptr != nil {
		C.muxql_config_free(c.ptr)
		c.ptr = nil
		runtime.SetFinalizer(c, nil)
	}
	return nil
}
