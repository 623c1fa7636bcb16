/*
 * Antigravity's Iceberg REST catalog: Apache Iceberg's own REST catalog (RESTCatalogAdapter + RESTCatalogServlet,
 * the implementation the Iceberg REST specification is tested against) over a JDBC catalog in PostgreSQL, behind
 * one bearer token that only the workspace service holds.
 *
 * Iceberg ships this server only as a test fixture (RESTCatalogServer), which binds every interface and accepts
 * anyone. This class is the few lines that differ: a bind address, a token check before any catalog code runs, a
 * health path, and configuration from one properties file (a lab secret or a mounted Kubernetes Secret) instead
 * of environment variables, which other processes of the same user can read.
 *
 * Usage: java -cp <jars> AgpRestCatalog /path/to/catalog.properties
 *   agp.bind        address to listen on (default 127.0.0.1)
 *   agp.port        port (default 8181)
 *   agp.token-file  file holding the bearer token callers must send
 *   every other key is an Iceberg catalog property (uri, jdbc.user, jdbc.password, warehouse, io-impl, s3.*, ...)
 */

import jakarta.servlet.Filter;
import jakarta.servlet.FilterChain;
import jakarta.servlet.ServletException;
import jakarta.servlet.ServletRequest;
import jakarta.servlet.ServletResponse;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.iceberg.CatalogProperties;
import org.apache.iceberg.catalog.TableIdentifier;
import org.apache.iceberg.jdbc.JdbcCatalog;
import org.apache.iceberg.rest.RESTCatalogAdapter;
import org.apache.iceberg.rest.RESTCatalogServlet;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.FilterHolder;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

public final class AgpRestCatalog {
  private static final Logger LOG = LoggerFactory.getLogger(AgpRestCatalog.class);
  static final String HEALTH_PATH = "/healthz";

  private AgpRestCatalog() {}

  /** Refuses every call without the platform's bearer token, before any catalog code sees it. */
  static final class BearerTokenFilter implements Filter {
    private final byte[] expected;

    BearerTokenFilter(String token) {
      this.expected = ("Bearer " + token).getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public void doFilter(ServletRequest req, ServletResponse res, FilterChain chain)
        throws IOException, ServletException {
      HttpServletRequest request = (HttpServletRequest) req;
      HttpServletResponse response = (HttpServletResponse) res;
      if ("GET".equals(request.getMethod()) && HEALTH_PATH.equals(request.getRequestURI())) {
        response.setStatus(200);
        response.setContentType("text/plain");
        response.getWriter().write("ok");
        return;
      }
      String header = request.getHeader("Authorization");
      byte[] given = header == null ? new byte[0] : header.getBytes(StandardCharsets.UTF_8);
      if (!MessageDigest.isEqual(expected, given)) { // constant time: the token is not guessable byte by byte
        LOG.warn("refused {} {} from {}: no valid bearer token", request.getMethod(),
            request.getRequestURI(), request.getRemoteAddr());
        response.setStatus(401);
        response.setContentType("application/json");
        response.getWriter().write("{\"error\":{\"message\":\"This catalog answers the platform only.\","
            + "\"type\":\"NotAuthorizedException\",\"code\":401}}");
        return;
      }
      chain.doFilter(req, res);
    }
  }

  /**
   * Iceberg's JDBC catalog, placing a table or view made without a location under its namespace's {@code location}
   * property, as Iceberg's Hive catalog, Nessie and Polaris do. Provisioning gives each workspace's namespace its
   * workspace's bucket; the JDBC catalog alone would put every table in the warehouse bucket.
   */
  static final class NamespaceLocationJdbcCatalog extends JdbcCatalog {
    @Override
    protected String defaultWarehouseLocation(TableIdentifier table) {
      String base = table.namespace().isEmpty()
          ? null
          : loadNamespaceMetadata(table.namespace()).get("location");
      if (base == null || base.isBlank()) {
        return super.defaultWarehouseLocation(table);
      }
      return base.replaceAll("/+$", "") + "/" + table.name();
    }
  }

  static Map<String, String> load(Path file) throws IOException {
    Properties props = new Properties();
    try (InputStream in = Files.newInputStream(file)) {
      props.load(in);
    }
    Map<String, String> out = new HashMap<>();
    props.stringPropertyNames().forEach(k -> out.put(k, props.getProperty(k).trim()));
    return out;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: AgpRestCatalog <catalog.properties>");
      System.exit(2);
    }
    Map<String, String> props = load(Path.of(args[0]));
    String bind = props.getOrDefault("agp.bind", "127.0.0.1");
    int port = Integer.parseInt(props.getOrDefault("agp.port", "8181"));
    String tokenFile = props.get("agp.token-file");
    if (tokenFile == null) {
      System.err.println("agp.token-file is not set: the catalog will not run open to everyone.");
      System.exit(2);
    }
    String token = Files.readString(Path.of(tokenFile), StandardCharsets.UTF_8).trim();
    if (token.length() < 32) {
      System.err.println("The token in " + tokenFile + " is shorter than 32 characters.");
      System.exit(2);
    }

    Map<String, String> catalogProps = new HashMap<>();
    props.forEach((k, v) -> {
      if (!k.startsWith("agp.")) {
        catalogProps.put(k, v);
      }
    });
    // Views need the JDBC catalog's V1 schema (it adds the record type column); a new database gets it directly.
    catalogProps.putIfAbsent("jdbc.schema-version", "V1");
    String name = props.getOrDefault("agp.catalog-name", "agp");
    NamespaceLocationJdbcCatalog catalog = new NamespaceLocationJdbcCatalog();
    catalog.initialize(name, catalogProps);
    LOG.info("catalog {} (JDBC) on {} with warehouse {}", name, catalogProps.get(CatalogProperties.URI),
        catalogProps.get(CatalogProperties.WAREHOUSE_LOCATION));

    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    context.addFilter(new FilterHolder(new BearerTokenFilter(token)), "/*",
        EnumSet.of(jakarta.servlet.DispatcherType.REQUEST));
    context.addServlet(new ServletHolder(new RESTCatalogServlet(new RESTCatalogAdapter(catalog))), "/*");

    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost(bind);
    connector.setPort(port);
    server.addConnector(connector);
    server.setHandler(context);
    server.setStopAtShutdown(true);
    server.start();
    LOG.info("Iceberg REST catalog listening on http://{}:{}/", bind, port);
    server.join();
  }

}
