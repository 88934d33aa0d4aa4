package dev.muxql.drivers.pgjdbc;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.postgresql.PGConnection;
import org.postgresql.PGStatement;
import org.postgresql.copy.CopyManager;

import com.zaxxer.hikari.HikariDataSource;

/** pgjdbc features, each case run against PostgreSQL directly and through muxql. */
@Timeout(value = 90, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
@ExtendWith(NameTargetOnFailure.class)
class DriverTest {
    static final String TARGETS = "dev.muxql.drivers.pgjdbc.Target#all";

    /** A PreparedStatement run past prepareThreshold (default 5) switches to a server-prepared statement. */
    @ParameterizedTest(name = "{0}")
    @MethodSource(TARGETS)
    void serverPreparedAfterThreshold(Target t) throws Exception {
        String table = t.table("prep");
        t.createTable(table, "id int4 PRIMARY KEY, v text NOT NULL");
        try (Connection c = t.connect();
                PreparedStatement sel = c.prepareStatement("SELECT ?::int4 * 2, ?::text || '!', ?::float8");
                PreparedStatement ins = c.prepareStatement("INSERT INTO " + table + " (id, v) VALUES (?, ?)");
                PreparedStatement get = c.prepareStatement("SELECT v FROM " + table + " WHERE id = ?")) {
            PGStatement pgSel = sel.unwrap(PGStatement.class);
            assertEquals(5, pgSel.getPrepareThreshold(), t.tag() + "default prepareThreshold");
            for (int i = 0; i < 12; i++) {
                // pgjdbc counts executions and uses a named server statement from the 5th on.
                assertEquals(i + 1 >= 5, pgSel.isUseServerPrepare(), t.tag() + "isUseServerPrepare before execution " + (i + 1));
                sel.setInt(1, i);
                sel.setString(2, "s" + i);
                sel.setDouble(3, i + 0.25);
                try (ResultSet rs = sel.executeQuery()) {
                    assertTrue(rs.next(), t.tag() + "execution " + i + ": no row");
                    assertEquals(2 * i, rs.getInt(1), t.tag() + "execution " + i);
                    assertEquals("s" + i + "!", rs.getString(2), t.tag() + "execution " + i);
                    assertEquals(i + 0.25, rs.getDouble(3), t.tag() + "execution " + i);
                    assertFalse(rs.next(), t.tag() + "execution " + i + ": extra row");
                }

                ins.setInt(1, i);
                ins.setString(2, "v" + i);
                assertEquals(1, ins.executeUpdate(), t.tag() + "insert " + i);
                get.setInt(1, i);
                try (ResultSet rs = get.executeQuery()) {
                    assertTrue(rs.next(), t.tag() + "select " + i + ": no row");
                    assertEquals("v" + i, rs.getString(1), t.tag() + "select " + i);
                }
            }
        } finally {
            t.dropTable(table);
        }
    }

    /** addBatch/executeBatch, with and without reWriteBatchedInserts, and a Statement batch. */
    @ParameterizedTest(name = "{0}")
    @MethodSource(TARGETS)
    void batches(Target t) throws Exception {
        String table = t.table("batch");
        t.createTable(table, "id int4 PRIMARY KEY, v text NOT NULL");
        try {
            int base = 0;
            for (String rewrite : new String[] {"false", "true"}) {
                try (Connection c = t.connect("reWriteBatchedInserts", rewrite);
                        PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (id, v) VALUES (?, ?)")) {
                    final int n = 500;
                    for (int i = 0; i < n; i++) {
                        ps.setInt(1, base + i);
                        ps.setString(2, "b" + (base + i));
                        ps.addBatch();
                    }
                    int[] counts = ps.executeBatch();
                    assertEquals(n, counts.length, t.tag() + "rewrite=" + rewrite + ": batch result count");
                    for (int i = 0; i < n; i++) {
                        // A rewritten multi-row insert reports SUCCESS_NO_INFO for its rows.
                        int want = "true".equals(rewrite) ? Statement.SUCCESS_NO_INFO : 1;
                        assertEquals(want, counts[i], t.tag() + "rewrite=" + rewrite + ": update count " + i);
                    }
                    base += n;
                }
            }
            try (Connection c = t.connect(); Statement st = c.createStatement()) {
                st.addBatch("UPDATE " + table + " SET v = v || '+' WHERE id < 10");
                st.addBatch("DELETE FROM " + table + " WHERE id >= 990");
                st.addBatch("INSERT INTO " + table + " (id, v) VALUES (5000, 'x'), (5001, 'y')");
                assertArrayEquals(new int[] {10, 10, 2}, st.executeBatch(), t.tag() + "statement batch counts");
                try (ResultSet rs = st.executeQuery("SELECT count(*), sum(id), count(*) FILTER (WHERE v LIKE '%+') FROM " + table)) {
                    assertTrue(rs.next());
                    assertEquals(992, rs.getLong(1), t.tag() + "row count");
                    assertEquals(989L * 990 / 2 + 10001, rs.getLong(2), t.tag() + "id sum");
                    assertEquals(10, rs.getLong(3), t.tag() + "updated rows");
                }
                // A failing batch reports the failure and leaves the connection usable.
                st.addBatch("INSERT INTO " + table + " (id, v) VALUES (6000, 'ok')");
                st.addBatch("INSERT INTO " + table + " (id, v) VALUES (5000, 'duplicate')");
                try {
                    st.executeBatch();
                    fail(t.tag() + "duplicate key batch did not fail");
                } catch (SQLException e) {
                    assertEquals("23505", rootSqlState(e), t.tag() + "duplicate key batch: " + e);
                }
                try (ResultSet rs = st.executeQuery("SELECT 1")) {
                    assertTrue(rs.next(), t.tag() + "connection after failed batch");
                }
            }
        } finally {
            t.dropTable(table);
        }
    }

    /** CopyManager copy in from CSV and copy out, compared line by line. */
    @ParameterizedTest(name = "{0}")
    @MethodSource(TARGETS)
    void copyInAndOut(Target t) throws Exception {
        String table = t.table("copy");
        t.createTable(table, "id int4 PRIMARY KEY, name text, amount numeric(12,2)");
        try (Connection c = t.connect()) {
            CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
            StringBuilder csv = new StringBuilder();
            final int n = 2000;
            for (int i = 0; i < n; i++) {
                String name = i % 7 == 0 ? "" : "\"name, " + i + "\"";
                csv.append(i).append(',').append(name).append(',').append(i).append(".50\n");
            }
            long in = cm.copyIn("COPY " + table + " (id, name, amount) FROM STDIN (FORMAT csv)", new StringReader(csv.toString()));
            assertEquals(n, in, t.tag() + "rows copied in");

            StringWriter out = new StringWriter();
            long outRows = cm.copyOut("COPY (SELECT id, name, amount FROM " + table + " ORDER BY id) TO STDOUT (FORMAT csv)", out);
            assertEquals(n, outRows, t.tag() + "rows copied out");
            assertEquals(csv.toString(), out.toString(), t.tag() + "copied out text");

            // A failing copy in reports the error and the connection stays usable.
            try {
                cm.copyIn("COPY " + table + " (id, name, amount) FROM STDIN (FORMAT csv)", new StringReader("1,dup,1.00\n"));
                fail(t.tag() + "duplicate copy in did not fail");
            } catch (SQLException e) {
                assertEquals("23505", e.getSQLState(), t.tag() + "duplicate copy in: " + e);
            }
            try (Statement st = c.createStatement();
                    ResultSet rs = st.executeQuery("SELECT count(*), sum(amount) FROM " + table)) {
                assertTrue(rs.next());
                assertEquals(n, rs.getLong(1), t.tag() + "count after copy");
                BigDecimal want = BigDecimal.valueOf((long) n * (n - 1) / 2).add(new BigDecimal("0.50").multiply(BigDecimal.valueOf(n)));
                assertEquals(want, rs.getBigDecimal(2), t.tag() + "sum after copy");
            }
        } finally {
            t.dropTable(table);
        }
    }

    /** Statement.cancel of a pg_sleep: 57014 quickly, and the connection stays usable. */
    @ParameterizedTest(name = "{0}")
    @MethodSource(TARGETS)
    void statementCancel(Target t) throws Exception {
        ExecutorService ex = Executors.newSingleThreadExecutor();
        try (Connection c = t.connect()) {
            for (int round = 0; round < 3; round++) {
                Statement st = c.createStatement();
                CountDownLatch started = new CountDownLatch(1);
                long start = System.nanoTime();
                Future<?> f = ex.submit(() -> {
                    started.countDown();
                    return st.execute("SELECT pg_sleep(20)");
                });
                started.await();
                Thread.sleep(300);
                st.cancel();
                try {
                    f.get(10, TimeUnit.SECONDS);
                    fail(t.tag() + "round " + round + ": pg_sleep(20) was not cancelled");
                } catch (ExecutionException e) {
                    SQLException se = (SQLException) e.getCause();
                    assertEquals("57014", se.getSQLState(), t.tag() + "round " + round + ": " + se);
                }
                long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                assertTrue(ms < 5000, t.tag() + "round " + round + ": cancel took " + ms + " ms");
                st.close();
                try (PreparedStatement ps = c.prepareStatement("SELECT ?::int4 + 1")) {
                    for (int i = 0; i < 3; i++) {
                        ps.setInt(1, i);
                        try (ResultSet rs = ps.executeQuery()) {
                            assertTrue(rs.next(), t.tag() + "round " + round + ": query after cancel");
                            assertEquals(i + 1, rs.getInt(1), t.tag() + "round " + round + ": query after cancel");
                        }
                    }
                }
            }
        } finally {
            ex.shutdownNow();
        }
    }

    /**
     * setFetchSize inside a transaction: the results come in several fetches from a portal, two
     * such cursors interleave on one connection, and an error in a later fetch arrives after the
     * rows of the earlier ones.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource(TARGETS)
    void fetchSize(Target t) throws Exception {
        try (Connection c = t.connect()) {
            c.setAutoCommit(false);
            try (PreparedStatement a = c.prepareStatement("SELECT g, md5(g::text) FROM generate_series(1, ?) g");
                    PreparedStatement b = c.prepareStatement("SELECT g * 10 FROM generate_series(1, ?) g")) {
                a.setFetchSize(50);
                a.setInt(1, 1000);
                b.setFetchSize(7);
                b.setInt(1, 300);
                try (ResultSet ra = a.executeQuery(); ResultSet rb = b.executeQuery()) {
                    int na = 0;
                    int nb = 0;
                    boolean moreA = true;
                    boolean moreB = true;
                    while (moreA || moreB) {
                        for (int k = 0; k < 3 && moreA; k++) {
                            moreA = ra.next();
                            if (moreA) {
                                na++;
                                assertEquals(na, ra.getInt(1), t.tag() + "cursor a row " + na);
                                assertEquals(32, ra.getString(2).length(), t.tag() + "cursor a row " + na);
                            }
                        }
                        if (moreB) {
                            moreB = rb.next();
                            if (moreB) {
                                nb++;
                                assertEquals(nb * 10, rb.getInt(1), t.tag() + "cursor b row " + nb);
                            }
                        }
                    }
                    assertEquals(1000, na, t.tag() + "cursor a rows");
                    assertEquals(300, nb, t.tag() + "cursor b rows");
                }
            }
            c.commit();

            // Proof that rows really come in fetches: with 50 rows a fetch, a division by zero at
            // row 500 lets the first 450 rows through and fails the fetch of rows 451-500.
            try (Statement st = c.createStatement()) {
                st.setFetchSize(50);
                int rows = 0;
                try (ResultSet rs = st.executeQuery("SELECT g, 1 / (500 - g) FROM generate_series(1, 1000) g")) {
                    while (rs.next()) {
                        rows++;
                    }
                    fail(t.tag() + "division by zero at row 500 did not fail; read " + rows + " rows");
                } catch (SQLException e) {
                    assertEquals("22012", e.getSQLState(), t.tag() + "fetch failing at row 500: " + e);
                }
                assertEquals(450, rows, t.tag() + "rows read before the failing fetch");
            }
            c.rollback();

            // With autocommit on, a fetch size has no effect and everything comes at once.
            c.setAutoCommit(true);
            try (Statement st = c.createStatement()) {
                st.setFetchSize(10);
                try (ResultSet rs = st.executeQuery("SELECT count(*) FROM generate_series(1, 500)")) {
                    assertTrue(rs.next());
                    assertEquals(500, rs.getInt(1), t.tag() + "count with autocommit");
                }
            }
        }
    }

    /** 50 threads over a HikariCP pool of 50 (through muxql: its pool of 4), each checking its own answers. */
    @ParameterizedTest(name = "{0}")
    @MethodSource(TARGETS)
    void hikariPool50Threads(Target t) throws Exception {
        String table = t.table("hikari");
        t.createTable(table, "id int4 PRIMARY KEY, owner int4 NOT NULL, v text NOT NULL");
        final int threads = 50;
        final int iters = 20;
        Map<String, AtomicInteger> errors = new ConcurrentHashMap<>();
        AtomicInteger done = new AtomicInteger();
        ExecutorService ex = Executors.newFixedThreadPool(threads);
        try (HikariDataSource ds = t.pool(threads)) {
            List<Future<?>> fs = new ArrayList<>();
            for (int th = 0; th < threads; th++) {
                final int owner = th;
                fs.add(ex.submit(() -> {
                    for (int i = 0; i < iters; i++) {
                        try {
                            hikariIteration(ds, table, owner, i);
                            done.incrementAndGet();
                        } catch (Exception | AssertionError e) {
                            errors.computeIfAbsent(String.valueOf(e), k -> new AtomicInteger()).incrementAndGet();
                        }
                    }
                }));
            }
            for (Future<?> f : fs) {
                f.get(80, TimeUnit.SECONDS);
            }
            System.out.printf("%shikari: %d threads x %d iterations, %d ok, errors %s%n", t.tag(), threads, iters, done.get(), errors);
            assertTrue(errors.isEmpty(), t.tag() + (threads * iters - done.get()) + " of " + threads * iters + " iterations failed: " + errors);
            try (Connection c = ds.getConnection();
                    Statement st = c.createStatement();
                    ResultSet rs = st.executeQuery("SELECT count(*), count(DISTINCT owner) FROM " + table)) {
                assertTrue(rs.next());
                assertEquals(threads * iters, rs.getInt(1), t.tag() + "rows");
                assertEquals(threads, rs.getInt(2), t.tag() + "owners");
            }
        } finally {
            ex.shutdownNow();
            t.dropTable(table);
        }
    }

    private static void hikariIteration(HikariDataSource ds, String table, int owner, int i) throws SQLException {
        int id = owner * 1000 + i;
        try (Connection c = ds.getConnection()) {
            try (PreparedStatement ps = c.prepareStatement("SELECT ?::int4, md5(?::text)")) {
                ps.setInt(1, id);
                ps.setString(2, "k" + id);
                try (ResultSet rs = ps.executeQuery()) {
                    if (!rs.next() || rs.getInt(1) != id || !rs.getString(2).equals(md5Hex("k" + id))) {
                        throw new AssertionError("thread " + owner + " got someone else's answer");
                    }
                }
            }
            c.setAutoCommit(false);
            try {
                try (PreparedStatement ins = c.prepareStatement("INSERT INTO " + table + " (id, owner, v) VALUES (?, ?, ?)")) {
                    ins.setInt(1, id);
                    ins.setInt(2, owner);
                    ins.setString(3, "t" + owner + "-" + i);
                    ins.executeUpdate();
                }
                try (PreparedStatement sel = c.prepareStatement("SELECT count(*) OVER (), v FROM " + table + " WHERE owner = ? AND id = ?")) {
                    sel.setInt(1, owner);
                    sel.setInt(2, id);
                    try (ResultSet rs = sel.executeQuery()) {
                        if (!rs.next() || rs.getInt(1) != 1 || !rs.getString(2).equals("t" + owner + "-" + i)) {
                            throw new AssertionError("thread " + owner + ": wrong row in its transaction");
                        }
                    }
                }
                c.commit();
            } catch (SQLException | RuntimeException e) {
                c.rollback();
                throw e;
            } finally {
                c.setAutoCommit(true);
            }
        }
    }

    static String md5Hex(String s) {
        try {
            byte[] d = MessageDigest.getInstance("MD5").digest(s.getBytes(StandardCharsets.UTF_8));
            StringBuilder sb = new StringBuilder();
            for (byte b : d) {
                sb.append(String.format("%02x", b));
            }
            return sb.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The SQLSTATE of the innermost SQLException in a chain (BatchUpdateException wraps the cause). */
    static String rootSqlState(SQLException e) {
        SQLException cur = e;
        String state = e.getSQLState();
        while (cur.getNextException() != null) {
            cur = cur.getNextException();
            if (cur.getSQLState() != null) {
                state = cur.getSQLState();
            }
        }
        return state;
    }
}
