// A fixed JDBC workload for the MySQL end-to-end tests (MariaDB Connector/J,
// /usr/share/java/mariadb-java-client.jar), run once straight against MariaDB
// and once through danxia; the tests compare the two outputs line by line.
//
//   java -cp DIR:mariadb-java-client.jar JdbcScript script  URL TABLE
//   java -cp DIR:mariadb-java-client.jar JdbcScript prepare URL SQL
//
// `script` drops and creates TABLE, then: PreparedStatement inserts with
// parameters of many types (strings with quotes, backslashes, CJK and emoji,
// integers, decimals, doubles, dates, timestamps, booleans, NULLs of each
// type, a BLOB of all 256 byte values), a batch of 50 inserts, a 1 MiB
// setBinaryStream and a setCharacterStream (COM_STMT_SEND_LONG_DATA with
// useServerPrepStmts=true), prepared SELECTs re-executed with other
// parameters, a transaction rolled back and one committed, a duplicate key
// and a syntax error, Connection.isValid (COM_PING), setCatalog
// (COM_INIT_DB), the session's Com_stmt_* counters, and drops TABLE.
//
// `prepare` prepares and executes SQL (expected to be refused at prepare
// time by a policy), prints what happened, then shows that the connection
// still works.
//
// Output is deterministic: no times, ids of the connection, or addresses.
// Every line starts with a short tag; values are rendered explicitly (bytes
// as hex, long values as length + SHA-256).

import java.io.ByteArrayInputStream;
import java.io.PrintStream;
import java.io.StringReader;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;

public class JdbcScript {
    static PrintStream out;

    public static void main(String[] args) throws Exception {
        out = new PrintStream(System.out, true, "UTF-8");
        if (args.length != 3) {
            System.err.println("usage: JdbcScript script URL TABLE | JdbcScript prepare URL SQL");
            System.exit(2);
        }
        try (Connection c = DriverManager.getConnection(args[1])) {
            if (args[0].equals("script")) {
                script(c, args[2]);
            } else if (args[0].equals("prepare")) {
                prepareOnly(c, args[2]);
            } else {
                System.err.println("unknown mode " + args[0]);
                System.exit(2);
            }
        }
        out.println("done");
    }

    static String hex(byte[] b) {
        StringBuilder s = new StringBuilder();
        for (byte x : b) {
            s.append(String.format("%02x", x & 0xff));
        }
        return s.toString();
    }

    static String sha256(byte[] b) throws Exception {
        return hex(MessageDigest.getInstance("SHA-256").digest(b));
    }

    /** A value as one deterministic token. */
    static String render(Object v) throws Exception {
        if (v == null) {
            return "NULL";
        }
        if (v instanceof byte[]) {
            byte[] b = (byte[]) v;
            return b.length > 64 ? "bytes(" + b.length + "," + sha256(b) + ")" : "x'" + hex(b) + "'";
        }
        if (v instanceof BigDecimal) {
            return "dec(" + ((BigDecimal) v).toPlainString() + ")";
        }
        String s = v.toString();
        if (s.length() > 200) {
            return "str(" + s.length() + "," + sha256(s.getBytes(StandardCharsets.UTF_8)) + ")";
        }
        return v.getClass().getSimpleName() + "(" + s.replace("\\", "\\\\").replace("\n", "\\n") + ")";
    }

    static void printResult(String tag, ResultSet rs) throws Exception {
        ResultSetMetaData md = rs.getMetaData();
        StringBuilder h = new StringBuilder(tag + " columns:");
        for (int i = 1; i <= md.getColumnCount(); i++) {
            h.append(' ').append(md.getColumnLabel(i)).append(':').append(md.getColumnTypeName(i))
                    .append('/').append(md.getColumnType(i))
                    .append('/').append(md.getPrecision(i)).append(',').append(md.getScale(i))
                    .append(md.isNullable(i) == ResultSetMetaData.columnNoNulls ? "" : "?");
        }
        out.println(h);
        int n = 0;
        while (rs.next()) {
            StringBuilder r = new StringBuilder(tag + " row:");
            for (int i = 1; i <= md.getColumnCount(); i++) {
                r.append(' ').append(render(rs.getObject(i)));
            }
            out.println(r);
            n++;
        }
        out.println(tag + " rows: " + n);
    }

    static void printError(String tag, SQLException e) {
        // Connector/J prefixes messages with "(conn=ID) ", the server's
        // connection id: it differs between any two runs.
        String msg = e.getMessage().replaceAll("\\(conn=\\d+\\) ", "");
        out.println(tag + " error: " + e.getErrorCode() + " " + e.getSQLState() + " " + msg);
    }

    static void exec(Connection c, String sql) throws Exception {
        try (Statement s = c.createStatement()) {
            boolean rs = s.execute(sql);
            if (rs) {
                printResult("exec", s.getResultSet());
            } else {
                out.println("exec: " + sql.split(" ")[0] + " count=" + s.getUpdateCount());
            }
        }
    }

    static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        int x = seed;
        for (int i = 0; i < n; i++) {
            x = x * 1103515245 + 12345;
            b[i] = (byte) (x >>> 16);
        }
        return b;
    }

    static void script(Connection c, String t) throws Exception {
        exec(c, "drop table if exists " + t);
        exec(c, "create table " + t + " (id int primary key auto_increment, name varchar(100), qty int,"
                + " price decimal(12,3), ratio double, born date, seen datetime(3), flag boolean,"
                + " data mediumblob, note mediumtext) default charset=utf8mb4");

        byte[] all = new byte[256];
        for (int i = 0; i < 256; i++) {
            all[i] = (byte) i;
        }
        String ins = "insert into " + t + " (name, qty, price, ratio, born, seen, flag, data, note)"
                + " values (?, ?, ?, ?, ?, ?, ?, ?, ?)";
        try (PreparedStatement p = c.prepareStatement(ins, Statement.RETURN_GENERATED_KEYS)) {
            Object[][] rows = {
                {"alice", 42, new BigDecimal("12345.678"), 0.5, "1990-02-28", "2024-02-29 23:59:58.125", true, all, "first"},
                {"bob", null, null, null, null, null, null, null, null},
                {"数据库防火墙 🔥", -2147483648, new BigDecimal("-0.001"), -1.0e300, "2000-01-01", "1970-01-01 08:00:01.000", false, new byte[0], "中文 ümlaut 𝄞"},
                {"O'Brien \\ \"q\" ; --", 2147483647, new BigDecimal("0"), 3.14159, "2038-01-19", "2038-01-19 03:14:07.999", true, "\\'\"\0".getBytes(StandardCharsets.UTF_8), "line1\nline2\ttab"},
            };
            for (Object[] r : rows) {
                p.setString(1, (String) r[0]);
                if (r[1] == null) p.setNull(2, Types.INTEGER); else p.setInt(2, (Integer) r[1]);
                if (r[2] == null) p.setNull(3, Types.DECIMAL); else p.setBigDecimal(3, (BigDecimal) r[2]);
                if (r[3] == null) p.setNull(4, Types.DOUBLE); else p.setDouble(4, (Double) r[3]);
                if (r[4] == null) p.setNull(5, Types.DATE); else p.setDate(5, Date.valueOf((String) r[4]));
                if (r[5] == null) p.setNull(6, Types.TIMESTAMP); else p.setTimestamp(6, Timestamp.valueOf((String) r[5]));
                if (r[6] == null) p.setNull(7, Types.BOOLEAN); else p.setBoolean(7, (Boolean) r[6]);
                if (r[7] == null) p.setNull(8, Types.BLOB); else p.setBytes(8, (byte[]) r[7]);
                if (r[8] == null) p.setNull(9, Types.VARCHAR); else p.setString(9, (String) r[8]);
                int n = p.executeUpdate();
                try (ResultSet k = p.getGeneratedKeys()) {
                    out.println("insert: count=" + n + " key=" + (k.next() ? k.getLong(1) : -1));
                }
            }
        }

        // A batch of 50 rows.
        try (PreparedStatement p = c.prepareStatement("insert into " + t + " (name, qty, price) values (?, ?, ?)")) {
            for (int i = 0; i < 50; i++) {
                p.setString(1, "batch-" + i);
                p.setInt(2, i);
                p.setBigDecimal(3, new BigDecimal(i).movePointLeft(2));
                p.addBatch();
            }
            int[] counts = p.executeBatch();
            int sum = 0;
            for (int n : counts) {
                sum += n;
            }
            out.println("batch: " + counts.length + " statements, counts sum " + sum);
        }

        // Long data: a 1 MiB stream and a long character stream.
        byte[] big = pattern(1 << 20, 7);
        StringBuilder longText = new StringBuilder();
        for (int i = 0; i < 20000; i++) {
            longText.append("长文本").append(i).append(' ');
        }
        try (PreparedStatement p = c.prepareStatement("insert into " + t + " (name, data, note) values (?, ?, ?)")) {
            p.setString(1, "stream");
            p.setBinaryStream(2, new ByteArrayInputStream(big), big.length);
            p.setCharacterStream(3, new StringReader(longText.toString()), longText.length());
            out.println("stream insert: count=" + p.executeUpdate());
        }
        out.println("stream sent: " + render(big) + " " + render(longText.toString()));

        String sel = "select id, name, qty, price, ratio, born, seen, flag, data, note from " + t
                + " where name = ? and qty >= ? order by id";
        try (PreparedStatement p = c.prepareStatement(sel)) {
            p.setString(1, "alice");
            p.setInt(2, 42);
            try (ResultSet rs = p.executeQuery()) {
                printResult("select alice", rs);
            }
            p.setString(1, "数据库防火墙 🔥");
            p.setInt(2, -2147483648);
            try (ResultSet rs = p.executeQuery()) {
                printResult("select unicode", rs);
            }
            p.setString(1, "nobody");
            p.setNull(2, Types.INTEGER);
            try (ResultSet rs = p.executeQuery()) {
                printResult("select nobody", rs);
            }
        }
        try (PreparedStatement p = c.prepareStatement("select id, name, qty, price, ratio, born, seen, flag, data, note from "
                + t + " where id <= ? order by id")) {
            p.setLong(1, 4);
            try (ResultSet rs = p.executeQuery()) {
                printResult("select first four", rs);
            }
        }
        try (PreparedStatement p = c.prepareStatement("select name, length(data), sha2(data, 256), char_length(note), sha2(note, 256)"
                + " from " + t + " where name = ?")) {
            p.setString(1, "stream");
            try (ResultSet rs = p.executeQuery()) {
                printResult("select stream", rs);
            }
            p.setString(1, "stream");
            try (ResultSet rs = p.executeQuery()) {
                printResult("select stream again", rs);
            }
        }
        try (Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("select count(*), sum(qty), sum(price), min(name), max(name) from " + t)) {
            printResult("aggregate", rs);
        }

        // Transactions.
        c.setAutoCommit(false);
        try (PreparedStatement p = c.prepareStatement("insert into " + t + " (name) values (?)")) {
            p.setString(1, "rolled-back");
            p.executeUpdate();
            c.rollback();
            p.setString(1, "committed");
            p.executeUpdate();
            c.commit();
        }
        c.setAutoCommit(true);
        try (PreparedStatement p = c.prepareStatement("select name from " + t + " where name in (?, ?) order by name")) {
            p.setString(1, "rolled-back");
            p.setString(2, "committed");
            try (ResultSet rs = p.executeQuery()) {
                printResult("transactions", rs);
            }
        }

        // Errors.
        try (PreparedStatement p = c.prepareStatement("insert into " + t + " (id, name) values (?, ?)")) {
            p.setInt(1, 1);
            p.setString(2, "duplicate");
            p.executeUpdate();
            out.println("duplicate: no error");
        } catch (SQLException e) {
            printError("duplicate", e);
        }
        try (PreparedStatement p = c.prepareStatement("selec nothing from " + t + " where id = ?")) {
            p.setInt(1, 1);
            p.executeQuery();
            out.println("syntax: no error");
        } catch (SQLException e) {
            printError("syntax", e);
        }

        out.println("isValid: " + c.isValid(5));
        c.setCatalog("mysql");
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select database()")) {
            printResult("catalog", rs);
        }
        c.setCatalog("test");
        out.println("catalog: " + c.getCatalog());

        try (Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("select variable_name, variable_value from information_schema.session_status"
                     + " where variable_name in ('COM_STMT_PREPARE', 'COM_STMT_EXECUTE', 'COM_STMT_SEND_LONG_DATA',"
                     + " 'COM_STMT_CLOSE', 'COM_STMT_RESET', 'COM_CHANGE_DB', 'COM_INSERT', 'COM_SELECT') order by 1")) {
            printResult("status", rs);
        }
        exec(c, "drop table " + t);
    }

    static void prepareOnly(Connection c, String sql) throws Exception {
        try (PreparedStatement p = c.prepareStatement(sql)) {
            boolean rs = p.execute();
            out.println("prepare: executed, result set " + rs);
        } catch (SQLException e) {
            printError("prepare", e);
        }
        try (PreparedStatement p = c.prepareStatement("select ? as after_refusal")) {
            p.setString(1, "still usable");
            try (ResultSet rs = p.executeQuery()) {
                printResult("after", rs);
            }
        }
    }
}
