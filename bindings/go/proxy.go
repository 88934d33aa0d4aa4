package muxql

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// ErrProxyClosed is returned by Serve once Shutdown or Close was called, and by Stats after
// the Proxy stopped.
var ErrProxyClosed = errors.New("muxql: proxy closed")

const (
	// DefaultHighWater is the write queue size (bytes) past which a connection counts as
	// blocked (Engine.SendBlocked).
	DefaultHighWater = 256 << 10
	// DefaultLowWater is the write queue size at or below which a blocked connection counts
	// as drained again (Engine.SendDrained).
	DefaultLowWater = 64 << 10

	clientReadSize   = 8 << 10  // read buffer of a client connection
	upstreamReadSize = 64 << 10 // read buffer of an upstream connection
	closeFlushLimit  = 5 * time.Second
	cancelLimit      = 5 * time.Second // a cancel side connection, at most (the engine's bound)
	eventBatch       = 128             // events handled before the write queues are flushed
	maxIovecs        = 1024            // IOV_MAX: buffers one writev takes
)

// ProxyOption changes a Proxy's defaults (NewProxy).
type ProxyOption func(*Proxy)

// WithDialer makes the Proxy open upstream and cancel connections with dial instead of a
// net.Dialer. network is "tcp" for a "host:port" target and "unix" for a socket path (a target
// starting with '/', or "unix:" followed by the path). A nil dial is ignored.
func WithDialer(dial func(ctx context.Context, network, address string) (net.Conn, error)) ProxyOption {
	return func(p *Proxy) {
		if dial != nil {
			p.dial = dial
		}
	}
}

// WithWatermarks sets the write queue sizes, in bytes, past which a connection counts as
// blocked and at or below which it counts as drained (defaults DefaultHighWater and
// DefaultLowWater). Values with low >= high or high <= 0 are ignored.
func WithWatermarks(high, low int) ProxyOption {
	return func(p *Proxy) {
		if high > 0 && low >= 0 && low < high {
			p.high, p.low = high, low
		}
	}
}

// WithErrorLog sets where the Proxy reports failures it cannot return to a caller (an
// unexpected engine error, a failed accept); the default is log.Default(), nil discards them.
func WithErrorLog(l *log.Logger) ProxyOption {
	return func(p *Proxy) {
		if l == nil {
			l = log.New(io.Discard, "", 0)
		}
		p.log = l
	}
}

// Proxy serves database clients from any number of listeners through one Engine. Goroutines do
// the socket I/O (a reader and a writer per connection); one goroutine drives the Engine,
// receiving events over a channel and carrying out the actions it polls in batches. After each
// turn it writes the queued bytes of a socket that has room itself (one non-blocking writev);
// whatever does not fit goes to that connection's writer goroutine.
//
// The Proxy does not terminate TLS: hosts wrap the listener (crypto/tls, a WebSocket adapter)
// and pass the plain net.Conn stream; the engine's own client_tls must stay off.
type Proxy struct {
	eng   *Engine
	epoch time.Time
	dial  func(ctx context.Context, network, address string) (net.Conn, error)
	high  int
	low   int
	log   *log.Logger

	events chan event
	stop   chan struct{} // closed by shutdown: the loop closes everything and returns
	done   chan struct{} // closed when the loop has returned
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine but the loop's

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	stopOnce  sync.Once

	// Owned by the loop goroutine.
	clients   map[ClientID]*conn
	upstreams map[UpstreamID]*conn
	flushing  map[*conn]struct{} // closed by the engine, still writing what was queued
	acts      []Action
	dirty     []*conn // connections written to in this turn, flushed after it
	resumed   []*conn // connections resumed while they held unread data
	iov       []syscall.Iovec
	armed     uint64 // deadline the timer is set for
	timer     *time.Timer
}

// NewProxy creates a Proxy with an Engine built from cfg (which stays the caller's) and starts
// its engine goroutine. Call Serve for each listener, and Shutdown or Close when done.
func NewProxy(cfg *Config, opts ...ProxyOption) (*Proxy, error) {
	if cfg == nil {
		return nil, invalid("nil Config")
	}
	cfg.mu.Lock()
	tls, upstreamTLS := cfg.clientTLS, cfg.upstreamTLS
	cfg.mu.Unlock()
	if tls != "" && tls != "off" {
		return nil, &Error{Code: ResultInvalidConfig, Text: "Proxy does not terminate TLS: client_tls must be off"}
	}
	if upstreamTLS {
		return nil, &Error{Code: ResultInvalidConfig, Text: "Proxy does not run upstream TLS: upstream_tls must be disable"}
	}
	eng, err := NewEngine(cfg)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	p := &Proxy{
		eng:       eng,
		epoch:     time.Now(),
		dial:      d.DialContext,
		high:      DefaultHighWater,
		low:       DefaultLowWater,
		log:       log.Default(),
		events:    make(chan event, 1024),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		listeners: map[net.Listener]struct{}{},
		clients:   map[ClientID]*conn{},
		upstreams: map[UpstreamID]*conn{},
		flushing:  map[*conn]struct{}{},
		acts:      make([]Action, 0, 64),
		armed:     NoDeadline,
		timer:     time.NewTimer(time.Hour),
	}
	p.timer.Stop()
	for _, o := range opts {
		o(p)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	go p.loop()
	return p, nil
}

// now is the engine clock: milliseconds since the Proxy started (monotonic), from 1.
func (p *Proxy) now() uint64 { return uint64(time.Since(p.epoch)/time.Millisecond) + 1 }

type eventKind uint8

const (
	evAccept     eventKind = iota // nc accepted on a listener of protocol proto
	evData                        // data read from c
	evLost                        // c's socket closed or failed
	evConnected                   // c's upstream dial succeeded: nc
	evDialFailed                  // c's upstream dial failed
	evDrained                     // c's write queue went below the low-water mark
	evCancelDone                  // the cancel side connection for upstream id finished
	evQuery                       // run fn on the loop goroutine
)

type event struct {
	kind  eventKind
	c     *conn
	nc    net.Conn
	proto Protocol
	data  []byte
	id    uint64
	fn    func()
}

// send hands ev to the loop; false when the loop has stopped.
func (p *Proxy) send(ev event) bool {
	select {
	case p.events <- ev:
		return true
	case <-p.done:
		return false
	}
}

// query runs fn on the loop goroutine and waits for it; false when the loop has stopped.
func (p *Proxy) query(fn func()) bool {
	ran := make(chan struct{})
	if !p.send(event{kind: evQuery, fn: func() { fn(); close(ran) }}) {
		return false
	}
	select {
	case <-ran:
		return true
	case <-p.done:
		return false
	}
}

// Serve accepts connections on l speaking protocol and serves them until Shutdown or Close
// (then it returns ErrProxyClosed) or until l fails (then it returns that error). Several
// listeners may be served at once, each by its own Serve call. Serve closes l when it returns.
func (p *Proxy) Serve(l net.Listener, protocol Protocol) error {
	if protocol != Postgres && protocol != MySQL {
		return invalid("unknown protocol %d", uint32(protocol))
	}
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		l.Close()
		return ErrProxyClosed
	}
	p.listeners[l] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.listeners, l)
		p.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			p.mu.Lock()
			closing := p.closing
			p.mu.Unlock()
			if closing {
				return ErrProxyClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of descriptors and the like: wait a little, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				p.log.Printf("muxql: accept: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !p.send(event{kind: evAccept, nc: nc, proto: protocol}) {
			nc.Close()
			return ErrProxyClosed
		}
	}
}

// Stats returns the engine's counters.
func (p *Proxy) Stats() (Stats, error) {
	var st Stats
	var err error
	if !p.query(func() { st, err = p.eng.Stats() }) {
		return st, ErrProxyClosed
	}
	return st, err
}

// clientCount is the number of connected clients, or -1 once the loop stopped.
func (p *Proxy) clientCount() int {
	n := -1
	p.query(func() { n = len(p.clients) })
	return n
}

// Shutdown stops accepting (every Serve returns ErrProxyClosed), waits until every client has
// left or ctx is done, then closes every connection and frees the engine. It returns ctx's
// error when clients were still connected. Calling it again, or after Close, is fine.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closing = true
	for l := range p.listeners {
		l.Close()
	}
	p.mu.Unlock()
	var err error
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for p.clientCount() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-tick.C:
		}
	}
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
		p.cancel()
		p.wg.Wait()
		p.eng.Close()
	})
	return err
}

// Close shuts the Proxy down at once: like Shutdown with a context already done, but it
// returns nil.
func (p *Proxy) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// loop is the engine goroutine: the only one that calls p.eng (apart from Shutdown's final
// Close once it returned).
func (p *Proxy) loop() {
	defer close(p.done)
	for {
		select {
		case ev := <-p.events:
			p.handle(ev)
		batch:
			for range eventBatch - 1 {
				select {
				case ev := <-p.events:
					p.handle(ev)
				default:
					break batch
				}
			}
		case <-p.timer.C:
			p.armed = NoDeadline
			p.engineErr(p.eng.HandleTimeout(p.now()))
			p.drain()
		case <-p.stop:
			p.closeAll()
			return
		}
		p.flushDirty()
		p.rearm()
	}
}

// rearm sets the timer to the engine's next deadline.
func (p *Proxy) rearm() {
	d, err := p.eng.NextDeadline()
	if err != nil || d == p.armed {
		return
	}
	p.timer.Stop()
	p.armed = d
	if d == NoDeadline {
		return
	}
	wait := time.Duration(0)
	if now := p.now(); d > now {
		wait = time.Duration(d-now) * time.Millisecond
	}
	p.timer.Reset(wait)
}

// engineErr logs an engine failure other than an id that a race made unknown.
func (p *Proxy) engineErr(err error) {
	if err != nil && !errors.Is(err, ErrUnknownID) {
		p.log.Printf("muxql: engine: %v", err)
	}
}

// closeAll ends every connection and dial once the Proxy stops.
func (p *Proxy) closeAll() {
	p.cancel()
	for id, c := range p.clients {
		c.kill()
		delete(p.clients, id)
	}
	for id, c := range p.upstreams {
		c.kill()
		delete(p.upstreams, id)
	}
	for c := range p.flushing {
		c.kill()
		delete(p.flushing, c)
	}
	p.timer.Stop()
}

// handle carries out one event, then the actions it caused.
func (p *Proxy) handle(ev event) {
	switch ev.kind {
	case evAccept:
		id, err := p.eng.ClientOpen(ev.proto, p.now())
		if err != nil {
			p.engineErr(err)
			ev.nc.Close()
			return
		}
		c := p.newConn(PeerClient, uint64(id))
		c.nc = ev.nc
		p.clients[id] = c
		c.start(clientReadSize)
	case evData:
		if p.current(ev.c) {
			p.deliver(ev.c, ev.data)
		}
	case evLost:
		if p.current(ev.c) {
			p.forget(ev.c)
			if ev.c.peer == PeerClient {
				p.engineErr(p.eng.ClientClosed(ClientID(ev.c.id), p.now()))
			} else {
				p.engineErr(p.eng.UpstreamClosed(UpstreamID(ev.c.id), p.now()))
			}
			ev.c.kill()
		}
		// Otherwise the engine closed c first; once its writer has flushed and closed it (and
		// said so), it is gone.
		if ev.c.isDead() {
			delete(p.flushing, ev.c)
		}
	case evConnected:
		c := ev.c
		if !p.current(c) {
			ev.nc.Close()
			return
		}
		c.mu.Lock()
		c.nc = ev.nc
		c.mu.Unlock()
		c.connecting = false
		c.start(upstreamReadSize)
		p.engineErr(p.eng.UpstreamConnected(UpstreamID(c.id), p.now()))
	case evDialFailed:
		if p.current(ev.c) {
			p.forget(ev.c)
			p.engineErr(p.eng.UpstreamClosed(UpstreamID(ev.c.id), p.now()))
		}
	case evDrained:
		c := ev.c
		c.mu.Lock()
		c.drainSent = false
		drained := c.blocked && c.pending <= p.low
		if drained {
			c.blocked = false
		}
		c.mu.Unlock()
		if drained && p.current(c) {
			p.engineErr(p.eng.SendDrained(c.peer, c.id, p.now()))
		}
	case evCancelDone:
		p.engineErr(p.eng.CancelDone(UpstreamID(ev.id), p.now()))
	case evQuery:
		ev.fn()
	}
	p.drain()
}

// current reports whether c is still the live connection for its id.
func (p *Proxy) current(c *conn) bool {
	if c.peer == PeerClient {
		return p.clients[ClientID(c.id)] == c
	}
	return p.upstreams[UpstreamID(c.id)] == c
}

// forget removes c from the tables: its id is dead for the engine.
func (p *Proxy) forget(c *conn) {
	if c.peer == PeerClient {
		delete(p.clients, ClientID(c.id))
	} else {
		delete(p.upstreams, UpstreamID(c.id))
	}
}

// lookup returns the live connection of a peer kind and id, or nil.
func (p *Proxy) lookup(peer Peer, id uint64) *conn {
	if peer == PeerClient {
		return p.clients[ClientID(id)]
	}
	return p.upstreams[UpstreamID(id)]
}

// deliver hands data read from c to the engine, or holds it while c is paused (a read that was
// under way when the pause came).
func (p *Proxy) deliver(c *conn, data []byte) {
	if c.paused || len(c.held) > 0 {
		c.held = append(c.held, data)
		return
	}
	if c.peer == PeerClient {
		p.engineErr(p.eng.ClientData(ClientID(c.id), data, p.now()))
	} else {
		p.engineErr(p.eng.UpstreamData(UpstreamID(c.id), data, p.now()))
	}
}

// drain carries out every pending action, a batch per Poll, and feeds data held back by
// resumed connections one read at a time (so that the engine can pause them again).
func (p *Proxy) drain() {
	for {
		acts, err := p.eng.Poll(p.acts[:0])
		if err != nil {
			p.engineErr(err)
			return
		}
		if len(acts) > 0 {
			for i := range acts {
				p.dispatch(&acts[i])
				acts[i] = Action{}
			}
			continue
		}
		if len(p.resumed) == 0 {
			return
		}
		c := p.resumed[len(p.resumed)-1]
		if !p.current(c) || c.paused || len(c.held) == 0 {
			p.resumed[len(p.resumed)-1] = nil
			p.resumed = p.resumed[:len(p.resumed)-1]
			continue
		}
		data := c.held[0]
		c.held[0] = nil
		c.held = c.held[1:]
		if c.peer == PeerClient {
			p.engineErr(p.eng.ClientData(ClientID(c.id), data, p.now()))
		} else {
			p.engineErr(p.eng.UpstreamData(UpstreamID(c.id), data, p.now()))
		}
	}
}

// dispatch carries out one action.
func (p *Proxy) dispatch(a *Action) {
	switch a.Kind {
	case ActionSendClient, ActionSendUpstream:
		peer := PeerClient
		if a.Kind == ActionSendUpstream {
			peer = PeerUpstream
		}
		if c := p.lookup(peer, a.ID); c != nil {
			p.write(c, a.Data)
		}
	case ActionConnectUpstream:
		c := p.newConn(PeerUpstream, a.ID)
		c.connecting = true
		p.upstreams[UpstreamID(a.ID)] = c
		ctx, cancel := context.WithCancel(p.ctx)
		c.cancelDial = cancel
		p.wg.Add(1)
		go p.connect(ctx, c, string(a.Data))
	case ActionCloseClient, ActionCloseUpstream:
		peer := PeerClient
		if a.Kind == ActionCloseUpstream {
			peer = PeerUpstream
		}
		if c := p.lookup(peer, a.ID); c != nil {
			p.forget(c)
			if c.connecting {
				c.cancelDial()
				c.kill()
			} else {
				p.flushing[c] = struct{}{}
				c.closeAfterFlush()
			}
		}
	case ActionSendCancel:
		target, err := p.eng.RouteTarget(a.Route)
		if err != nil {
			p.engineErr(err)
			p.engineErr(p.eng.CancelDone(UpstreamID(a.ID), p.now()))
			return
		}
		p.wg.Add(1)
		go p.sendCancel(target, a.Data, a.ID)
	case ActionPauseClient, ActionPauseUpstream, ActionResumeClient, ActionResumeUpstream:
		peer := PeerClient
		if a.Kind == ActionPauseUpstream || a.Kind == ActionResumeUpstream {
			peer = PeerUpstream
		}
		c := p.lookup(peer, a.ID)
		if c == nil {
			return
		}
		pause := a.Kind == ActionPauseClient || a.Kind == ActionPauseUpstream
		c.paused = pause
		c.mu.Lock()
		c.readPaused = pause
		c.mu.Unlock()
		if !pause {
			c.rcond.Broadcast()
			if len(c.held) > 0 {
				p.resumed = append(p.resumed, c)
			}
		}
	case ActionStartTLS:
		// The Proxy never sets client_tls, so a TLS switch is a protocol error: the client goes.
		if c := p.clients[ClientID(a.ID)]; c != nil {
			p.forget(c)
			p.flushing[c] = struct{}{}
			c.closeAfterFlush()
			p.engineErr(p.eng.ClientClosed(ClientID(a.ID), p.now()))
		}
	case ActionStartUpstreamTLS:
		// NewProxy refuses routes with upstream TLS; should one ask anyway, the upstream goes.
		if c := p.upstreams[UpstreamID(a.ID)]; c != nil {
			p.log.Printf("muxql: upstream %d: upstream TLS is not run by Proxy", a.ID)
			p.forget(c)
			c.kill()
			p.engineErr(p.eng.UpstreamClosed(UpstreamID(a.ID), p.now()))
		}
	default:
		p.log.Printf("muxql: unknown action %v for id %d", a.Kind, a.ID)
	}
}

// write queues data for c's writer and reports a queue past the high-water mark.
func (p *Proxy) write(c *conn, data []byte) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, data)
	c.pending += len(data)
	block := !c.blocked && c.pending > p.high
	if block {
		c.blocked = true
	}
	c.mu.Unlock()
	if !c.dirty {
		c.dirty = true
		p.dirty = append(p.dirty, c)
	}
	if block {
		p.engineErr(p.eng.SendBlocked(c.peer, c.id, p.now()))
	}
}

// flushDirty flushes every connection written to in this turn; when that drained a blocked
// one, the engine's answer (a resume) is carried out and its writes flushed in turn.
func (p *Proxy) flushDirty() {
	for len(p.dirty) > 0 {
		drained := false
		for _, c := range p.dirty {
			c.dirty = false
			drained = p.flush(c) || drained
		}
		clear(p.dirty)
		p.dirty = p.dirty[:0]
		if drained {
			p.drain()
		}
	}
}

// flush writes c's queue at once if the socket takes it without waiting, and leaves the rest
// to c's writer. Done here, on the loop, it saves the writer's wake-up in the common case of a
// socket with room. It reports whether it told the engine that c drained.
func (p *Proxy) flush(c *conn) bool {
	c.mu.Lock()
	if c.raw == nil || c.writing || c.dead || len(c.queue) == 0 {
		c.mu.Unlock()
		c.wcond.Signal()
		return false
	}
	c.writing = true // the writer leaves the queue alone; only the loop appends to it
	c.mu.Unlock()
	n, err := p.writeNow(c.raw, c.queue)
	c.mu.Lock()
	c.writing = false
	c.pending -= n
	q := c.queue
	for n > 0 && len(q) > 0 {
		k := min(n, len(q[0]))
		q[0] = q[0][k:]
		n -= k
		if len(q[0]) == 0 {
			q[0] = nil
			q = q[1:]
		}
	}
	if len(q) == 0 {
		c.queue = c.queue[:0]
	} else {
		c.queue = append(c.queue[:0], q...)
	}
	drained := c.blocked && c.pending <= p.low
	if drained {
		c.blocked = false
	}
	// The writer waits while this write runs: wake it when something is left, or when a
	// close after flushing was asked for meanwhile (it would otherwise wait forever).
	wake := len(c.queue) > 0 || c.flushClose
	c.mu.Unlock()
	if err != nil {
		c.kill() // the reader sees the socket closed and reports it
		return false
	}
	if wake {
		c.wcond.Signal()
	}
	if drained {
		p.engineErr(p.eng.SendDrained(c.peer, c.id, p.now()))
	}
	return drained
}

// writeNow writes bufs to a socket with one writev that does not wait for room, and returns
// how many bytes went out.
func (p *Proxy) writeNow(rc syscall.RawConn, bufs [][]byte) (int, error) {
	iov := p.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 && len(iov) < maxIovecs {
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
	}
	p.iov = iov
	if len(iov) == 0 {
		return 0, nil
	}
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for {
			r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			switch e {
			case 0:
				n = int(r)
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
			default:
				werr = e
			}
			return true
		}
	})
	clear(iov)
	runtime.KeepAlive(bufs)
	if err == nil {
		err = werr
	}
	return n, err
}

// splitTarget maps a route target to a network and an address for the dialer.
func splitTarget(target string) (network, address string) {
	if path, ok := strings.CutPrefix(target, "unix:"); ok {
		return "unix", path
	}
	if strings.HasPrefix(target, "/") {
		return "unix", target
	}
	return "tcp", target
}

// connect dials an upstream; the engine bounds the wait with its connect timeout (it closes
// the upstream, which cancels ctx).
func (p *Proxy) connect(ctx context.Context, c *conn, target string) {
	defer p.wg.Done()
	network, address := splitTarget(target)
	nc, err := p.dial(ctx, network, address)
	if err != nil {
		p.send(event{kind: evDialFailed, c: c})
		return
	}
	if !p.send(event{kind: evConnected, c: c, nc: nc}) {
		nc.Close()
	}
}

// sendCancel opens a side connection to target, writes a PostgreSQL CancelRequest and waits
// until the server closes it (it has passed the cancel on), then reports it done, also on
// failure.
func (p *Proxy) sendCancel(target string, request []byte, upstream uint64) {
	defer p.wg.Done()
	defer p.send(event{kind: evCancelDone, id: upstream})
	ctx, cancel := context.WithTimeout(p.ctx, cancelLimit)
	defer cancel()
	network, address := splitTarget(target)
	nc, err := p.dial(ctx, network, address)
	if err != nil {
		return
	}
	defer nc.Close()
	if deadline, ok := ctx.Deadline(); ok {
		nc.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	if _, err := nc.Write(request); err != nil {
		return
	}
	io.Copy(io.Discard, nc)
}

// conn is one client or upstream connection: its socket, a reader and a writer goroutine.
type conn struct {
	p    *Proxy
	peer Peer
	id   uint64

	// Owned by the loop goroutine.
	paused     bool
	held       [][]byte // data read while paused, fed to the engine on resume
	dirty      bool     // in p.dirty
	connecting bool     // an upstream whose dial is under way
	cancelDial context.CancelFunc

	mu         sync.Mutex
	rcond      sync.Cond       // the reader waits here while paused
	wcond      sync.Cond       // the writer waits here for data
	nc         net.Conn        // nil while an upstream connects
	queue      [][]byte        // bytes to write, in order
	spare      [][]byte        // the writer's previous queue, reused
	pending    int             // bytes in queue and being written
	blocked    bool            // SendBlocked was reported, SendDrained not yet
	drainSent  bool            // an evDrained is on its way to the loop
	raw        syscall.RawConn // nc's descriptor, when it has one
	writing    bool            // the writer or the loop is writing: the other keeps off
	readPaused bool
	flushClose bool          // close once the queue is written
	dead       bool          // closed
	gone       chan struct{} // closed with dead
}

func (p *Proxy) newConn(peer Peer, id uint64) *conn {
	c := &conn{p: p, peer: peer, id: id, gone: make(chan struct{})}
	c.rcond.L = &c.mu
	c.wcond.L = &c.mu
	return c
}

// start runs the reader and writer goroutines of a connected socket.
func (c *conn) start(readSize int) {
	if sc, ok := c.nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.raw = rc
		}
	}
	c.p.wg.Add(2)
	go c.readLoop(readSize)
	go c.writeLoop()
}

// kill closes the socket now, dropping what is queued; the goroutines end. The reader and
// the writer are released before the socket is closed, since closing waits for a raw read
// under way (readRaw) to return.
func (c *conn) kill() {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.dead = true
	c.queue = nil
	nc := c.nc
	close(c.gone)
	c.mu.Unlock()
	c.rcond.Broadcast()
	c.wcond.Broadcast()
	if nc != nil {
		nc.Close()
	}
}

// isDead reports whether the socket was closed.
func (c *conn) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
}

// closeAfterFlush has the writer write what is queued (for at most closeFlushLimit), then
// close the socket.
func (c *conn) closeAfterFlush() {
	c.mu.Lock()
	c.flushClose = true
	nc := c.nc
	c.mu.Unlock()
	if nc != nil {
		nc.SetWriteDeadline(time.Now().Add(closeFlushLimit))
	}
	c.wcond.Signal()
}

// readLoop reads the socket and hands what it reads to the loop, until the socket fails or
// the connection is closed; then it reports the connection lost.
func (c *conn) readLoop(size int) {
	defer c.p.wg.Done()
	defer c.p.send(event{kind: evLost, c: c})
	buf := make([]byte, size)
	if c.raw != nil {
		c.readRaw(c.raw, buf)
		return
	}
	for c.readable() {
		n, err := c.nc.Read(buf)
		if n > 0 && !c.hand(buf[:n]) {
			return
		}
		if err != nil {
			return
		}
	}
}

// readRaw reads a socket with a file descriptor. A read that does not fill buf has drained
// the socket, so the next one waits for the poller (edge-triggered) instead of trying and
// failing first as net.Conn.Read does: one read system call per arrival instead of two.
func (c *conn) readRaw(rc syscall.RawConn, buf []byte) {
	rc.Read(func(fd uintptr) bool {
		for c.readable() {
			n, err := syscall.Read(int(fd), buf)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return false
			case err != nil || n <= 0:
				return true
			case !c.hand(buf[:n]):
				return true
			case n < len(buf):
				return false
			}
		}
		return true
	})
}

// readable waits while the connection is paused; false once it is closed or closing.
func (c *conn) readable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.readPaused && !c.dead && !c.flushClose {
		c.rcond.Wait()
	}
	return !c.dead && !c.flushClose
}

// hand passes a copy of data to the loop; false when the loop has stopped or the connection
// was killed (the loop may be waiting in kill for this reader to let go of the socket).
func (c *conn) hand(data []byte) bool {
	select {
	case c.p.events <- event{kind: evData, c: c, data: append([]byte(nil), data...)}:
		return true
	case <-c.gone:
		return false
	case <-c.p.done:
		return false
	}
}

func (c *conn) writeLoop() {
	defer c.p.wg.Done()
	for {
		c.mu.Lock()
		for !c.dead && (c.writing || len(c.queue) == 0 && !c.flushClose) {
			c.wcond.Wait()
		}
		if c.dead {
			c.mu.Unlock()
			return
		}
		if len(c.queue) == 0 { // flushClose with everything written
			c.mu.Unlock()
			c.kill()
			c.p.send(event{kind: evLost, c: c})
			return
		}
		q := c.queue
		c.queue = c.spare[:0]
		c.writing = true
		c.mu.Unlock()
		n := 0
		for _, b := range q {
			n += len(b)
		}
		bufs := net.Buffers(q)
		_, err := bufs.WriteTo(c.nc)
		clear(q)
		c.mu.Lock()
		c.spare = q[:0]
		c.pending -= n
		c.writing = false
		notify := c.blocked && !c.drainSent && c.pending <= c.p.low
		if notify {
			c.drainSent = true
		}
		c.mu.Unlock()
		if err != nil {
			c.kill() // the reader sees the socket closed and reports it
			return
		}
		if notify {
			c.p.send(event{kind: evDrained, c: c})
		}
	}
}
