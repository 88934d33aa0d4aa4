#!/usr/bin/env python3
"""Records real PostgreSQL and MySQL traffic and turns it into seed corpora for cargo-fuzz.

Used by scripts/fuzz-seeds. Subcommands (standard library only):

  relay --target HOST:PORT --out DIR --port-file FILE
      Listens on 127.0.0.1 (a free port, written to FILE once listening), forwards every
      connection to the real server and records it in DIR/conn-NNNNNN.rec. Runs until SIGTERM.

  mysql-client --port PORT --user U --password P --db D --mode classic|modern
      A minimal MySQL client for what the mariadb command-line client never sends: the binary
      protocol (COM_STMT_PREPARE/EXECUTE with typed parameters, cursors with COM_STMT_FETCH,
      COM_STMT_SEND_LONG_DATA, COM_STMT_RESET/CLOSE, MariaDB's COM_STMT_BULK_EXECUTE) and the
      other commands (COM_FIELD_LIST, COM_STATISTICS, COM_SET_OPTION, COM_CHANGE_USER, ...).
      "classic" negotiates EOF packets; "modern" negotiates CLIENT_DEPRECATE_EOF, session
      tracking, connection attributes and MariaDB's extended capabilities.

  pg-client --port PORT --user TRUST_USER --db D
      A minimal PostgreSQL frontend for the extended-protocol messages libpq's synchronous API
      never sends (Describe of a statement, Execute with a row limit, Flush, Close, CopyFail)
      and a StartupMessage for protocol 3.2 with a _pq_ option (NegotiateProtocolVersion).

  split --pg DIR --mysql DIR --seeds DIR
      Cuts the recordings into per-target seed files (see TARGETS), adds hand-written inputs,
      replaces the contents of DIR/<target>/ and prints a summary. Seeds are deduplicated,
      grouped by shape (message types, command code, ...) and picked round-robin over shapes,
      at most MAX_FILES and MAX_TARGET_BYTES per target; files are named by their SHA-1.
      Inputs follow the targets in fuzz/fuzz_targets: mysql_command is 4 bytes of negotiated
      capabilities (LE) + a command payload; mysql_response_reader is the command code, a cut
      offset, capability bits 8..23 (LE u16) + the response packets; a mysql_packet seed whose
      first byte is not its first sequence id starts with a filler packet (packet_run_seed).

A recording is a sequence of records: one tag byte (C: client to server, S: server to client),
a 4-byte big-endian length, the bytes as one recv() returned them. Each connection's two
directions are pumped by two threads that append under one lock, and a chunk is recorded
before it is forwarded, so the order of records follows causality (a reply is always recorded
after the request it answers).
"""

import argparse
import hashlib
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

# ----------------------------------------------------------------------------- relay


def _pump(src, dst, tag, rec, lock):
    """Copies src to dst until EOF, appending each chunk to rec; then half-closes dst."""
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            break
        with lock:
            rec.write(tag + struct.pack(">I", len(data)) + data)
            rec.flush()
        try:
            dst.sendall(data)
        except OSError:
            break
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _relay_connection(client, target, path):
    """Relays one client connection to target, recording both directions in path."""
    try:
        server = socket.create_connection(target, timeout=10)
        server.settimeout(None)
    except OSError as e:
        print(f"record_traffic: cannot connect to {target}: {e}", file=sys.stderr)
        client.close()
        return
    lock = threading.Lock()
    with open(path, "wb") as rec:
        back = threading.Thread(target=_pump, args=(server, client, b"S", rec, lock), daemon=True)
        back.start()
        _pump(client, server, b"C", rec, lock)
        back.join()
    client.close()
    server.close()


def cmd_relay(args):
    host, _, port = args.target.rpartition(":")
    target = (host, int(port))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port_file = Path(args.port_file)
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(f"{listener.getsockname()[1]}\n")
    tmp.rename(port_file)  # the caller polls for the file: it appears complete
    workers = []
    count = 0
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except (socket.timeout, InterruptedError):
            continue
        client.settimeout(None)
        count += 1
        worker = threading.Thread(
            target=_relay_connection,
            args=(client, target, out / f"conn-{count:06d}.rec"),
            daemon=True,
        )
        worker.start()
        workers.append(worker)
    listener.close()
    # Clients have exited by now; give servers a moment to close their side.
    deadline = time.monotonic() + 10
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    return 0


def read_recording(path):
    """The records of one connection as a list of (tag, bytes), tag b"C" or b"S"."""
    data = Path(path).read_bytes()
    records = []
    pos = 0
    while pos + 5 <= len(data):
        tag = data[pos : pos + 1]
        (n,) = struct.unpack_from(">I", data, pos + 1)
        records.append((tag, data[pos + 5 : pos + 5 + n]))
        pos += 5 + n
    return records


# ----------------------------------------------------------------------------- MySQL basics

CLIENT_LONG_PASSWORD = 1  # MariaDB: CLIENT_MYSQL; unset means extended capabilities follow
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_LOCAL_FILES = 1 << 7
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_INTERACTIVE = 1 << 10
CLIENT_SSL = 1 << 11
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24
MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 34
MARIADB_CLIENT_EXTENDED_TYPE_INFO = 1 << 35
MARIADB_CLIENT_CACHE_METADATA = 1 << 36

SERVER_MORE_RESULTS_EXISTS = 0x0008
SERVER_STATUS_CURSOR_EXISTS = 0x0040

COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_STATISTICS = 0x09
COM_PROCESS_KILL = 0x0C
COM_DEBUG = 0x0D
COM_PING = 0x0E
COM_CHANGE_USER = 0x11
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_SET_OPTION = 0x1B
COM_STMT_FETCH = 0x1C
COM_RESET_CONNECTION = 0x1F
COM_STMT_BULK_EXECUTE = 0xFA

# Binary-protocol column types.
T_TINY, T_SHORT, T_LONG, T_FLOAT, T_DOUBLE, T_NULL = 1, 2, 3, 4, 5, 6
T_LONGLONG, T_DATE, T_TIME, T_DATETIME, T_YEAR = 8, 10, 11, 12, 13
T_NEWDECIMAL, T_BLOB, T_VAR_STRING = 246, 252, 253


def lenenc_int(n):
    """A length-encoded integer."""
    if n < 0xFB:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + struct.pack("<H", n)
    if n < 1 << 24:
        return b"\xfd" + struct.pack("<I", n)[:3]
    return b"\xfe" + struct.pack("<Q", n)


def lenenc_str(s):
    return lenenc_int(len(s)) + s


def read_lenenc(buf, pos):
    """(value, new position) of the length-encoded integer at pos; value None for NULL (0xFB)."""
    first = buf[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFB:
        return None, pos + 1
    if first == 0xFC:
        return struct.unpack_from("<H", buf, pos + 1)[0], pos + 3
    if first == 0xFD:
        return int.from_bytes(buf[pos + 1 : pos + 4], "little"), pos + 4
    return struct.unpack_from("<Q", buf, pos + 1)[0], pos + 9


def native_password(password, scramble):
    """mysql_native_password: SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw)))."""
    if not password:
        return b""
    h1 = hashlib.sha1(password).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(scramble + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))


def split_packets(buf):
    """The complete MySQL packets at the start of buf as (start, end, seq) and the leftover.

    A payload of 0xFFFFFF bytes continues in the next packet; each physical packet is listed
    on its own (recordings here never hold such large packets)."""
    out = []
    pos = 0
    while pos + 4 <= len(buf):
        n = int.from_bytes(buf[pos : pos + 3], "little")
        if pos + 4 + n > len(buf):
            break
        out.append((pos, pos + 4 + n, buf[pos + 3]))
        pos += 4 + n
    return out, pos


# ----------------------------------------------------------------------------- mysql-client


class MyError(Exception):
    pass


class MyClient:
    """Just enough of a MySQL client to send every command once and read its response."""

    def __init__(self, host, port, timeout=20):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.seq = 0
        self.caps = 0
        self.scramble = b""
        self.deprecate_eof = False

    # -- packets
    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MyError("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read(self):
        """The next packet's payload; the next packet we write continues its sequence."""
        header = self._recv_exact(4)
        n = int.from_bytes(header[:3], "little")
        self.seq = (header[3] + 1) & 0xFF
        return self._recv_exact(n)

    def write(self, payload):
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) & 0xFF

    def command(self, payload):
        """Sends payload as a new command (sequence id 0)."""
        self.seq = 0
        self.write(payload)

    # -- connection phase
    def login(self, user, password, db, want_caps, want_ext=0, attrs=None):
        greeting = self.read()
        if greeting[0] != 10:
            raise MyError(f"unexpected greeting {greeting[:1].hex()}")
        pos = greeting.index(b"\0", 1) + 1 + 4
        part1 = greeting[pos : pos + 8]
        pos += 9
        caps_lo = struct.unpack_from("<H", greeting, pos)[0]
        pos += 2 + 1 + 2
        caps_hi = struct.unpack_from("<H", greeting, pos)[0]
        auth_len = greeting[pos + 2]
        pos += 3 + 6
        ext = struct.unpack_from("<I", greeting, pos)[0]
        pos += 4
        server_caps = caps_lo | caps_hi << 16
        if not server_caps & CLIENT_LONG_PASSWORD:
            server_caps |= ext << 32
        part2_len = max(13, auth_len - 8)
        part2 = greeting[pos : pos + part2_len].rstrip(b"\0")
        self.scramble = part1 + part2
        # CLIENT_LONG_PASSWORD (MariaDB: CLIENT_MYSQL) is the client's choice: set, it declines
        # MariaDB's extended capabilities, as MySQL clients do.
        caps = want_caps & (server_caps | CLIENT_LONG_PASSWORD) & 0xFFFFFFFF
        caps |= CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
        extended = 0
        if not caps & CLIENT_LONG_PASSWORD and not server_caps & CLIENT_LONG_PASSWORD:
            extended = (want_ext & server_caps) >> 32
        self.caps = caps | extended << 32
        self.deprecate_eof = bool(caps & CLIENT_DEPRECATE_EOF)
        auth = native_password(password, self.scramble)
        out = struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 19 + struct.pack("<I", extended)
        out += user + b"\0"
        if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
            out += lenenc_str(auth)
        else:
            out += bytes([len(auth)]) + auth
        if caps & CLIENT_CONNECT_WITH_DB:
            out += db + b"\0"
        out += b"mysql_native_password\0"
        if caps & CLIENT_CONNECT_ATTRS:
            body = b"".join(lenenc_str(k) + lenenc_str(v) for k, v in (attrs or []))
            out += lenenc_str(body)
        self.write(out)
        self._finish_auth(password)

    def _finish_auth(self, password):
        while True:
            p = self.read()
            if p[0] == 0x00:
                return
            if p[0] == 0xFF:
                raise MyError(f"login failed: {p[9:].decode(errors='replace')}")
            if p[0] == 0xFE and len(p) > 1:  # AuthSwitchRequest
                plugin, _, data = p[1:].partition(b"\0")
                if plugin != b"mysql_native_password":
                    raise MyError(f"unsupported auth plugin {plugin!r}")
                self.scramble = data.rstrip(b"\0")
                self.write(native_password(password, self.scramble))
                continue
            raise MyError(f"unexpected auth packet {p[:1].hex()}")

    # -- responses
    def _terminator(self, p):
        """True when p ends a row or column list (EOF, or the 0xFE OK with DEPRECATE_EOF)."""
        if p[0] != 0xFE:
            return False
        return len(p) < 0xFFFFFF if self.deprecate_eof else len(p) < 9

    def _status(self, p):
        """Status flags of an OK (0x00, or 0xFE with DEPRECATE_EOF) or a classic EOF packet."""
        if p[0] == 0xFE and not self.deprecate_eof:
            return struct.unpack_from("<H", p, 3)[0] if len(p) >= 5 else 0
        pos = 1
        _, pos = read_lenenc(p, pos)
        _, pos = read_lenenc(p, pos)
        return struct.unpack_from("<H", p, pos)[0] if pos + 2 <= len(p) else 0

    def result(self, binary=False, infile=b""):
        """Reads a COM_QUERY/COM_STMT_EXECUTE response: every result set, through the last.

        A LOCAL INFILE request is answered with `infile` (then the empty packet). Returns the
        status flags of the final packet (0 after ERR)."""
        while True:
            p = self.read()
            if p[0] == 0xFF:
                return 0
            if p[0] == 0x00:
                status = self._status(p)
                if status & SERVER_MORE_RESULTS_EXISTS:
                    continue
                return status
            if p[0] == 0xFB:
                if infile:
                    self.write(infile)
                self.write(b"")
                continue
            count, pos = read_lenenc(p, 0)
            metadata = True
            if binary and self.caps & MARIADB_CLIENT_CACHE_METADATA:
                metadata = p[pos] != 0
            if metadata:
                for _ in range(count):
                    self.read()
                if not self.deprecate_eof:
                    eof = self.read()
                    if self._status(eof) & SERVER_STATUS_CURSOR_EXISTS:
                        return self._status(eof)  # rows come with COM_STMT_FETCH
            while True:
                p = self.read()
                if p[0] == 0xFF:
                    return 0
                if self._terminator(p):
                    break
            status = self._status(p)
            if not status & SERVER_MORE_RESULTS_EXISTS:
                return status

    def rows(self):
        """Reads rows until EOF/ERR (COM_STMT_FETCH)."""
        while True:
            p = self.read()
            if p[0] == 0xFF or self._terminator(p):
                return

    def columns(self):
        """Reads column definitions until EOF/ERR (COM_FIELD_LIST)."""
        self.rows()

    def one(self):
        """Reads a single-packet response (OK, ERR, EOF, statistics)."""
        return self.read()

    # -- commands
    def query(self, sql, infile=b""):
        self.command(bytes([COM_QUERY]) + sql)
        return self.result(infile=infile)

    def prepare(self, sql):
        """COM_STMT_PREPARE; returns (statement id, parameter count) or raises on ERR."""
        self.command(bytes([COM_STMT_PREPARE]) + sql)
        p = self.read()
        if p[0] == 0xFF:
            raise MyError(f"prepare failed: {p[9:].decode(errors='replace')}")
        stmt, ncols, nparams = struct.unpack_from("<IHH", p, 1)
        for n in (nparams, ncols):
            if n:
                for _ in range(n):
                    self.read()
                if not self.deprecate_eof:
                    self.read()
        return stmt, nparams

    def execute(self, stmt, params, flags=0, bind=True, long_data=()):
        """COM_STMT_EXECUTE with params [(type, unsigned, value-bytes or None)].

        bind=False resends no types (new-params-bound flag 0); parameters listed in long_data
        had their value sent with COM_STMT_SEND_LONG_DATA and carry none here."""
        out = bytes([COM_STMT_EXECUTE]) + struct.pack("<IBI", stmt, flags, 1)
        if params:
            bitmap = bytearray((len(params) + 7) // 8)
            for i, (_, _, value) in enumerate(params):
                if value is None:
                    bitmap[i // 8] |= 1 << (i % 8)
            out += bytes(bitmap) + (b"\x01" if bind else b"\x00")
            if bind:
                out += b"".join(bytes([t, 0x80 if u else 0]) for t, u, _ in params)
            for i, (_, _, value) in enumerate(params):
                if value is not None and i not in long_data:
                    out += value
        self.command(out)
        return self.result(binary=True)


def _time_value(neg, days, h, m, s, micro):
    if micro:
        return b"\x0c" + struct.pack("<BIBBBI", neg, days, h, m, s, micro)
    return b"\x08" + struct.pack("<BIBBB", neg, days, h, m, s)


def _datetime_value(y, mo, d, h=0, mi=0, s=0, micro=0):
    if micro:
        return b"\x0b" + struct.pack("<HBBBBBI", y, mo, d, h, mi, s, micro)
    if h or mi or s:
        return b"\x07" + struct.pack("<HBBBBB", y, mo, d, h, mi, s)
    return b"\x04" + struct.pack("<HBB", y, mo, d)


def cmd_mysql_client(args):
    """Runs one session of binary-protocol and miscellaneous commands (see module doc)."""
    user = args.user.encode()
    password = args.password.encode()
    db = args.db.encode()
    modern = args.mode == "modern"
    base = (
        CLIENT_LONG_FLAG
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_LOCAL_FILES
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_MULTI_STATEMENTS
        | CLIENT_MULTI_RESULTS
        | CLIENT_PS_MULTI_RESULTS
        | CLIENT_PLUGIN_AUTH
    )
    if modern:
        want = base | CLIENT_INTERACTIVE | CLIENT_CONNECT_ATTRS
        want |= CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_SESSION_TRACK | CLIENT_DEPRECATE_EOF
        want_ext = (
            MARIADB_CLIENT_STMT_BULK_OPERATIONS
            | MARIADB_CLIENT_EXTENDED_TYPE_INFO
            | MARIADB_CLIENT_CACHE_METADATA
        )
    else:
        want = base | CLIENT_LONG_PASSWORD | CLIENT_FOUND_ROWS
        want_ext = 0
    c = MyClient("127.0.0.1", args.port)
    attrs = [(b"_client_name", b"muxql-fuzz-seeds"), (b"_pid", str(os.getpid()).encode())]
    c.login(user, password, db, want, want_ext, attrs)
    table = b"seeds_bin_" + args.mode.encode()

    c.query(b"DROP TABLE IF EXISTS " + table)
    c.query(
        b"CREATE TABLE " + table + b" (id INT AUTO_INCREMENT PRIMARY KEY, ti TINYINT, "
        b"si SMALLINT, bi BIGINT UNSIGNED, fl FLOAT, db DOUBLE, vc VARCHAR(100), bl BLOB, "
        b"d DATE, dt DATETIME(6), tm TIME(6), de DECIMAL(12,4), yr YEAR, bt BIT(9), js JSON)"
    )
    if modern:
        c.query(
            b"SET SESSION session_track_schema = 1, session_track_state_change = 1, "
            b"session_track_system_variables = 'autocommit,time_zone,character_set_client', "
            b"session_track_transaction_info = 'CHARACTERISTICS'"
        )
        c.query(b"SET time_zone = '+00:00'")
        c.query(b"START TRANSACTION READ ONLY")
        c.query(b"COMMIT")
    c.command(bytes([COM_INIT_DB]) + db)
    c.one()
    c.command(bytes([COM_PING]))
    c.one()
    c.command(bytes([COM_STATISTICS]))
    c.one()
    c.command(bytes([COM_FIELD_LIST]) + table + b"\0")
    c.columns()
    c.command(bytes([COM_FIELD_LIST]) + table + b"\0" + b"d%")
    c.columns()

    # Every parameter type, then NULLs with the types not resent.
    stmt, _ = c.prepare(
        b"INSERT INTO " + table + b" (ti, si, bi, fl, db, vc, bl, d, dt, tm, de, yr) "
        b"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    params = [
        (T_TINY, False, struct.pack("<b", -7)),
        (T_SHORT, False, struct.pack("<h", 1234)),
        (T_LONGLONG, True, struct.pack("<Q", 2**64 - 2)),
        (T_FLOAT, False, struct.pack("<f", 1.5)),
        (T_DOUBLE, False, struct.pack("<d", -2.25e100)),
        (T_VAR_STRING, False, lenenc_str("héllo".encode())),
        (T_BLOB, False, lenenc_str(bytes(range(256)))),
        (T_DATE, False, _datetime_value(2024, 2, 29)),
        (T_DATETIME, False, _datetime_value(1999, 12, 31, 23, 59, 58, 123456)),
        (T_TIME, False, _time_value(1, 2, 3, 4, 5, 600000)),
        (T_NEWDECIMAL, False, lenenc_str(b"-12345678.9012")),
        (T_YEAR, False, struct.pack("<H", 2155)),
    ]
    c.execute(stmt, params)
    nulls = [(t, u, None if i % 2 else v) for i, (t, u, v) in enumerate(params)]
    c.execute(stmt, nulls)
    c.execute(stmt, nulls, bind=False)
    c.execute(stmt, [(T_NULL, False, None)] * len(params))
    short = [
        (T_LONG, False, struct.pack("<i", 1)),
        (T_LONG, False, struct.pack("<i", -1)),
        (T_LONG, True, struct.pack("<I", 4000000000 % (1 << 32))),
        (T_DOUBLE, False, struct.pack("<d", float("inf"))),
        (T_DOUBLE, False, struct.pack("<d", 0.1)),
        (T_VAR_STRING, False, lenenc_str(b"x" * 300)),
        (T_VAR_STRING, False, lenenc_str(b"")),
        (T_DATETIME, False, _datetime_value(2000, 1, 1, 0, 0, 1)),
        (T_DATETIME, False, _datetime_value(2000, 1, 2)),
        (T_TIME, False, _time_value(0, 0, 12, 0, 0, 0)),
        (T_VAR_STRING, False, lenenc_str(b"0.0001")),
        (T_SHORT, True, struct.pack("<H", 1901)),
    ]
    c.execute(stmt, short)
    c.command(bytes([COM_STMT_RESET]) + struct.pack("<I", stmt))
    c.one()
    c.command(bytes([COM_STMT_CLOSE]) + struct.pack("<I", stmt))
    c.query(b"UPDATE " + table + b" SET bt = b'101010101', js = '{\"a\": [1, 2.5, null]}'")

    # A binary result set with every column type.
    stmt, _ = c.prepare(b"SELECT * FROM " + table + b" WHERE id >= ? ORDER BY id")
    c.execute(stmt, [(T_LONGLONG, False, struct.pack("<q", 0))])
    c.execute(stmt, [(T_LONGLONG, False, struct.pack("<q", 3))], bind=False)
    c.execute(stmt, [(T_LONGLONG, False, None)])
    c.command(bytes([COM_STMT_CLOSE]) + struct.pack("<I", stmt))
    stmt, _ = c.prepare(b"SELECT 1, 'one', NULL, 2.5, NOW(6), CAST(? AS CHAR)")
    c.execute(stmt, [(T_VAR_STRING, False, lenenc_str(b"param"))])
    c.command(bytes([COM_STMT_CLOSE]) + struct.pack("<I", stmt))

    # Long data for a BLOB parameter.
    stmt, _ = c.prepare(b"UPDATE " + table + b" SET bl = ? WHERE id = ?")
    for chunk in (b"first chunk;", b"second chunk"):
        c.command(bytes([COM_STMT_SEND_LONG_DATA]) + struct.pack("<IH", stmt, 0) + chunk)
    c.execute(stmt, [(T_BLOB, False, b""), (T_LONG, False, struct.pack("<i", 1))], long_data={0})
    c.command(bytes([COM_STMT_CLOSE]) + struct.pack("<I", stmt))

    # A read-only cursor fetched in two steps (classic: the column EOF reports the cursor).
    if not modern:
        stmt, _ = c.prepare(b"SELECT id, vc, dt FROM " + table + b" ORDER BY id")
        c.execute(stmt, [], flags=1)
        c.command(bytes([COM_STMT_FETCH]) + struct.pack("<II", stmt, 2))
        c.rows()
        c.command(bytes([COM_STMT_FETCH]) + struct.pack("<II", stmt, 100))
        c.rows()
        c.command(bytes([COM_STMT_CLOSE]) + struct.pack("<I", stmt))

    # A procedure with several result sets, through the binary protocol.
    c.query(b"DROP PROCEDURE IF EXISTS seeds_multi_" + args.mode.encode())
    c.query(
        b"CREATE PROCEDURE seeds_multi_" + args.mode.encode() + b"(IN n INT) "
        b"BEGIN SELECT n AS a; SELECT n + 1 AS b, 'x' AS c; END"
    )
    stmt, _ = c.prepare(b"CALL seeds_multi_" + args.mode.encode() + b"(?)")
    c.execute(stmt, [(T_LONG, False, struct.pack("<i", 41))])
    c.command(bytes([COM_STMT_CLOSE]) + struct.pack("<I", stmt))

    # MariaDB's bulk execute: two rows, one NULL indicator.
    if c.caps & MARIADB_CLIENT_STMT_BULK_OPERATIONS:
        stmt, _ = c.prepare(b"INSERT INTO " + table + b" (ti, vc) VALUES (?, ?)")
        out = bytes([COM_STMT_BULK_EXECUTE]) + struct.pack("<IH", stmt, 128)
        out += bytes([T_TINY, 0, T_VAR_STRING, 0])
        out += b"\x00" + struct.pack("<b", 5) + b"\x00" + lenenc_str(b"bulk one")
        out += b"\x00" + struct.pack("<b", 6) + b"\x01"
        c.command(out)
        c.result()
        c.command(bytes([COM_STMT_CLOSE]) + struct.pack("<I", stmt))

    # Text protocol odds and ends: multi-statements, an error mid-way, LOCAL INFILE.
    c.query(b"SELECT 1; SELECT 'two', NULL; DO 3")
    c.query(b"SELECT 1; SELECT * FROM seeds_no_such_table; SELECT 3")
    c.query(b"SELECT seq, REPEAT('r', seq % 50) FROM seq_1_to_120")
    c.query(b"CREATE TEMPORARY TABLE seeds_load (a INT, b VARCHAR(10))")
    load = b"LOAD DATA LOCAL INFILE 'seeds.csv' INTO TABLE seeds_load FIELDS TERMINATED BY ','"
    c.query(load, infile=b"1,one\n2,two\n3,three\n")
    c.query(load)  # an empty file: just the empty packet
    c.query(b"SELECT * FROM seeds_load")
    c.command(bytes([COM_SET_OPTION]) + struct.pack("<H", 1))  # multi-statements off
    c.one()
    c.query(b"SELECT 1; SELECT 2")  # now a syntax error
    c.command(bytes([COM_SET_OPTION]) + struct.pack("<H", 0))
    c.one()
    c.command(bytes([COM_PROCESS_KILL]) + struct.pack("<I", 999999))
    c.one()
    c.command(bytes([COM_DEBUG]))
    c.one()
    c.query(b"SET @seeds_v := 5")
    c.command(bytes([COM_RESET_CONNECTION]))
    c.one()

    # COM_CHANGE_USER back to the same user, answered with the greeting's scramble.
    auth = native_password(password, c.scramble)
    out = bytes([COM_CHANGE_USER]) + user + b"\0" + bytes([len(auth)]) + auth + db + b"\0"
    out += struct.pack("<H", 45) + b"mysql_native_password\0"
    if c.caps & CLIENT_CONNECT_ATTRS:
        out += lenenc_str(lenenc_str(b"_client_name") + lenenc_str(b"change-user"))
    c.command(out)
    c._finish_auth(password)
    c.query(b"SELECT CURRENT_USER(), DATABASE()")
    c.query(b"DROP TABLE " + table)
    c.query(b"DROP PROCEDURE seeds_multi_" + args.mode.encode())
    c.command(bytes([COM_QUIT]))
    c.sock.close()
    return 0


# ----------------------------------------------------------------------------- pg-client


class PgError(Exception):
    pass


class PgClient:
    """Just enough of a PostgreSQL frontend (trust login) for the extended-protocol messages
    libpq's synchronous API never sends: Describe of a statement, Execute with a row limit,
    Flush, Close, CopyFail, and a StartupMessage asking for protocol 3.2 with an option."""

    def __init__(self, host, port, timeout=20):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, *messages):
        self.sock.sendall(b"".join(messages))

    def read(self):
        """The next backend message as (type, body)."""
        while True:
            if len(self.buf) >= 5:
                (n,) = struct.unpack_from(">I", self.buf, 1)
                if len(self.buf) >= 1 + n:
                    kind, body = self.buf[:1], self.buf[5 : 1 + n]
                    self.buf = self.buf[1 + n :]
                    return kind, body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise PgError("server closed the connection")
            self.buf += chunk

    def until(self, kinds):
        """Reads messages up to one of kinds; returns the types read."""
        seen = []
        while True:
            kind, body = self.read()
            seen.append(kind)
            if kind == b"E" and b"SFATAL" in body:
                raise PgError("fatal error: " + body.decode(errors="replace"))
            if kind in kinds:
                return seen

    def startup(self, version, params):
        body = struct.pack(">I", version) + pg_params(params)
        self.send(struct.pack(">I", 4 + len(body)) + body)
        self.until({b"Z"})


def pg_msg(kind, body=b""):
    return kind + struct.pack(">I", 4 + len(body)) + body


def pg_bind(portal, stmt, params, formats=(), result_formats=()):
    """A Bind message: params are bytes (or None for NULL)."""
    body = portal + b"\0" + stmt + b"\0"
    body += struct.pack(">H", len(formats)) + b"".join(struct.pack(">H", f) for f in formats)
    body += struct.pack(">H", len(params))
    for p in params:
        body += struct.pack(">i", -1) if p is None else struct.pack(">i", len(p)) + p
    body += struct.pack(">H", len(result_formats))
    body += b"".join(struct.pack(">H", f) for f in result_formats)
    return pg_msg(b"B", body)


def cmd_pg_client(args):
    """One session of extended-protocol traffic, then a protocol 3.2 startup (see PgClient)."""
    user, db = args.user.encode(), args.db.encode()
    sync = pg_msg(b"S")
    c = PgClient("127.0.0.1", args.port)
    c.startup(196608, [(b"user", user), (b"database", db), (b"application_name", b"seeds")])
    c.send(pg_msg(b"Q", b"CREATE TEMP TABLE seeds_copy (a int, b text)\0"))
    c.until({b"Z"})
    # A named statement with a typed parameter, described before use.
    sql = b"SELECT g, 'row ' || g AS label FROM generate_series(1, $1::int) AS g\0"
    c.send(pg_msg(b"P", b"seeds_s\0" + sql + struct.pack(">HI", 1, 23)), pg_msg(b"D", b"Sseeds_s\0"), sync)
    c.until({b"Z"})
    # A portal with a binary parameter and binary results, fetched two rows at a time.
    c.send(
        pg_bind(b"seeds_p", b"seeds_s", [struct.pack(">i", 5)], formats=[1], result_formats=[1]),
        pg_msg(b"D", b"Pseeds_p\0"),
        pg_msg(b"E", b"seeds_p\0" + struct.pack(">I", 2)),
        pg_msg(b"H"),
    )
    c.until({b"s"})
    c.send(
        pg_msg(b"E", b"seeds_p\0" + struct.pack(">I", 0)),
        pg_msg(b"C", b"Pseeds_p\0"),
        pg_msg(b"C", b"Sseeds_s\0"),
        sync,
    )
    c.until({b"Z"})
    # The unnamed statement: text parameters, a NULL, mixed result formats.
    c.send(
        pg_msg(b"P", b"\0SELECT $1::text AS a, $2::int AS b, now() AS c\0" + struct.pack(">H", 0)),
        pg_bind(b"", b"", [b"text value", None], result_formats=[0, 1, 1]),
        pg_msg(b"D", b"P\0"),
        pg_msg(b"E", b"\0" + struct.pack(">I", 0)),
        sync,
    )
    c.until({b"Z"})
    # An error in the middle of a pipeline: the rest is skipped up to Sync.
    c.send(
        pg_msg(b"P", b"\0SELECT 1/0\0\0\0"),
        pg_bind(b"", b"", []),
        pg_msg(b"E", b"\0\0\0\0\0"),
        pg_msg(b"P", b"\0SELECT 'skipped'\0\0\0"),
        sync,
    )
    c.until({b"Z"})
    # An empty query, and COPY both ways, one of them aborted by the client.
    c.send(pg_msg(b"P", b"\0\0\0\0"), pg_bind(b"", b"", []), pg_msg(b"E", b"\0\0\0\0\0"), sync)
    c.until({b"Z"})
    c.send(pg_msg(b"P", b"\0COPY (SELECT 1, 'one') TO STDOUT\0\0\0"), pg_bind(b"", b"", []))
    c.send(pg_msg(b"E", b"\0\0\0\0\0"), sync)
    c.until({b"Z"})
    c.send(pg_msg(b"Q", b"COPY seeds_copy FROM STDIN\0"))
    c.until({b"G"})
    c.send(pg_msg(b"d", b"1\tone\n2\t\\N\n"), pg_msg(b"c"))
    c.until({b"Z"})
    c.send(pg_msg(b"Q", b"COPY seeds_copy FROM STDIN\0"))
    c.until({b"G"})
    c.send(pg_msg(b"d", b"3\tthree\n"), pg_msg(b"f", b"aborted by the seeds client\0"))
    c.until({b"Z"})
    c.send(pg_msg(b"X"))
    c.sock.close()

    # Protocol 3.2 and a _pq_ option: PostgreSQL before 18 answers NegotiateProtocolVersion.
    c = PgClient("127.0.0.1", args.port)
    c.startup(196610, [(b"user", user), (b"database", db), (b"_pq_.seeds_option", b"1")])
    c.send(pg_msg(b"Q", b"SELECT 1\0"))
    c.until({b"Z"})
    c.send(pg_msg(b"X"))
    c.sock.close()
    return 0


# ----------------------------------------------------------------------------- split

MAX_SEED = 64 * 1024  # bytes per seed file
# A whole PostgreSQL stream is cut to this: libFuzzer's -max_len defaults to the largest seed,
# and smaller inputs run faster.
MAX_WHOLE_STREAM = 16 * 1024
MAX_FILES = 300  # files per target
MAX_TARGET_BYTES = 512 * 1024  # bytes per target

TARGETS = [
    "pg_startup",
    "pg_frontend",
    "pg_backend",
    "sql_lexers",
    "mysql_packet",
    "mysql_handshake",
    "mysql_command",
    "mysql_response_reader",
]

PG_SSL_REQUEST = 80877103
PG_GSSENC_REQUEST = 80877104
PG_CANCEL_REQUEST = 80877102


class Seeds:
    """Candidate seeds per target, grouped by a key that names their shape.

    Selection takes the first candidate of every key, then the second of every key, and so
    on (each key at most `per_key` times), while the target stays within MAX_FILES and
    MAX_TARGET_BYTES: every shape gets in before any shape gets a second example."""

    def __init__(self):
        self.groups = {t: {} for t in TARGETS}
        self.seen = {t: set() for t in TARGETS}

    def add(self, target, key, data, per_key=3):
        """Adds data under key unless the target has it already (per_key counts from the first
        add of a key)."""
        data = bytes(data)
        if not data or len(data) > MAX_SEED or data in self.seen[target]:
            return
        self.seen[target].add(data)
        group = self.groups[target].setdefault(key, [per_key, []])
        group[1].append(data)

    def select(self, target):
        chosen, size = [], 0
        groups = list(self.groups[target].values())
        for rank in range(max((len(g[1]) for g in groups), default=0)):
            for per_key, items in groups:
                if rank >= per_key or rank >= len(items):
                    continue
                item = items[rank]
                if len(chosen) >= MAX_FILES or size + len(item) > MAX_TARGET_BYTES:
                    continue
                chosen.append(item)
                size += len(item)
        return chosen


def run_shape(items, cap=3):
    """items with runs of equal items cut to `cap`: the shape of a message sequence."""
    out = []
    run = 0
    for item in items:
        run = run + 1 if out and out[-1] == item else 1
        if run <= cap:
            out.append(item)
    return tuple(out)


# -- PostgreSQL


def pg_messages(buf):
    """(start, end, type) of the complete typed messages at the start of buf."""
    out = []
    pos = 0
    while pos + 5 <= len(buf):
        (n,) = struct.unpack_from(">I", buf, pos + 1)
        if n < 4 or pos + 1 + n > len(buf):
            break
        out.append((pos, pos + 1 + n, buf[pos : pos + 1]))
        pos += 1 + n
    return out


def pg_message_key(buf, start, kind):
    """A message's part in a shape: its type, and for authentication requests the code."""
    if kind == b"R" and start + 9 <= len(buf):
        return "R%d" % struct.unpack_from(">I", buf, start + 5)[0]
    return kind.decode("latin-1")


def pg_prefix(buf, messages, limit=MAX_SEED):
    """The longest prefix of buf ending on a message boundary within limit bytes."""
    end = 0
    for _, e, _ in messages:
        if e > limit:
            break
        end = e
    return buf[:end]


def pg_chunks(buf, messages, flush_types, limit=10):
    """Runs of messages, each ending after a flush_types message or after `limit` messages."""
    chunk = []
    for m in messages:
        chunk.append(m)
        if m[2] in flush_types or len(chunk) >= limit:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def split_pg_connection(records, seeds, sql_texts):
    """Adds one PostgreSQL connection's seeds: its startup-phase packets (pg_startup); the
    client's and the server's bytes after them, whole (cut to MAX_WHOLE_STREAM) and in chunks
    ending where the sender waits for an answer (pg_frontend, pg_backend); and collects the
    SQL of its Query and Parse messages."""
    client = b"".join(d for t, d in records if t == b"C")
    server = b"".join(d for t, d in records if t == b"S")
    # Startup phase: SSLRequest/GSSENCRequest (answered by one byte), then the startup packet.
    while len(client) >= 8:
        n, code = struct.unpack_from(">II", client, 0)
        if n < 8 or n > len(client):
            return
        names = tuple(client[8:n].split(b"\0")[::2]) if code < PG_CANCEL_REQUEST else ()
        seeds.add("pg_startup", ("code-%d" % code,) + names, client[:n])
        client = client[n:]
        if code in (PG_SSL_REQUEST, PG_GSSENC_REQUEST):
            server = server[1:]
            continue
        if code == PG_CANCEL_REQUEST:
            return
        break
    fe = pg_messages(client)
    be = pg_messages(server)
    for buf, messages, target, flush in (
        (client, fe, "pg_frontend", {b"Q", b"S", b"X", b"p", b"F", b"c", b"f", b"H"}),
        (server, be, "pg_backend", {b"Z", b"R", b"G", b"H"}),
    ):
        if not messages:
            continue
        whole = pg_prefix(buf, messages, MAX_WHOLE_STREAM)
        kinds = sorted({pg_message_key(buf, s, k) for s, _, k in pg_messages(whole)})
        seeds.add(target, ("whole",) + tuple(kinds), whole, per_key=2)
        for chunk in pg_chunks(buf, messages, flush):
            shape = tuple(pg_message_key(buf, s, k) for s, _, k in chunk)
            seeds.add(target, shape, buf[chunk[0][0] : chunk[-1][1]], per_key=2)
    for start, end, kind in fe:
        body = client[start + 5 : end]
        if kind == b"Q":
            sql_texts.append(body.rstrip(b"\0"))
        elif kind == b"P":
            _, _, rest = body.partition(b"\0")
            sql_texts.append(rest.partition(b"\0")[0])


def pg_startup_packet(code, body):
    return struct.pack(">II", 8 + len(body), code) + body


def pg_params(pairs):
    return b"".join(k + b"\0" + v + b"\0" for k, v in pairs) + b"\0"


HANDMADE_PG_STARTUP = [
    pg_startup_packet(PG_SSL_REQUEST, b""),
    pg_startup_packet(PG_GSSENC_REQUEST, b""),
    pg_startup_packet(PG_CANCEL_REQUEST, struct.pack(">II", 4242, 0x5EED5EED)),
    # Protocol 3.2 allows cancel keys of up to 256 bytes.
    pg_startup_packet(PG_CANCEL_REQUEST, struct.pack(">I", 4243) + bytes(range(32))),
    pg_startup_packet(196608, pg_params([(b"user", b"u")])),
    pg_startup_packet(
        196608,
        pg_params(
            [
                (b"user", b"muxql"),
                (b"database", b"muxql"),
                (b"application_name", b"seeds"),
                (b"client_encoding", b"UTF8"),
                (b"options", b"-c search_path=public -c statement_timeout=5s"),
                (b"DateStyle", b"ISO, MDY"),
                (b"replication", b"database"),
            ]
        ),
    ),
    pg_startup_packet(
        196610,
        pg_params([(b"user", b"muxql"), (b"database", b"muxql"), (b"_pq_.test_ext", b"on")]),
    ),
    # Direct TLS (PostgreSQL 17+): the connection opens with a TLS record, not a length.
    b"\x16\x03\x01\x00\x2a\x01\x00\x00\x26\x03\x03" + bytes(32) + b"\x00\x00\x00",
]

# Hand-written SQL for both lexers: quoting, comments and the statements muxql classifies.
HANDMADE_SQL = [
    b"SELECT $$a ; b$$, $tag$ $$ ; $tag$, $1, $12 FROM t",
    b"DO $body$ BEGIN PERFORM 1; END $body$; SELECT 2",
    b"SELECT /* outer /* nested */ still comment */ 1; -- trailing ; comment\nSELECT 2",
    b"SELECT E'it''s \\' escaped\\\\', e'\\x41'\n  'continued' FROM t",
    b"SELECT B'1010', X'ff', N'national', U&'\\0041', U&\"col\" FROM t",
    b'SELECT "quoted ""ident""", \'str\'\'ing\' FROM "Tab"',
    b"SET search_path TO public, pg_temp; SET LOCAL statement_timeout = '5s'",
    b"SET SESSION application_name = 'x'; RESET application_name; RESET ALL",
    b"SET TIME ZONE 'UTC'; SET NAMES 'UTF8'; SET ROLE admin; SET SESSION AUTHORIZATION DEFAULT",
    b"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE",
    b"SELECT set_config('search_path', 'x', false), set_config('a.b', 'c', true)",
    b"BEGIN; SELECT 1; COMMIT; START TRANSACTION; ROLLBACK; END; ABORT",
    b"PREPARE q (int) AS SELECT $1; EXECUTE q(1); DEALLOCATE q; DEALLOCATE ALL",
    b"DISCARD ALL; DISCARD TEMP; DISCARD PLANS; DISCARD SEQUENCES",
    b"LISTEN chan; NOTIFY chan, 'x'; UNLISTEN chan; UNLISTEN *",
    b"CREATE TEMPORARY TABLE t1 (a int); CREATE TEMP VIEW v AS SELECT 1; "
    b"CREATE UNLOGGED TABLE u (a int); CREATE TABLE pg_temp.t2 (b int)",
    b"SELECT pg_advisory_lock(1), pg_try_advisory_lock_shared(2, 3), pg_advisory_lock_shared(4)",
    b"DECLARE c CURSOR WITH HOLD FOR SELECT 1; FETCH 10 FROM c; CLOSE c",
    b"LOAD 'auto_explain'; EXPLAIN (ANALYZE, VERBOSE) SELECT 1",
    b"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
    b"SELECT * INTO TEMP newt FROM t WHERE a = 1 FOR UPDATE",
    b"WITH w AS (SELECT 1) SELECT * FROM w UNION SELECT 2 ORDER BY 1 LIMIT 1 OFFSET 0",
    b"(SELECT 1) INTERSECT (VALUES (2)); TABLE t; MERGE INTO t USING s ON true WHEN MATCHED THEN DO NOTHING",
    b"SELECT 1 FOR UPDATE; SELECT * FROM t FOR SHARE NOWAIT; SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED",
    b"select `a``b`, \"c\\\"d\", 'e\\'f' from `t` where x = 'y' # hash comment\n;",
    b"/*!40101 SET NAMES utf8mb4 */; /*M!100100 SET @x = 1 */; /*!50503 SELECT 2 */",
    b"SET @v := 1; SET @`w` = 2, @'q' = 3; SELECT @v := @v + 1 INTO @x",
    b"SELECT 1 INTO @a; SELECT @@warning_count, @@session.error_count, @@GLOBAL.warning_count",
    b"SELECT ROW_COUNT(), ROW_COUNT (), row_count( ), FOUND_ROWS(), LAST_INSERT_ID(), LAST_INSERT_ID(5)",
    b"SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1; SELECT FOUND_ROWS()",
    b"SHOW WARNINGS; SHOW ERRORS LIMIT 1, 2; SHOW COUNT(*) WARNINGS; SHOW COUNT(*) ERRORS;",
    b"show warnings limit 5",
    b"LOCK TABLES t READ, u WRITE; UNLOCK TABLES; LOCK TABLE t WRITE; UNLOCK TABLE",
    b"FLUSH TABLES WITH READ LOCK; FLUSH TABLES t FOR EXPORT; UNLOCK TABLES",
    b"SELECT GET_LOCK('x', 10), RELEASE_LOCK('x'), IS_FREE_LOCK('x')",
    b"CREATE TEMPORARY TABLE tt (a INT); DROP TEMPORARY TABLE tt",
    b"PREPARE s FROM 'SELECT ?'; EXECUTE s USING @v; DEALLOCATE PREPARE s; DROP PREPARE s",
    b"HANDLER t OPEN; HANDLER t READ FIRST; HANDLER t CLOSE",
    b"XA START 'x'; XA END 'x'; XA PREPARE 'x'; XA COMMIT 'x'",
    b"KILL 12; KILL QUERY 13; KILL CONNECTION 14; KILL 18446744073709551615",
    b"SET SESSION session_track_system_variables = '*'; SET session_track_gtids = OWN_GTID",
    b"SET @@session.session_track_state_change = ON; SET ROLE NONE",
    b"SET autocommit = 0; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    b"SELECT * FROM t WHERE id = 1 FOR UPDATE; SELECT * FROM t LOCK IN SHARE MODE",
    b"INSERT INTO t VALUES (1), (2); REPLACE INTO t VALUES (3); DELETE FROM t; UPDATE t SET a = 1;",
    b"SELECT 1;",
    b"SELECT 1; ",
    b"DELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT 1; END//",
    b"SELECT '\\\\' AS backslash, \"\\\"\" AS dq, '--' AS not_a_comment --real comment",
    b"--not a comment in MySQL\nSELECT 1-- 1",
    b"SELECT 1 /* unterminated",
    b"SELECT 'unterminated",
    b"SELECT $tag$ unterminated",
    b"SELECT E'unterminated \\",
    b"SELECT \"\xff\xfe\" FROM \xe2\x80\x9ct\xe2\x80\x9d; SELECT '\x00'",
]


# -- MySQL


class MyPacket:
    """One recorded packet: who sent it (b"C" or b"S"), its sequence id, bytes and payload."""

    def __init__(self, tag, seq, raw):
        self.tag, self.seq, self.raw, self.payload = tag, seq, raw, raw[4:]


class MyConnection:
    """One recorded MySQL connection cut into its phases, packets in the order they went."""

    def __init__(self, records):
        self.greeting = None  # the server's first packet
        self.response = None  # the client's first packet: HandshakeResponse41
        self.login = []  # the connection phase, from the greeting to the auth OK/ERR
        self.exchanges = []  # each command and what followed it (both directions)
        self.server_caps = 0
        self.client_caps = 0
        bufs = {b"C": b"", b"S": b""}
        for tag, data in records:
            bufs[tag] += data
            packets, used = split_packets(bufs[tag])
            for start, end, seq in packets:
                self._packet(MyPacket(tag, seq, bufs[tag][start:end]))
            bufs[tag] = bufs[tag][used:]

    def _packet(self, packet):
        payload = packet.payload
        if self.greeting is None:
            if packet.tag == b"S":
                self.greeting = packet
                self.login.append(packet)
                self._greeting_caps(payload)
            return
        if self.response is None and packet.tag == b"C":
            self.response = packet
            self.login.append(packet)
            if len(payload) >= 4:
                self.client_caps = struct.unpack_from("<I", payload, 0)[0]
                if not self.client_caps & CLIENT_LONG_PASSWORD and len(payload) >= 32:
                    self.client_caps |= struct.unpack_from("<I", payload, 28)[0] << 32
            return
        if not self._authenticated():
            self.login.append(packet)
        elif packet.tag == b"C" and packet.seq == 0:
            self.exchanges.append([packet])
        elif self.exchanges:
            self.exchanges[-1].append(packet)

    def auth_server(self):
        """The server's packets after the greeting in the connection phase."""
        return [p for p in self.login[1:] if p.tag == b"S"]

    def _authenticated(self):
        return any(p.payload[:1] in (b"\x00", b"\xff") for p in self.auth_server())

    def _greeting_caps(self, p):
        try:
            pos = p.index(b"\0", 1) + 1 + 4 + 9
            lo = struct.unpack_from("<H", p, pos)[0]
            hi = struct.unpack_from("<H", p, pos + 5)[0]
            self.server_caps = lo | hi << 16
            if not self.server_caps & CLIENT_LONG_PASSWORD:
                self.server_caps |= struct.unpack_from("<I", p, pos + 14)[0] << 32
        except (ValueError, struct.error):
            pass

    def caps(self):
        """The capabilities in effect: what the client asked for and the server offers."""
        caps = self.client_caps & self.server_caps
        if self.client_caps & CLIENT_LONG_PASSWORD:
            caps &= 0xFFFFFFFF  # no MariaDB extended capabilities
        return caps


def consecutive_runs(packets):
    """packets split where a sequence id does not follow the one before."""
    runs = []
    for p in packets:
        if runs and p.seq == (runs[-1][-1].seq + 1) & 0xFF:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def packet_run_seed(packets):
    """Packets with consecutive sequence ids, as the mysql_packet target can read them.

    The target takes the buffer's first byte as the first sequence id and then parses the
    whole buffer from offset 0, so the first byte is both the low byte of the first packet's
    length and the sequence id it must carry. When the recorded run does not already start
    that way, a filler packet goes in front: sequence id p = first id - 1 and length p (its
    first byte), so the recorded packets follow in sequence."""
    data = b"".join(p.raw for p in packets)
    if not data:
        return data
    first_seq = data[3]
    if data[0] == first_seq:
        return data
    p = (first_seq - 1) & 0xFF
    return bytes([p, 0, 0, p]) + bytes(p) + data


def my_kind(payload):
    """A packet's part in a response shape."""
    if not payload:
        return "empty"
    return "%02x" % payload[0] if payload[0] in (0x00, 0xFB, 0xFE, 0xFF) else "data"


def split_mysql_connection(conn, seeds, sql_texts, index):
    """Adds one MySQL connection's seeds: greeting, HandshakeResponse41 and AuthSwitchRequest
    payloads (mysql_handshake); capabilities + each command payload (mysql_command); command
    code, cut, capabilities + each response (mysql_response_reader); packet runs of the login
    and of each exchange (mysql_packet); and collects the SQL of COM_QUERY/COM_STMT_PREPARE."""
    if conn.greeting is None:
        return
    seeds.add("mysql_handshake", "greeting", conn.greeting.payload)
    if conn.response is not None:
        seeds.add("mysql_handshake", "response-%x" % conn.client_caps, conn.response.payload)
    for p in conn.auth_server():
        if p.payload[:1] == b"\xfe" and len(p.payload) > 1:
            plugin = p.payload[1:].partition(b"\0")[0].decode(errors="replace")
            seeds.add("mysql_handshake", "switch-" + plugin, p.payload)
    login = "login-" + "-".join(my_kind(p.payload) for p in conn.auth_server())
    add_packet_runs(seeds, (login,), conn.login)

    caps = conn.caps()
    caps4 = struct.pack("<I", caps & 0xFFFFFFFF)
    caps16 = struct.pack("<H", (caps >> 8) & 0xFFFF)
    for i, exchange in enumerate(conn.exchanges):
        command = exchange[0].payload
        if not command:
            continue
        code = command[0]
        if code in (COM_QUERY, COM_STMT_PREPARE):
            sql_texts.append(command[1:])
        seeds.add("mysql_command", ("%02x" % code, caps & 0xFFFFFFFF), caps4 + command, per_key=12)
        server = [p for p in exchange if p.tag == b"S"]
        if code == COM_CHANGE_USER and server and server[0].payload[:1] == b"\xfe":
            seeds.add("mysql_handshake", "change-user-switch", server[0].payload)
        shape = run_shape(my_kind(p.payload) for p in server)
        add_packet_runs(seeds, ("%02x" % code,) + shape, exchange)
        if server:
            response = b"".join(p.raw for p in server)
            # Where the first arrival ends: after the first packet, half-way, or at 255.
            cut = [len(server[0].raw), len(response) // 2, 255][(index + i) % 3]
            seeds.add(
                "mysql_response_reader",
                ("%02x" % code, caps16, shape),
                bytes([code, min(cut, 255)]) + caps16 + response,
                per_key=2,
            )


def add_packet_runs(seeds, key, packets):
    """mysql_packet seeds from one exchange: both directions in the order they went (their
    sequence ids follow on), and each direction's runs of consecutive sequence ids."""
    seeds.add("mysql_packet", ("both",) + key, packet_run_seed(packets), per_key=2)
    for tag in (b"C", b"S"):
        for run in consecutive_runs([p for p in packets if p.tag == tag]):
            seeds.add("mysql_packet", (tag.decode(),) + key, packet_run_seed(run), per_key=2)


def handmade_mysql(seeds, caps):
    """An SSLRequest, which no recorded client sent (the servers have no TLS)."""
    ssl = struct.pack("<IIB", (caps | CLIENT_SSL) & 0xFFFFFFFF, 1 << 24, 45) + bytes(23)
    seeds.add("mysql_handshake", "ssl-request", ssl)


def write_seeds(seeds, root):
    """Replaces root/<target>/ with the selected seeds, named by SHA-1 like libFuzzer's."""
    summary = []
    for target in TARGETS:
        chosen = seeds.select(target)
        out = root / target
        out.mkdir(parents=True, exist_ok=True)
        for old in out.iterdir():
            if old.is_file():
                old.unlink()
        for data in chosen:
            (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
        summary.append((target, len(chosen), sum(map(len, chosen))))
    return summary


def cmd_split(args):
    seeds = Seeds()
    sql_texts = []
    pg_files = sorted(Path(args.pg).glob("conn-*.rec"))
    my_files = sorted(Path(args.mysql).glob("conn-*.rec"))
    if not pg_files or not my_files:
        print("record_traffic: no recordings to split", file=sys.stderr)
        return 1
    for path in pg_files:
        split_pg_connection(read_recording(path), seeds, sql_texts)
    for data in HANDMADE_PG_STARTUP:
        seeds.add("pg_startup", "handmade-%s" % data[:8].hex(), data)
    last_caps = 0
    for index, path in enumerate(my_files):
        conn = MyConnection(read_recording(path))
        split_mysql_connection(conn, seeds, sql_texts, index)
        last_caps = conn.client_caps or last_caps
    handmade_mysql(seeds, last_caps)
    for i, sql in enumerate(HANDMADE_SQL):
        seeds.add("sql_lexers", "handmade-%d" % i, sql)
    for sql in sql_texts:
        first = sql.lstrip().split(None, 1)[0].lower() if sql.strip() else b""
        seeds.add("sql_lexers", ("recorded", first), sql, per_key=8)

    summary = write_seeds(seeds, Path(args.seeds))
    print("%-24s %6s %10s" % ("target", "files", "bytes"))
    for target, files, size in summary:
        print("%-24s %6d %10d" % (target, files, size))
    empty = [t for t, files, _ in summary if files == 0]
    if empty:
        print("record_traffic: no seeds for " + ", ".join(empty), file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("relay", help="record connections to a server")
    p.add_argument("--target", required=True, help="HOST:PORT of the real server")
    p.add_argument("--out", required=True, help="directory for conn-NNNNNN.rec files")
    p.add_argument("--port-file", required=True, help="where to write the listening port")
    p.set_defaults(run=cmd_relay)
    p = sub.add_parser("mysql-client", help="send binary-protocol traffic")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", default="")
    p.add_argument("--db", required=True)
    p.add_argument("--mode", choices=["classic", "modern"], required=True)
    p.set_defaults(run=cmd_mysql_client)
    p = sub.add_parser("pg-client", help="send extended-protocol traffic (trust login)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--db", required=True)
    p.set_defaults(run=cmd_pg_client)
    p = sub.add_parser("split", help="write seed files from recordings")
    p.add_argument("--pg", required=True, help="PostgreSQL recordings")
    p.add_argument("--mysql", required=True, help="MySQL recordings")
    p.add_argument("--seeds", required=True, help="fuzz/seeds")
    p.set_defaults(run=cmd_split)
    args = parser.parse_args()
    try:
        return args.run(args)
    except (MyError, PgError, OSError) as e:
        print(f"record_traffic: {args.cmd}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
