package muxql

/*
#include <stdlib.h>
#include "muxql.h"
*/
import "C"

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// ClientID names a client connection of an Engine.
type ClientID uint64

// UpstreamID names an upstream connection of an Engine.
type UpstreamID uint64

// Peer says which kind of connection a SendBlocked or SendDrained call is about.
type Peer uint32

const (
	// PeerClient is a client connection (MUXQL_PEER_CLIENT).
	PeerClient Peer = C.MUXQL_PEER_CLIENT
	// PeerUpstream is an upstream connection (MUXQL_PEER_UPSTREAM).
	PeerUpstream Peer = C.MUXQL_PEER_UPSTREAM
)

// NoDeadline is what NextDeadline returns when no timer is armed (MUXQL_NO_DEADLINE).
const NoDeadline uint64 = 1<<64 - 1

// ActionKind says what an Action asks the host to do.
type ActionKind uint32

const (
	// ActionSendClient: write Data to client ID.
	ActionSendClient ActionKind = C.MUXQL_ACTION_SEND_CLIENT
	// ActionSendUpstream: write Data to upstream ID.
	ActionSendUpstream ActionKind = C.MUXQL_ACTION_SEND_UPSTREAM
	// ActionConnectUpstream: connect upstream ID to Data (route Route's target), then call
	// UpstreamConnected or UpstreamClosed.
	ActionConnectUpstream ActionKind = C.MUXQL_ACTION_CONNECT_UPSTREAM
	// ActionCloseClient: flush what was written to client ID, then close it; the id is dead.
	ActionCloseClient ActionKind = C.MUXQL_ACTION_CLOSE_CLIENT
	// ActionCloseUpstream: close upstream ID; the id is dead.
	ActionCloseUpstream ActionKind = C.MUXQL_ACTION_CLOSE_UPSTREAM
	// ActionSendCancel: PostgreSQL cancel of what runs on upstream ID: open a side connection
	// to route Route's target (RouteTarget), write Data, wait until the server closes it, then
	// call CancelDone for ID (also when it fails).
	ActionSendCancel ActionKind = C.MUXQL_ACTION_SEND_CANCEL
	// ActionPauseClient: stop reading from client ID until ActionResumeClient.
	ActionPauseClient ActionKind = C.MUXQL_ACTION_PAUSE_CLIENT
	// ActionResumeClient: read from client ID again.
	ActionResumeClient ActionKind = C.MUXQL_ACTION_RESUME_CLIENT
	// ActionPauseUpstream: stop reading from upstream ID until ActionResumeUpstream.
	ActionPauseUpstream ActionKind = C.MUXQL_ACTION_PAUSE_UPSTREAM
	// ActionResumeUpstream: read from upstream ID again.
	ActionResumeUpstream ActionKind = C.MUXQL_ACTION_RESUME_UPSTREAM
	// ActionStartTLS: switch client ID to TLS, Data being the TLS records the client already
	// sent (only with the "client_tls" setting on).
	ActionStartTLS ActionKind = C.MUXQL_ACTION_START_TLS
	// ActionStartUpstreamTLS: switch upstream ID to TLS with route Route's settings
	// (Config.SetRoute's "upstream_tls" and its files); report UpstreamClosed when the
	// handshake or the certificate check fails.
	ActionStartUpstreamTLS ActionKind = C.MUXQL_ACTION_START_UPSTREAM_TLS
)

var actionNames = map[ActionKind]string{
	ActionSendClient: "SEND_CLIENT", ActionSendUpstream: "SEND_UPSTREAM",
	ActionConnectUpstream: "CONNECT_UPSTREAM", ActionCloseClient: "CLOSE_CLIENT",
	ActionCloseUpstream: "CLOSE_UPSTREAM", ActionSendCancel: "SEND_CANCEL",
	ActionPauseClient: "PAUSE_CLIENT", ActionResumeClient: "RESUME_CLIENT",
	ActionPauseUpstream: "PAUSE_UPSTREAM", ActionResumeUpstream: "RESUME_UPSTREAM",
	ActionStartTLS:         "START_TLS",
	ActionStartUpstreamTLS: "START_UPSTREAM_TLS",
}

// String returns the C name of the kind without its prefix, such as "SEND_CLIENT".
func (k ActionKind) String() string {
	if s, ok := actionNames[k]; ok {
		return s
	}
	return fmt.Sprintf("ActionKind(%d)", uint32(k))
}

// Action is one instruction for the host (muxql_action). Actions for one connection must be
// carried out in the order they come.
type Action struct {
	// Kind says what to do.
	Kind ActionKind
	// Route is the route index (ActionConnectUpstream, ActionSendCancel).
	Route uint32
	// ID is the client or upstream the action is for.
	ID uint64
	// Data is the bytes to write, or the target to connect to; nil when the kind has none.
	// It is a Go copy owned by the caller, valid for as long as the caller keeps it.
	Data []byte
}

// pollCapacity is the most actions one Poll takes (the size of the C array it fills).
const pollCapacity = 256

// Engine is a muxql multiplexer engine (muxql_engine): it owns the protocols and the pools;
// the host owns the sockets and the clock. Time is given in milliseconds of a monotonic clock
// the host picks, on every call that may act. An Engine's methods may be called from any
// goroutine (a mutex serialises them), but a host normally drives it from one.
type Engine struct {
	mu      sync.Mutex
	ptr     *C.muxql_engine
	actions *C.muxql_action // C array of pollCapacity entries, filled by Poll
}

// NewEngine creates an engine from cfg, which stays the caller's. A configuration the engine
// refuses gives an error with code ResultInvalidConfig whose text names the problem.
func NewEngine(cfg *Config) (*Engine, error) {
	if cfg == nil {
		return nil, invalid("nil Config")
	}
	var ptr *C.muxql_engine
	var msg [512]C.char
	cfg.mu.Lock()
	if cfg.ptr == nil {
		cfg.mu.Unlock()
		return nil, ErrClosed
	}
	r := C.muxql_engine_new(cfg.ptr, &ptr, &msg[0], C.size_t(len(msg)))
	cfg.mu.Unlock()
	if ResultCode(r) != ResultOK {
		return nil, check(r, C.GoString(&msg[0]))
	}
	e := &Engine{
		ptr:     ptr,
		actions: (*C.muxql_action)(C.calloc(pollCapacity, C.size_t(unsafe.Sizeof(C.muxql_action{})))),
	}
	runtime.SetFinalizer(e, (*Engine).Close)
	return e, nil
}

// lock locks the engine and returns its handle, or ErrClosed (unlocked) once it is closed.
func (e *Engine) lock() (*C.muxql_engine, error) {
	e.mu.Lock()
	if e.ptr == nil {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	return e.ptr, nil
}

// do runs one C call on the live engine and turns its result into an error.
func (e *Engine) do(f func(p *C.muxql_engine) C.muxql_result) error {
	p, err := e.lock()
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	return check(f(p), "")
}

// ClientOpen tells the engine that a client connected to a listener speaking protocol, and
// returns its id. A MySQL client is greeted by the engine (through the actions).
func (e *Engine) ClientOpen(protocol Protocol, now uint64) (ClientID, error) {
	var id C.uint64_t
	err := e.do(func(p *C.muxql_engine) C.muxql_result {
		return C.muxql_engine_client_open(p, C.uint32_t(protocol), C.uint64_t(now), &id)
	})
	return ClientID(id), err
}

// bytesArg is the C view of data: a pointer to its first byte, or NULL when it is empty.
func bytesArg(data []byte) (*C.uint8_t, C.size_t) {
	if len(data) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data))
}

// ClientData hands bytes that arrived from client id to the engine, which copies them.
func (e *Engine) ClientData(id ClientID, data []byte, now uint64) error {
	p, err := e.lock()
	if err != nil {
		return err
	}
	ptr, n := bytesArg(data)
	r := C.muxql_engine_client_data(p, C.uint64_t(id), ptr, n, C.uint64_t(now))
	runtime.KeepAlive(data)
	e.mu.Unlock()
	return check(r, "")
}

// UpstreamData hands bytes that arrived from upstream id to the engine, which copies them.
func (e *Engine) UpstreamData(id UpstreamID, data []byte, now uint64) error {
	p, err := e.lock()
	if err != nil {
		return err
	}
	ptr, n := bytesArg(data)
	r := C.muxql_engine_upstream_data(p, C.uint64_t(id), ptr, n, C.uint64_t(now))
	runtime.KeepAlive(data)
	e.mu.Unlock()
	return check(r, "")
}

// ClientClosed reports that client id's socket closed or failed (not for ids the engine
// closed itself with ActionCloseClient).
func (e *Engine) ClientClosed(id ClientID, now uint64) error {
	return e.do(func(p *C.muxql_engine) C.muxql_result {
		return C.muxql_engine_client_closed(p, C.uint64_t(id), C.uint64_t(now))
	})
}

// UpstreamConnected reports that the connection asked for by ActionConnectUpstream is up.
func (e *Engine) UpstreamConnected(id UpstreamID, now uint64) error {
	return e.do(func(p *C.muxql_engine) C.muxql_result {
		return C.muxql_engine_upstream_connected(p, C.uint64_t(id), C.uint64_t(now))
	})
}

// UpstreamClosed reports that upstream id's socket closed or failed, or could not connect;
// the id is dead (no ActionCloseUpstream follows for it).
func (e *Engine) UpstreamClosed(id UpstreamID, now uint64) error {
	return e.do(func(p *C.muxql_engine) C.muxql_result {
		return C.muxql_engine_upstream_closed(p, C.uint64_t(id), C.uint64_t(now))
	})
}

// CancelDone reports that the side connection of ActionSendCancel for upstream id is done
// (the server closed it, or it failed). An id no longer known is fine.
func (e *Engine) CancelDone(id UpstreamID, now uint64) error {
	return e.do(func(p *C.muxql_engine) C.muxql_result {
		return C.muxql_engine_cancel_done(p, C.uint64_t(id), C.uint64_t(now))
	})
}

// HandleTimeout expires whatever is due at now.
func (e *Engine) HandleTimeout(now uint64) error {
	return e.do(func(p *C.muxql_engine) C.muxql_result {
		return C.muxql_engine_handle_timeout(p, C.uint64_t(now))
	})
}

// NextDeadline returns the next time HandleTimeout must be called, or NoDeadline.
func (e *Engine) NextDeadline() (uint64, error) {
	var d C.uint64_t
	err := e.do(func(p *C.muxql_engine) C.muxql_result {
		return C.muxql_engine_timeout(p, &d)
	})
	return uint64(d), err
}

// SendBlocked reports that the host's write queue to a peer grew past its high-water mark:
// the engine pauses the connection feeding it (through the actions).
func (e *Engine) SendBlocked(peer Peer, id uint64, now uint64) error {
	return e.do(func(p *C.muxql_engine) C.muxql_result {
		return C.muxql_engine_send_blocked(p, C.uint32_t(peer), C.uint64_t(id), C.uint64_t(now))
	})
}

// SendDrained reports that the host's write queue to a peer drained below its low-water mark.
func (e *Engine) SendDrained(peer Peer, id uint64, now uint64) error {
	return e.do(func(p *C.muxql_engine) C.muxql_result {
		return C.muxql_engine_send_drained(p, C.uint32_t(peer), C.uint64_t(id), C.uint64_t(now))
	})
}

// Poll takes the next batch of actions in one C call and appends them to buf, returning the
// extended slice; nothing appended means there is no action now. A batch is at most
// cap(buf)-len(buf) actions (64 when buf has no room), and at most 256. The actions' bytes
// are copied into Go memory in the same call, so they stay valid after later calls.
func (e *Engine) Poll(buf []Action) ([]Action, error) {
	want := cap(buf) - len(buf)
	if want == 0 {
		want = 64
	}
	want = min(want, pollCapacity)
	p, err := e.lock()
	if err != nil {
		return buf, err
	}
	defer e.mu.Unlock()
	var n C.size_t
	if err := check(C.muxql_engine_poll_actions(p, e.actions, C.size_t(want), &n), ""); err != nil {
		return buf, err
	}
	batch := unsafe.Slice(e.actions, int(n))
	total := 0
	for i := range batch {
		total += int(batch[i].len)
	}
	// One allocation per batch holds every action's bytes.
	arena := make([]byte, total)
	for i := range batch {
		a := &batch[i]
		act := Action{Kind: ActionKind(a.kind), Route: uint32(a.route), ID: uint64(a.id)}
		if a.len > 0 {
			k := copy(arena, unsafe.Slice((*byte)(unsafe.Pointer(a.data)), int(a.len)))
			act.Data = arena[:k:k]
			arena = arena[k:]
		}
		buf = append(buf, act)
	}
	return buf, nil
}

// RouteTarget returns route's target ("host:port" or a socket path), for side connections.
func (e *Engine) RouteTarget(route uint32) (string, error) {
	var t *C.uint8_t
	var n C.size_t
	p, err := e.lock()
	if err != nil {
		return "", err
	}
	defer e.mu.Unlock()
	if err := check(C.muxql_engine_route_target(p, C.uint32_t(route), &t, &n), ""); err != nil {
		return "", err
	}
	return C.GoStringN((*C.char)(unsafe.Pointer(t)), C.int(n)), nil
}

// RouteStats are one route's counters.
type RouteStats struct {
	// Database is the database clients ask for.
	Database string `json:"database"`
	// Protocol is "postgres" or "mysql".
	Protocol string `json:"protocol"`
	// Clients is the number of authenticated clients connected.
	Clients uint64 `json:"clients"`
	// ClientsActive is the number of clients holding an upstream.
	ClientsActive uint64 `json:"clients_active"`
	// ClientsWaiting is the number of clients waiting for an upstream.
	ClientsWaiting uint64 `json:"clients_waiting"`
	// ClientsPinned is the number of clients pinned to their upstream by session state.
	ClientsPinned uint64 `json:"clients_pinned"`
	// Upstreams is the number of upstream connections (connecting, idle or in use).
	Upstreams uint64 `json:"upstreams"`
	// UpstreamsActive is the number of upstream connections assigned to a client.
	UpstreamsActive uint64 `json:"upstreams_active"`
	// UpstreamsIdle is the number of upstream connections idle in the pool.
	UpstreamsIdle uint64 `json:"upstreams_idle"`
	// PeakClients is the most clients ever connected at once.
	PeakClients uint64 `json:"peak_clients"`
	// PeakUpstreams is the most upstream connections ever open at once.
	PeakUpstreams uint64 `json:"peak_upstreams"`
	// Transactions counts transactions (or standalone requests) completed.
	Transactions uint64 `json:"transactions"`
	// Queries counts queries completed.
	Queries uint64 `json:"queries"`
	// BytesFromClients counts bytes received from clients.
	BytesFromClients uint64 `json:"bytes_from_clients"`
	// BytesFromUpstreams counts bytes received from upstreams.
	BytesFromUpstreams uint64 `json:"bytes_from_upstreams"`
	// WaitMs is the total milliseconds clients spent waiting for an upstream.
	WaitMs uint64 `json:"wait_ms"`
	// Pins counts the times a client was pinned.
	Pins uint64 `json:"pins"`
	// UpstreamsDiscarded counts upstream connections closed because they could not be
	// returned clean.
	UpstreamsDiscarded uint64 `json:"upstreams_discarded"`
	// Pipelined counts requests pipelined behind another client's on a busy upstream.
	Pipelined uint64 `json:"pipelined"`
	// PipelinedRetries counts pipelined requests run again after another client's cancel.
	PipelinedRetries uint64 `json:"pipelined_retries"`
	// Statements is the number of distinct prepared statements the route's clients hold.
	Statements uint64 `json:"statements"`
}

// Stats are an engine's counters (muxql_engine_stats_json, parsed).
type Stats struct {
	// ClientsLoggingIn is the number of clients that have not finished logging in.
	ClientsLoggingIn uint64 `json:"clients_logging_in"`
	// Routes holds the counters per route, in route order.
	Routes []RouteStats `json:"routes"`
}

// Stats returns the engine's counters.
func (e *Engine) Stats() (Stats, error) {
	var st Stats
	p, err := e.lock()
	if err != nil {
		return st, err
	}
	buf := make([]byte, 4096)
	var n C.size_t
	for {
		r := C.muxql_engine_stats_json(p, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &n)
		runtime.KeepAlive(buf)
		if ResultCode(r) == ResultInsufficientSize && int(n) >= len(buf) {
			buf = make([]byte, int(n)+1)
			continue
		}
		if err := check(r, ""); err != nil {
			e.mu.Unlock()
			return st, err
		}
		break
	}
	e.mu.Unlock()
	if err := json.Unmarshal(buf[:n], &st); err != nil {
		return st, fmt.Errorf("muxql: parsing stats: %w", err)
	}
	return st, nil
}

// Close frees the engine and everything it lent; the host closes its sockets itself. Closing
// twice is fine; other methods then return ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ptr != nil {
		C.muxql_engine_free(e.ptr)
		C.free(unsafe.Pointer(e.actions))
		e.ptr, e.actions = nil, nil
		runtime.SetFinalizer(e, nil)
	}
	return nil
}
