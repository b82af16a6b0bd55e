import java.sql.*;
import java.util.*;

// Checks hasvc through pgjdbc: prepared statements (server-prepared after
// the threshold), setFetchSize with a portal, types, a transaction, error
// codes and DatabaseMetaData.getTables. Connection settings come from
// PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD. Exits 1 on the first
// failed check.
public class PgjdbcCheck {
    static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println("FAIL: " + what);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT") + "/" + System.getenv("PGDATABASE") + "?sslmode=disable&prepareThreshold=2";
        Properties props = new Properties();
        props.setProperty("user", System.getenv("PGUSER"));
        props.setProperty("password", System.getenv("PGPASSWORD"));
        try (Connection c = DriverManager.getConnection(url, props)) {
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE jt (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION, raw BYTEA, ok BOOLEAN)");
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO jt (id, name, score, raw, ok) VALUES (?, ?, ?, ?, ?)")) {
                for (int i = 1; i <= 50; i++) {
                    ps.setLong(1, i);
                    ps.setString(2, "n" + i);
                    ps.setDouble(3, i + 0.5);
                    ps.setBytes(4, new byte[] {0, (byte) i});
                    ps.setBoolean(5, i % 2 == 0);
                    check(ps.executeUpdate() == 1, "insert count");
                }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT id, name, score, raw, ok FROM jt WHERE id = ?")) {
                for (int i = 1; i <= 5; i++) {
                    ps.setLong(1, 7);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), "row 7");
                        check(rs.getLong(1) == 7, "id");
                        check(rs.getString(2).equals("n7"), "name");
                        check(rs.getDouble(3) == 7.5, "score");
                        check(Arrays.equals(rs.getBytes(4), new byte[] {0, 7}), "raw");
                        check(!rs.getBoolean(5), "ok");
                        ResultSetMetaData md = rs.getMetaData();
                        check(md.getColumnType(1) == Types.BIGINT, "id type " + md.getColumnTypeName(1));
                        check(md.getColumnType(2) == Types.VARCHAR, "name type " + md.getColumnTypeName(2));
                        check(md.getColumnType(3) == Types.DOUBLE, "score type " + md.getColumnTypeName(3));
                        check(md.getColumnType(4) == Types.BINARY, "raw type " + md.getColumnTypeName(4));
                        check(md.getColumnType(5) == Types.BIT || md.getColumnType(5) == Types.BOOLEAN, "ok type " + md.getColumnTypeName(5));
                        check(!rs.next(), "one row");
                    }
                }
            }
            // A portal read in batches of 7 (needs autocommit off).
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("SELECT id FROM jt ORDER BY id")) {
                ps.setFetchSize(7);
                long sum = 0;
                int n = 0;
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        sum += rs.getLong(1);
                        n++;
                    }
                }
                check(n == 50 && sum == 1275, "fetch-size read: " + n + " rows, sum " + sum);
            }
            c.commit();
            // A transaction rolled back, then one committed.
            try (Statement s = c.createStatement()) {
                s.executeUpdate("DELETE FROM jt WHERE id > 40");
                c.rollback();
                s.executeUpdate("UPDATE jt SET score = 0 WHERE id = 1");
                c.commit();
            }
            c.setAutoCommit(true);
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*), count(*) FILTER (WHERE score = 0) FROM jt")) {
                check(rs.next() && rs.getLong(1) == 50 && rs.getLong(2) == 1, "after transactions");
            }
            // Errors carry SQLSTATEs.
            try (Statement s = c.createStatement()) {
                s.executeUpdate("INSERT INTO jt (id, name) VALUES (1, 'dup')");
                check(false, "duplicate accepted");
            } catch (SQLException e) {
                check("23505".equals(e.getSQLState()), "unique violation state " + e.getSQLState());
            }
            // DatabaseMetaData.getTables lists the table.
            boolean found = false;
            try (ResultSet rs = c.getMetaData().getTables(null, null, "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    if (rs.getString("TABLE_NAME").equals("jt")) {
                        found = "TABLE".equals(rs.getString("TABLE_TYPE"));
                    }
                }
            }
            check(found, "getTables lists jt");
            String version = c.getMetaData().getDatabaseProductVersion();
            check(version.startsWith("15"), "product version " + version);
        }
        System.out.println("pgjdbc ok");
    }
}
