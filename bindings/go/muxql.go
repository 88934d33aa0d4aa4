// Package muxql is the Go binding of muxql, a PostgreSQL and MySQL/MariaDB wire-protocol
// multiplexer: many client sessions are served over a few upstream database connections.
//
// It has two levels. [Engine] wraps the C Engine API (include/muxql.h) one call for one call:
// the host owns the sockets and the clock, feeds bytes and events in, and carries out the
// [Action] values it polls out. [Proxy] is such a host: it serves any [net.Listener] with
// goroutines doing the socket I/O and one goroutine driving the Engine.
//
// The package links the static library cargo builds (see README.md): build it with
// `make -C bindings/go lib` before `go build`.
package muxql

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: ${SRCDIR}/../../target/go/release/libmuxql.a -lpthread -ldl -lm
#include <stdlib.h>
#include "muxql.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// Protocol is the wire protocol of a route or a listener.
type Protocol uint32

const (
	// Postgres is the PostgreSQL protocol (MUXQL_PROTOCOL_POSTGRES).
	Postgres Protocol = C.MUXQL_PROTOCOL_POSTGRES
	// MySQL is the MySQL/MariaDB protocol (MUXQL_PROTOCOL_MYSQL).
	MySQL Protocol = C.MUXQL_PROTOCOL_MYSQL
)

// String returns "postgres", "mysql", or a description of an unknown value.
func (p Protocol) String() string {
	switch p {
	case Postgres:
		return "postgres"
	case MySQL:
		return "mysql"
	}
	return fmt.Sprintf("Protocol(%d)", uint32(p))
}

// ResultCode is what a muxql C function reports (muxql_result). The values are stable.
type ResultCode uint32

const (
	// ResultOK is success (MUXQL_OK).
	ResultOK ResultCode = C.MUXQL_OK
	// ResultNullParameter means a required pointer argument was NULL.
	ResultNullParameter ResultCode = C.MUXQL_NULL_PARAMETER
	// ResultPanic means muxql panicked (a bug); the handle should be closed.
	ResultPanic ResultCode = C.MUXQL_PANIC
	// ResultInvalidArgument means an argument is out of range or not valid UTF-8.
	ResultInvalidArgument ResultCode = C.MUXQL_INVALID_ARGUMENT
	// ResultInvalidConfig means the configuration cannot be used.
	ResultInvalidConfig ResultCode = C.MUXQL_INVALID_CONFIG
	// ResultUnknownID means the client or upstream id is not (or no longer) known.
	ResultUnknownID ResultCode = C.MUXQL_UNKNOWN_ID
	// ResultInsufficientSize means an output buffer was too small.
	ResultInsufficientSize ResultCode = C.MUXQL_INSUFFICIENT_SIZE
	// ResultWrongState means the call is out of order, or the handle is closed.
	ResultWrongState ResultCode = C.MUXQL_WRONG_STATE
	// ResultNoAction means there is no action to carry out now.
	ResultNoAction ResultCode = C.MUXQL_NO_ACTION
)

// String returns the library's description of the code (muxql_result_text).
func (r ResultCode) String() string {
	var buf [256]C.char
	var n C.size_t
	C.muxql_result_text(C.uint32_t(r), &buf[0], C.size_t(len(buf)), &n)
	return C.GoStringN(&buf[0], C.int(n))
}

// Error is a failed muxql call: its result code and a description.
type Error struct {
	// Code is the result the C function returned.
	Code ResultCode
	// Text describes the failure (the library's text for Code, plus details when known).
	Text string
}

// Error returns "muxql: " followed by the text.
func (e *Error) Error() string { return "muxql: " + e.Text }

// Is reports whether target is an *Error with the same Code and, when target has a Text, the
// same Text; so errors.Is(err, ErrUnknownID) holds for every unknown-id failure.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Text == "" || t.Text == e.Text)
}

var (
	// ErrUnknownID matches (errors.Is) every error with code ResultUnknownID.
	ErrUnknownID = &Error{Code: ResultUnknownID}
	// ErrInvalidArgument matches every error with code ResultInvalidArgument.
	ErrInvalidArgument = &Error{Code: ResultInvalidArgument}
	// ErrInvalidConfig matches every error with code ResultInvalidConfig.
	ErrInvalidConfig = &Error{Code: ResultInvalidConfig}
	// ErrClosed is returned by every method of a closed Config or Engine.
	ErrClosed = &Error{Code: ResultWrongState, Text: "use of a closed handle"}
)

// check turns a muxql_result into nil or an *Error; detail, when set, replaces the library's
// text (it is the message a function wrote, which names the problem).
func check(r C.muxql_result, detail string) error {
	code := ResultCode(r)
	if code == ResultOK {
		return nil
	}
	if detail == "" {
		detail = code.String()
	}
	return &Error{Code: code, Text: detail}
}

// invalid is an ResultInvalidArgument error raised on the Go side.
func invalid(format string, args ...any) error {
	return &Error{Code: ResultInvalidArgument, Text: fmt.Sprintf(format, args...)}
}

// cString copies s into C memory (the caller frees it); a NUL inside s is an error, since C
// would silently cut the string there.
func cString(what, s string) (*C.char, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, invalid("%s contains a NUL byte", what)
	}
	return C.CString(s), nil
}

// freeAll frees C strings from cString (nil entries are fine).
func freeAll(ps ...*C.char) {
	for _, p := range ps {
		if p != nil {
			C.free(unsafe.Pointer(p))
		}
	}
}

// Version is the version of the linked library, such as "0.1.0".
func Version() string { return C.GoString(C.muxql_version()) }
