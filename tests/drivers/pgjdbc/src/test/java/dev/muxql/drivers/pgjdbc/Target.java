package dev.muxql.drivers.pgjdbc;

import java.net.URI;
import java.net.URISyntaxException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ThreadLocalRandom;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

/**
 * One PostgreSQL endpoint the suite runs against: "direct" or "muxql", from the postgres:// URL
 * in MUXQL_TEST_PG_DIRECT_URL or MUXQL_TEST_PG_MUXQL_URL, converted to a pgjdbc URL.
 */
public final class Target {
    /** Keeps the table names of concurrent or repeated runs apart. */
    static final int RUN_ID = ThreadLocalRandom.current().nextInt(1_000_000);

    final String name;
    final String jdbcUrl;
    private final Properties props;

    private Target(String name, String jdbcUrl, Properties props) {
        this.name = name;
        this.jdbcUrl = jdbcUrl;
        this.props = props;
    }

    /** Both targets; a missing variable fails every case instead of silently testing half. */
    public static List<Target> all() {
        return List.of(fromEnv("direct", "MUXQL_TEST_PG_DIRECT_URL"), fromEnv("muxql", "MUXQL_TEST_PG_MUXQL_URL"));
    }

    static Target fromEnv(String name, String env) {
        String url = System.getenv(env);
        if (url == null || url.isEmpty()) {
            throw new IllegalStateException(env + " is not set (a postgres:// URL); see tests/drivers/README.md");
        }
        try {
            return parse(name, url);
        } catch (URISyntaxException | IllegalArgumentException e) {
            throw new IllegalStateException(env + ": not a postgres:// URL: " + e.getMessage(), e);
        }
    }

    /** postgres://user:pass@host:port/db?key=value&... to jdbc:postgresql://host:port/db?key=value&... */
    static Target parse(String name, String url) throws URISyntaxException {
        URI uri = new URI(url);
        if (!"postgres".equals(uri.getScheme()) && !"postgresql".equals(uri.getScheme())) {
            throw new IllegalArgumentException("scheme must be postgres or postgresql: " + url);
        }
        Properties props = new Properties();
        String userInfo = uri.getRawUserInfo();
        if (userInfo != null) {
            int colon = userInfo.indexOf(':');
            props.setProperty("user", decode(colon < 0 ? userInfo : userInfo.substring(0, colon)));
            if (colon >= 0) {
                props.setProperty("password", decode(userInfo.substring(colon + 1)));
            }
        }
        // A hang fails its case instead of the whole run.
        props.setProperty("connectTimeout", "10");
        props.setProperty("socketTimeout", "60");
        String host = uri.getHost() == null ? "localhost" : uri.getHost();
        int port = uri.getPort() < 0 ? 5432 : uri.getPort();
        String db = uri.getRawPath() == null || uri.getRawPath().length() <= 1 ? "" : uri.getRawPath().substring(1);
        String jdbc = "jdbc:postgresql://" + host + ":" + port + "/" + db;
        if (uri.getRawQuery() != null) {
            jdbc += "?" + uri.getRawQuery();
        }
        return new Target(name, jdbc, props);
    }

    private static String decode(String s) {
        return URLDecoder.decode(s, StandardCharsets.UTF_8);
    }

    /** A new connection with the target's settings plus {@code extra} (pgjdbc properties). */
    Connection connect(String... extra) throws SQLException {
        return DriverManager.getConnection(jdbcUrl, properties(extra));
    }

    Properties properties(String... extra) {
        Properties p = new Properties();
        p.putAll(props);
        for (int i = 0; i + 1 < extra.length; i += 2) {
            p.setProperty(extra[i], extra[i + 1]);
        }
        return p;
    }

    /** A HikariCP pool of up to {@code size} connections. */
    HikariDataSource pool(int size, String... extra) {
        HikariConfig cfg = new HikariConfig();
        cfg.setJdbcUrl(jdbcUrl);
        cfg.setDataSourceProperties(properties(extra));
        cfg.setMaximumPoolSize(size);
        cfg.setMinimumIdle(0);
        cfg.setConnectionTimeout(30_000);
        cfg.setPoolName("drv-" + name);
        return new HikariDataSource(cfg);
    }

    /** A table name unique to this run, target and purpose. */
    String table(String purpose) {
        return "drv_jdbc_" + purpose + "_" + name + "_" + RUN_ID;
    }

    /** (Re)creates a table on a fresh connection. */
    void createTable(String table, String columns) throws SQLException {
        try (Connection c = connect(); Statement st = c.createStatement()) {
            st.execute("DROP TABLE IF EXISTS " + table);
            st.execute("CREATE TABLE " + table + " (" + columns + ")");
        }
    }

    /** Drops a table on a fresh connection, so that a broken test connection does not leak it. */
    void dropTable(String table) throws SQLException {
        try (Connection c = connect(); Statement st = c.createStatement()) {
            st.execute("DROP TABLE IF EXISTS " + table);
        }
    }

    /** Prefix of every assertion message: names the target. */
    String tag() {
        return "[" + name + "] ";
    }

    @Override
    public String toString() {
        return name;
    }
}
