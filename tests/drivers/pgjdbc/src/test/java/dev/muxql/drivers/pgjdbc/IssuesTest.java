package dev.muxql.drivers.pgjdbc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.postgresql.PGStatement;

import com.zaxxer.hikari.HikariDataSource;

/** Reproductions of multiplexer issues seen with pgjdbc; directly they all pass. */
@Timeout(value = 90, threadMode = Timeout.ThreadMode.SEPARATE_THREAD)
@ExtendWith(NameTargetOnFailure.class)
class IssuesTest {
    /**
     * DEALLOCATE ALL on a connection with server-prepared statements: pgjdbc notices the command
     * tag and prepares its statements again, so they keep working on that connection.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource(DriverTest.TARGETS)
    void deallocateAllSameConnection(Target t) throws Exception {
        try (Connection c = t.connect("prepareThreshold", "1");
                PreparedStatement a = c.prepareStatement("SELECT ?::int4 + 100");
                PreparedStatement b = c.prepareStatement("SELECT ?::text || '-b'")) {
            for (int round = 0; round < 3; round++) {
                for (int i = 0; i < 3; i++) {
                    String where = "round " + round + " execution " + i;
                    assertEquals(i + 100, queryInt(a, i), t.tag() + where + ": a");
                    assertEquals(i + "-b", queryText(b, String.valueOf(i)), t.tag() + where + ": b");
                }
                assertTrue(a.unwrap(PGStatement.class).isUseServerPrepare(), t.tag() + "a is not server-prepared");
                try (Statement st = c.createStatement()) {
                    st.execute("DEALLOCATE ALL");
                }
            }
            assertEquals(107, queryInt(a, 7), t.tag() + "a after the last DEALLOCATE ALL");
        }
    }

    /**
     * DEALLOCATE ALL on one connection must not touch the server-prepared statements of other
     * connections. The victims run concurrently so that, through a pooler, their statements are
     * prepared on several server connections, and the DEALLOCATE ALL comes between their runs.
     * They run inside transactions: in autocommit mode pgjdbc silently retries a statement that
     * failed with 26000 (prepared statement does not exist), which would hide the failure.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource(DriverTest.TARGETS)
    void deallocateAllOtherConnections(Target t) throws Exception {
        final int victims = 8;
        final int rounds = 4;
        final int perRound = 5;
        List<Connection> conns = new ArrayList<>();
        List<PreparedStatement> stmts = new ArrayList<>();
        ExecutorService ex = Executors.newFixedThreadPool(victims);
        try (Connection actor = t.connect()) {
            for (int v = 0; v < victims; v++) {
                Connection c = t.connect("prepareThreshold", "1");
                conns.add(c);
                stmts.add(c.prepareStatement("SELECT ?::int4 * " + (v + 2)));
            }
            List<String> failures = Collections.synchronizedList(new ArrayList<>());
            int executions = 0;
            for (int round = 0; round <= rounds; round++) {
                if (round > 0) {
                    try (Statement st = actor.createStatement()) {
                        st.execute("DEALLOCATE ALL");
                        st.execute("DEALLOCATE ALL");
                    }
                }
                final String when = round == 0 ? "before any DEALLOCATE ALL" : "after DEALLOCATE ALL number " + 2 * round;
                List<Future<?>> fs = new ArrayList<>();
                for (int v = 0; v < victims; v++) {
                    final int id = v;
                    final PreparedStatement ps = stmts.get(v);
                    final Connection c = conns.get(v);
                    fs.add(ex.submit(() -> {
                        c.setAutoCommit(false);
                        for (int i = 0; i < perRound; i++) {
                            try {
                                int got = queryInt(ps, i);
                                if (got != i * (id + 2)) {
                                    failures.add("victim " + id + " " + when + ": got " + got + ", want " + i * (id + 2));
                                }
                            } catch (SQLException e) {
                                failures.add("victim " + id + " " + when + ": " + e.getSQLState() + " " + e.getMessage());
                            }
                        }
                        try {
                            c.rollback();
                            c.setAutoCommit(true);
                        } catch (SQLException e) {
                            failures.add("victim " + id + " " + when + ": rollback: " + e.getSQLState() + " " + e.getMessage());
                        }
                        return null;
                    }));
                    executions += perRound;
                }
                boolean hung = false;
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                for (int v = 0; v < victims; v++) {
                    try {
                        fs.get(v).get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                    } catch (TimeoutException e) {
                        failures.add("victim " + v + " " + when + ": no answer within 10 s");
                        hung = true;
                    }
                }
                if (hung) {
                    break;
                }
            }
            for (int v = 0; v < victims; v++) {
                assertTrue(stmts.get(v).unwrap(PGStatement.class).isUseServerPrepare(), t.tag() + "victim " + v + " is not server-prepared");
            }
            // Failures grouped by what went wrong, without victim numbers and statement names.
            Map<String, Integer> kinds = new TreeMap<>();
            for (String f : failures) {
                kinds.merge(f.replaceAll("victim \\d+ ", "").replaceAll("muxql_\\d+", "muxql_N"), 1, Integer::sum);
            }
            System.out.printf("%sDEALLOCATE ALL by a neighbour: %d of %d victim executions failed %s%n", t.tag(), failures.size(), executions, kinds);
            assertTrue(failures.isEmpty(), t.tag() + failures.size() + " of " + executions
                    + " victim executions failed around another connection's DEALLOCATE ALL: " + kinds);
        } finally {
            ex.shutdownNow();
            for (Connection c : conns) {
                c.close();
            }
        }
    }

    /**
     * 100 Statement.cancel calls race the end of short pg_sleep queries (1-5 ms, cancelled after
     * 0-6 ms) while 8 neighbour threads on the same pool run short queries (SELECT 1 and a small
     * aggregate) back to back: no neighbour query may be cancelled.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource(DriverTest.TARGETS)
    void cancelNeverHitsNeighbour(Target t) throws Exception {
        final int cancels = 100;
        final int neighbours = 8;
        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger neighbourQueries = new AtomicInteger();
        AtomicInteger neighbourCancelled = new AtomicInteger();
        Map<String, AtomicInteger> neighbourErrors = new ConcurrentHashMap<>();
        ExecutorService ex = Executors.newFixedThreadPool(neighbours + 1);
        try (HikariDataSource ds = t.pool(neighbours + 2)) {
            List<Future<?>> fs = new ArrayList<>();
            for (int n = 0; n < neighbours; n++) {
                final int id = n;
                fs.add(ex.submit(() -> {
                    int i = 0;
                    while (!stop.get()) {
                        i++;
                        neighbourQueries.incrementAndGet();
                        try {
                            neighbourQuery(ds, id, i);
                        } catch (SQLException e) {
                            if ("57014".equals(e.getSQLState())) {
                                neighbourCancelled.incrementAndGet();
                            } else {
                                neighbourErrors.computeIfAbsent(e.getSQLState() + " " + e.getMessage(), k -> new AtomicInteger()).incrementAndGet();
                            }
                        } catch (AssertionError e) {
                            neighbourErrors.computeIfAbsent(e.getMessage(), k -> new AtomicInteger()).incrementAndGet();
                        }
                    }
                }));
            }

            int sleptOut = 0;
            int cancelled = 0;
            Map<String, AtomicInteger> cancellerErrors = new ConcurrentHashMap<>();
            try (Connection c = ds.getConnection()) {
                ThreadLocalRandom rnd = ThreadLocalRandom.current();
                for (int k = 0; k < cancels; k++) {
                    Statement st = c.createStatement();
                    String sql = "SELECT pg_sleep(0.00" + (1 + rnd.nextInt(5)) + ")";
                    Future<Boolean> f = ex.submit(() -> st.execute(sql));
                    LockSupport.parkNanos(rnd.nextLong(6_000_000));
                    st.cancel();
                    try {
                        f.get(10, TimeUnit.SECONDS);
                        sleptOut++;
                    } catch (ExecutionException e) {
                        if (e.getCause() instanceof SQLException se && "57014".equals(se.getSQLState())) {
                            cancelled++;
                        } else {
                            cancellerErrors.computeIfAbsent(String.valueOf(e.getCause()), x -> new AtomicInteger()).incrementAndGet();
                        }
                    }
                    st.close();
                }
            } finally {
                stop.set(true);
            }
            for (Future<?> f : fs) {
                f.get(30, TimeUnit.SECONDS);
            }
            System.out.printf("%scancel race: %d cancels (%d queries cancelled, %d finished first, other errors %s); "
                    + "neighbours: %d queries, %d cancelled (57014), other errors %s%n",
                    t.tag(), cancels, cancelled, sleptOut, cancellerErrors, neighbourQueries.get(), neighbourCancelled.get(), neighbourErrors);
            assertEquals(0, neighbourCancelled.get(), t.tag() + neighbourCancelled.get() + " of " + neighbourQueries.get()
                    + " neighbour queries were cancelled by another client's Statement.cancel");
            assertTrue(neighbourErrors.isEmpty(), t.tag() + "neighbour errors: " + neighbourErrors);
            assertTrue(cancellerErrors.isEmpty(), t.tag() + "canceller errors other than 57014: " + cancellerErrors);
            assertTrue(neighbourQueries.get() >= neighbours, t.tag() + "neighbours ran only " + neighbourQueries.get() + " queries");
        } finally {
            ex.shutdownNow();
        }
    }

    private static void neighbourQuery(HikariDataSource ds, int id, int i) throws SQLException {
        try (Connection c = ds.getConnection()) {
            if (i % 2 == 0) {
                try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
                    if (!rs.next() || rs.getInt(1) != 1) {
                        throw new AssertionError("neighbour " + id + ": SELECT 1 gave a wrong answer");
                    }
                }
            } else {
                // An aggregate of a few milliseconds: long enough for a stray cancel to land in it.
                int want = id * 1_000_000 + i;
                try (PreparedStatement ps = c.prepareStatement("SELECT ?::int4, count(*) FROM generate_series(1, 20000)")) {
                    ps.setInt(1, want);
                    try (ResultSet rs = ps.executeQuery()) {
                        if (!rs.next() || rs.getInt(1) != want || rs.getInt(2) != 20000) {
                            throw new AssertionError("neighbour " + id + ": wrong answer to its small select");
                        }
                    }
                }
            }
        }
    }

    static int queryInt(PreparedStatement ps, int arg) throws SQLException {
        ps.setInt(1, arg);
        try (ResultSet rs = ps.executeQuery()) {
            if (!rs.next()) {
                throw new AssertionError("no row");
            }
            return rs.getInt(1);
        }
    }

    static String queryText(PreparedStatement ps, String arg) throws SQLException {
        ps.setString(1, arg);
        try (ResultSet rs = ps.executeQuery()) {
            if (!rs.next()) {
                throw new AssertionError("no row");
            }
            return rs.getString(1);
        }
    }
}
