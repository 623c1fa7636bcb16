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
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.iceberg.CatalogProperties;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.TableMetadata;
import org.apache.iceberg.TableOperations;
import org.apache.iceberg.catalog.TableIdentifier;
import org.apache.iceberg.io.FileIO;
import org.apache.iceberg.io.InputFile;
import org.apache.iceberg.io.OutputFile;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.handler.ErrorHandler;
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

    /**
     * A purge deletes what the table's metadata lists, in the table's own bucket only. The catalog's S3 identity
     * reaches every workspace's bucket, and a table's manifests are written by its workspace's members: a manifest
     * naming another workspace's file must not make the catalog delete it.
     */
    @Override
    public boolean dropTable(TableIdentifier identifier, boolean purge) {
      if (!purge) {
        return super.dropTable(identifier, false);
      }
      TableOperations ops = newTableOps(identifier);
      TableMetadata last = null;
      try {
        last = ops.current();
      } catch (RuntimeException e) {
        LOG.warn("purge of {}: its metadata does not load, dropping without deleting files", identifier, e);
      }
      boolean dropped = super.dropTable(identifier, false);
      if (dropped && last != null) {
        CatalogUtil.dropTableData(new BucketBoundFileIO(ops.io(), bucketOf(last.location())), last);
      }
      return dropped;
    }
  }

  /** {@code s3://bucket/} of a location, or a prefix no path has when the location names no bucket. */
  static String bucketOf(String location) {
    int scheme = location == null ? -1 : location.indexOf("://");
    if (scheme < 0) {
      return "\0no-bucket/";
    }
    int slash = location.indexOf('/', scheme + 3);
    return (slash < 0 ? location + "/" : location.substring(0, slash + 1));
  }

  /** A FileIO that reads and writes as the one it wraps, and deletes inside one bucket only. */
  static final class BucketBoundFileIO implements FileIO {
    private final FileIO io;
    private final String prefix;

    BucketBoundFileIO(FileIO io, String prefix) {
      this.io = io;
      this.prefix = prefix;
    }

    @Override
    public InputFile newInputFile(String path) {
      return io.newInputFile(path);
    }

    @Override
    public OutputFile newOutputFile(String path) {
      return io.newOutputFile(path);
    }

    @Override
    public void deleteFile(String path) {
      if (path != null && path.startsWith(prefix)) {
        io.deleteFile(path);
      } else {
        LOG.warn("purge: not deleting {}, outside the table's bucket {}", path, prefix);
      }
    }
  }

  /**
   * Errors Jetty itself answers (a body the catalog cannot parse, an unknown path) as Iceberg REST error objects,
   * without a stack trace, server name or class names; the detail goes to this server's log.
   */
  static final class JsonErrorHandler extends ErrorHandler {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Override
    public void handle(String target, Request baseRequest, HttpServletRequest request,
        HttpServletResponse response) throws IOException {
      Throwable cause = (Throwable) request.getAttribute(jakarta.servlet.RequestDispatcher.ERROR_EXCEPTION);
      int code = response.getStatus();
      String message = "The catalog could not handle this request.";
      while (cause != null && cause.getCause() != null && cause.getCause() != cause
          && !(cause instanceof IllegalArgumentException)) {
        cause = cause.getCause();
      }
      if (cause instanceof IllegalArgumentException || cause instanceof com.fasterxml.jackson.core.JacksonException) {
        code = 400; // the request's own fault: say what could not be read
        String detail = String.valueOf(cause.getMessage());
        message = "The catalog could not read this request: "
            + (detail.length() > 200 ? detail.substring(0, 200) : detail).split("\n")[0];
      }
      LOG.warn("{} {} answered {}", request.getMethod(), request.getRequestURI(), code, cause);
      baseRequest.setHandled(true);
      response.setStatus(code);
      response.setContentType("application/json");
      String type = code >= 500 ? "ServiceFailureException" : "BadRequestException";
      response.getWriter().write(JSON.writeValueAsString(
          java.util.Map.of("error", java.util.Map.of("message", message, "type", type, "code", code))));
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

    JsonErrorHandler errors = new JsonErrorHandler();
    context.setErrorHandler(errors);
    Server server = new Server();
    server.setErrorHandler(errors);
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
