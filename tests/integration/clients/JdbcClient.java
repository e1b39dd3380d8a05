// One pgJDBC session through pgmtls: a query, a server-side prepared statement, COPY in and out,
// a cancel. Usage: java -cp postgresql.jar JdbcClient.java JDBC-URL (the URL carries sslmode,
// sslrootcert, sslcert and a PKCS#8 DER sslkey). Prints one "<step> ok ..." line per step and exits
// 0, or prints what went wrong and exits 1. Run by tests/integration/clients_test.cpp.
import java.io.StringReader;
import java.io.StringWriter;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.concurrent.atomic.AtomicBoolean;
import org.postgresql.PGConnection;
import org.postgresql.PGStatement;
import org.postgresql.copy.CopyManager;

public class JdbcClient {
  static void check(boolean ok, String what) {
    if (!ok) throw new AssertionError(what);
  }

  static void run(String url) throws Exception {
    try (Connection conn = DriverManager.getConnection(url)) {
      try (Statement st = conn.createStatement();
          ResultSet rs = st.executeQuery("SELECT current_user, 41 + 1")) {
        check(rs.next() && rs.getInt(2) == 42, "query answer");
        System.out.println("query ok user=" + rs.getString(1));
      }

      // prepareThreshold=1: from the first execution on, a named statement on the server.
      try (PreparedStatement ps = conn.prepareStatement("SELECT ?::int * 2")) {
        ps.unwrap(PGStatement.class).setPrepareThreshold(1);
        for (int i = 1; i <= 3; i++) {
          ps.setInt(1, 21 * i);
          try (ResultSet rs = ps.executeQuery()) {
            check(rs.next() && rs.getInt(1) == 42 * i, "prepared answer " + i);
          }
        }
        check(ps.unwrap(PGStatement.class).isUseServerPrepare(), "server-side prepare");
        System.out.println("prepared ok");
      }

      StringBuilder rows = new StringBuilder();
      for (int i = 0; i < 1000; i++) rows.append(i).append("\tline ").append(i).append('\n');
      try (Statement st = conn.createStatement()) {
        st.execute("CREATE TEMP TABLE lines (n int, t text)");
        CopyManager copy = conn.unwrap(PGConnection.class).getCopyAPI();
        check(copy.copyIn("COPY lines FROM STDIN", new StringReader(rows.toString())) == 1000,
            "COPY in count");
        StringWriter out = new StringWriter();
        copy.copyOut("COPY lines TO STDOUT", out);
        check(out.toString().equals(rows.toString()), "COPY out content");
        System.out.println("copy ok rows=1000");
      }

      // A cancel before the query runs is a no-op on the server: keep sending one until the
      // query has been interrupted; the canceller is joined before anything else runs.
      try (Statement st = conn.createStatement()) {
        AtomicBoolean interrupted = new AtomicBoolean(false);
        Thread canceller = new Thread(() -> {
          try {
            while (!interrupted.get()) {
              st.cancel();
              Thread.sleep(200);
            }
          } catch (Exception e) {
            throw new RuntimeException(e);
          }
        });
        long start = System.nanoTime();
        canceller.start();
        try {
          st.execute("SELECT pg_sleep(60)");
          throw new AssertionError("pg_sleep(60) finished: the cancel never arrived");
        } catch (SQLException e) {
          check("57014".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState() + ": " + e);
        } finally {
          interrupted.set(true);
          canceller.join();
        }
        double elapsed = (System.nanoTime() - start) / 1e9;
        try (ResultSet rs = st.executeQuery("SELECT 1")) {
          check(rs.next() && rs.getInt(1) == 1, "query after cancel");
        }
        System.out.printf("cancel ok after %.1f s%n", elapsed);
      }
    }
  }

  public static void main(String[] args) {
    try {
      run(args[0]);
    } catch (Throwable e) {
      System.out.println("failed: " + e);
      System.exit(1);
    }
  }
}
