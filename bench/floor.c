/*
 * floor.c — the floor of the benchmarks: the least a C program with plain OpenSSL must do to
 * be a signaling viewer, measured the same ways as the library.
 *
 * Per connection: SigV4 presign of ConnectAsViewer (OpenSSL HMAC-SHA256), TCP connect
 * (TCP_NODELAY, like the library), TLS 1.2+ handshake with SNI and host-name verification
 * against $KVS_CA_FILE (system roots only through the hashed directory, which OpenSSL reads
 * lazily), the HTTP/1.1 WebSocket upgrade (Sec-WebSocket-Accept checked) and the 101. An
 * offer is one masked text frame carrying the service's JSON envelope; the answer is the
 * first text frame whose messageType is SDP_ANSWER, its payload base64-decoded. Discovery
 * is the library's three header-signed POSTs (DescribeSignalingChannel by name,
 * GetSignalingChannelEndpoint, GetIceServerConfig) on one kept-alive TLS connection per host.
 * Idle connections release OpenSSL's record buffers (SSL_MODE_RELEASE_BUFFERS). No threads, no
 * session resumption (the library has none either), no keepalive pings.
 *
 *   floor cold [--discover] [--eager-roots]
 *                             one session: connect, offer, answer; prints answer_mono_ns.
 *                             --eager-roots also parses the system CA bundle up front
 *                             (SSL_CTX_set_default_verify_paths, as the openssl crate's
 *                             SslConnector::builder does): the cost of that step alone
 *   floor serve               warm loop driven over stdin by bench/spawn.c (lockstep):
 *                             commands connect | discover | rtt | quit, one time in ns each
 *   floor multi 1,10,100      N open connections; RSS and threads after each N
 *   floor idle SECONDS        one open connection, idle; CPU time and context switches
 *
 * Environment: the emulator's env file (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * optional AWS_SESSION_TOKEN, KVS_CHANNEL_ARN, KVS_CHANNEL_NAME, KVS_WSS_ENDPOINT,
 * KVS_CONTROL_PLANE_URL, KVS_CA_FILE).
 */
#include "common.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define IO_TIMEOUT_S 10

/* ---------------------------------------------------------------- configuration ---- */

typedef struct {
  char host[256];        /* without brackets */
  char port[8];
  char host_header[300]; /* host[:port], exactly as sent and signed */
  char path[512];        /* "" or "/..." without a trailing slash */
} Url;

typedef struct {
  const char *region, *akid, *secret, *token, *arn, *name, *ca_file;
  Url wss, control;
} Env;

static Env E;
static unsigned long client_seq;
static int eager_roots;

static void parse_url(const char *s, const char *scheme, Url *u, const char *what) {
  size_t sl = strlen(scheme);
  if (strncmp(s, scheme, sl) != 0 || strncmp(s + sl, "://", 3) != 0)
    die("%s must start with %s://, got \"%s\"", what, scheme, s);
  const char *p = s + sl + 3;
  const char *end = p + strcspn(p, "/");
  const char *colon;
  memset(u, 0, sizeof *u);
  if (*p == '[') {
    const char *rb = memchr(p, ']', (size_t)(end - p));
    if (!rb) die("%s: unterminated [ in \"%s\"", what, s);
    bprintf(u->host, sizeof u->host, "%.*s", (int)(rb - p - 1), p + 1);
    colon = (rb + 1 < end && rb[1] == ':') ? rb + 1 : NULL;
  } else {
    colon = memchr(p, ':', (size_t)(end - p));
    bprintf(u->host, sizeof u->host, "%.*s", (int)((colon ? colon : end) - p), p);
  }
  if (colon) bprintf(u->port, sizeof u->port, "%.*s", (int)(end - colon - 1), colon + 1);
  else bprintf(u->port, sizeof u->port, "443");
  if (!u->host[0]) die("%s has no host: \"%s\"", what, s);
  bprintf(u->host_header, sizeof u->host_header, "%.*s", (int)(end - p), p);
  bprintf(u->path, sizeof u->path, "%s", end);
  size_t pl = strlen(u->path);
  while (pl > 0 && u->path[pl - 1] == '/') u->path[--pl] = '\0';
}

static void load_env(void) {
  E.region = env_req("AWS_REGION");
  E.akid = env_req("AWS_ACCESS_KEY_ID");
  E.secret = env_req("AWS_SECRET_ACCESS_KEY");
  E.token = env_opt("AWS_SESSION_TOKEN");
  E.arn = env_req("KVS_CHANNEL_ARN");
  E.name = env_req("KVS_CHANNEL_NAME");
  E.ca_file = env_req("KVS_CA_FILE");
  parse_url(env_req("KVS_WSS_ENDPOINT"), "wss", &E.wss, "KVS_WSS_ENDPOINT");
  parse_url(env_req("KVS_CONTROL_PLANE_URL"), "https", &E.control, "KVS_CONTROL_PLANE_URL");
}

/* ---------------------------------------------------------------- crypto helpers ---- */

static void ossl_die(const char *what) {
  char buf[256];
  unsigned long e = ERR_get_error();
  ERR_error_string_n(e, buf, sizeof buf);
  die("%s: %s", what, e ? buf : "(no OpenSSL error)");
}

static void hex(const unsigned char *d, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[d[i] >> 4];
    out[2 * i + 1] = digits[d[i] & 15];
  }
  out[2 * n] = '\0';
}

static void sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[32];
  SHA256(data, len, md);
  hex(md, 32, out);
}

static void hmac256(const void *key, size_t klen, const char *msg, unsigned char out[32]) {
  unsigned int n = 32;
  if (!HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &n))
    ossl_die("HMAC-SHA256");
}

/* RFC 3986 encoding of SigV4: unreserved characters kept, everything else %XX. */
static void uri_encode(const char *s, char *out, size_t cap) {
  static const char digits[] = "0123456789ABCDEF";
  size_t o = 0;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.' || c == '~';
    if (o + 4 >= cap) die("a signed parameter is too long");
    if (keep) out[o++] = (char)c;
    else {
      out[o++] = '%';
      out[o++] = digits[c >> 4];
      out[o++] = digits[c & 15];
    }
  }
  out[o] = '\0';
}

static void amz_date(char out[17]) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* SigV4 signature (hex) of canonical_request at amz_date for service kinesisvideo. */
static void sign(const char *date, const char *creq, char sig[65]) {
  char creq_hash[65], sts[256], k[160];
  sha256_hex(creq, strlen(creq), creq_hash);
  bprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/kinesisvideo/aws4_request\n%s", date,
           date, E.region, creq_hash);
  unsigned char kd[32], kr[32], ks[32], kk[32], s[32];
  char date8[9];
  bprintf(date8, sizeof date8, "%.8s", date);
  bprintf(k, sizeof k, "AWS4%s", E.secret);
  hmac256(k, strlen(k), date8, kd);
  hmac256(kd, 32, E.region, kr);
  hmac256(kr, 32, "kinesisvideo", ks);
  hmac256(ks, 32, "aws4_request", kk);
  hmac256(kk, 32, sts, s);
  hex(s, 32, sig);
}

static char *b64(const void *data, size_t len) {
  char *out = malloc(4 * ((len + 2) / 3) + 1);
  if (!out) die("out of memory");
  EVP_EncodeBlock((unsigned char *)out, data, (int)len);
  return out;
}

/* ---------------------------------------------------------------- TLS connections ---- */

typedef struct {
  int fd;
  SSL *ssl;
  char rbuf[16384 + 64];
  size_t roff, rlen;
} Conn;

static SSL_CTX *make_ctx(void) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) ossl_die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* An idle connection gives its record buffers back (what the openssl crate's SslConnector
   * sets too): the memory floor of a connected session. */
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_load_verify_locations(ctx, E.ca_file, NULL) != 1) ossl_die(E.ca_file);
  /* The system roots too, as the library trusts them; the hashed directory is read lazily,
   * only for an issuer not found otherwise. */
  SSL_CTX_load_verify_locations(ctx, NULL, X509_get_default_cert_dir());
  if (eager_roots && SSL_CTX_set_default_verify_paths(ctx) != 1) ossl_die("default verify paths");
  ERR_clear_error();
  return ctx;
}

static int is_ip_literal(const char *host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static void conn_open(Conn *c, SSL_CTX *ctx, const Url *u) {
  struct addrinfo hints = {0}, *res = NULL, *a;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(u->host, u->port, &hints, &res);
  if (rc) die("cannot resolve %s: %s", u->host, gai_strerror(rc));
  c->fd = -1;
  for (a = res; a; a = a->ai_next) {
    c->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (c->fd < 0) continue;
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(c->fd, a->ai_addr, a->ai_addrlen) == 0) break;
    close(c->fd);
    c->fd = -1;
  }
  freeaddrinfo(res);
  if (c->fd < 0) die("TCP connect to %s:%s: %s", u->host, u->port, strerror(errno));
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  c->ssl = SSL_new(ctx);
  if (!c->ssl) ossl_die("SSL_new");
  if (is_ip_literal(u->host)) {
    if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), u->host)) ossl_die("set1_ip");
  } else {
    SSL_set_tlsext_host_name(c->ssl, u->host);
    if (SSL_set1_host(c->ssl, u->host) != 1) ossl_die("SSL_set1_host");
  }
  SSL_set_fd(c->ssl, c->fd);
  if (SSL_connect(c->ssl) != 1) {
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) die("TLS handshake with %s: %s", u->host, X509_verify_cert_error_string(v));
    ossl_die("TLS handshake");
  }
  c->roff = c->rlen = 0;
}

static void conn_close(Conn *c) {
  SSL_shutdown(c->ssl); /* sends close_notify, does not wait for the peer's */
  SSL_free(c->ssl);
  close(c->fd);
  c->ssl = NULL;
  c->fd = -1;
}

static void write_all(Conn *c, const void *buf, size_t len) {
  size_t n = 0;
  if (len && SSL_write_ex(c->ssl, buf, len, &n) != 1) ossl_die("TLS write");
}

/* Refills the read buffer (at least one byte); dies on EOF or error. */
static void fill(Conn *c) {
  if (c->roff == c->rlen) c->roff = c->rlen = 0;
  if (c->rlen == sizeof c->rbuf) {
    memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
    c->rlen -= c->roff;
    c->roff = 0;
  }
  size_t n = 0;
  if (SSL_read_ex(c->ssl, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen, &n) != 1)
    ossl_die("TLS read (connection closed or timed out)");
  c->rlen += n;
}

static void read_exact(Conn *c, void *out, size_t len) {
  unsigned char *o = out;
  while (len) {
    if (c->roff == c->rlen) fill(c);
    size_t n = c->rlen - c->roff < len ? c->rlen - c->roff : len;
    memcpy(o, c->rbuf + c->roff, n);
    c->roff += n;
    o += n;
    len -= n;
  }
}

/* Reads an HTTP response head (through the blank line) into head; NUL-terminated. */
static size_t read_head(Conn *c, char *head, size_t cap) {
  size_t n = 0;
  for (;;) {
    if (c->roff == c->rlen) fill(c);
    if (n + 1 >= cap) die("HTTP response head over %zu bytes", cap);
    head[n++] = c->rbuf[c->roff++];
    if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0) break;
  }
  head[n] = '\0';
  return n;
}

static int http_status(const char *head) {
  int status = 0;
  if (sscanf(head, "HTTP/1.%*d %d", &status) != 1) die("not an HTTP response: %.40s", head);
  return status;
}

/* The value of header `name` (case-insensitive) copied into out; 0 when absent. */
static int header_value(const char *head, const char *name, char *out, size_t cap) {
  size_t nl = strlen(name);
  for (const char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
    const char *h = line + 2;
    if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
      const char *v = h + nl + 1;
      while (*v == ' ' || *v == '\t') v++;
      size_t vl = strcspn(v, "\r");
      bprintf(out, cap, "%.*s", (int)vl, v);
      return 1;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- control plane ---- */

/* A header-signed POST on an open connection; returns the 2xx body (malloc'd). */
static char *post(Conn *c, const Url *u, const char *op, const char *body) {
  char path[600], date[17], body_hash[65], sig[65], creq[16384], req[20000];
  bprintf(path, sizeof path, "%s/%s", u->path, op);
  amz_date(date);
  sha256_hex(body, strlen(body), body_hash);
  const char *signed_headers = E.token ? "content-type;host;x-amz-date;x-amz-security-token"
                                       : "content-type;host;x-amz-date";
  bprintf(creq, sizeof creq,
           "POST\n%s\n\ncontent-type:application/json\nhost:%s\nx-amz-date:%s\n%s%s%s\n%s\n%s",
           path, u->host_header, date, E.token ? "x-amz-security-token:" : "",
           E.token ? E.token : "", E.token ? "\n" : "", signed_headers, body_hash);
  sign(date, creq, sig);
  int n = snprintf(req, sizeof req,
                   "POST %s HTTP/1.1\r\ncontent-type: application/json\r\nhost: %s\r\n"
                   "x-amz-date: %s\r\n%s%s%sauthorization: AWS4-HMAC-SHA256 "
                   "Credential=%s/%.8s/%s/kinesisvideo/aws4_request, SignedHeaders=%s, "
                   "Signature=%s\r\ncontent-length: %zu\r\n\r\n%s",
                   path, u->host_header, date, E.token ? "x-amz-security-token: " : "",
                   E.token ? E.token : "", E.token ? "\r\n" : "", E.akid, date, E.region,
                   signed_headers, sig, strlen(body), body);
  if (n < 0 || (size_t)n >= sizeof req) die("request for %s too long", op);
  write_all(c, req, (size_t)n);

  char head[16384], v[64];
  read_head(c, head, sizeof head);
  int status = http_status(head);
  if (!header_value(head, "content-length", v, sizeof v))
    die("%s: answer without Content-Length (this floor reads no chunked answers)", op);
  size_t len = strtoul(v, NULL, 10);
  if (len > 1 << 20) die("%s: %zu-byte answer", op, len);
  char *out = malloc(len + 1);
  if (!out) die("out of memory");
  read_exact(c, out, len);
  out[len] = '\0';
  if (status / 100 != 2) die("%s: HTTP %d: %s", op, status, out);
  return out;
}

/* The string value of the first "key":"value" at or after `from`; NULL when absent. */
static const char *json_str(const char *from, const char *key, char *out, size_t cap) {
  char pat[64];
  bprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = strstr(from, pat);
  if (!p) return NULL;
  p += strlen(pat);
  while (*p == ' ' || *p == ':') p++;
  if (*p != '"') return NULL;
  p++;
  size_t n = strcspn(p, "\"");
  if (n >= cap) die("JSON value of %s too long", key);
  memcpy(out, p, n);
  out[n] = '\0';
  return p + n;
}

static int same_host(const Url *a, const Url *b) {
  return strcmp(a->host, b->host) == 0 && strcmp(a->port, b->port) == 0;
}

/* DescribeSignalingChannel + GetSignalingChannelEndpoint + GetIceServerConfig; fills the
 * channel ARN and the WSS endpoint. */
static void discover(SSL_CTX *ctx, const char *client_id, char *arn, size_t arn_cap, Url *wss) {
  Conn cp, ice_conn;
  char body[4096], wss_s[512] = "", https_s[512] = "", ep[512];
  conn_open(&cp, ctx, &E.control);

  bprintf(body, sizeof body, "{\"ChannelName\":\"%s\"}", E.name);
  char *answer = post(&cp, &E.control, "describeSignalingChannel", body);
  if (!json_str(answer, "ChannelARN", arn, arn_cap)) die("describe: no ChannelARN in %s", answer);
  free(answer);

  bprintf(body, sizeof body,
           "{\"ChannelARN\":\"%s\",\"SingleMasterChannelEndpointConfiguration\":"
           "{\"Protocols\":[\"WSS\",\"HTTPS\"],\"Role\":\"VIEWER\"}}",
           arn);
  answer = post(&cp, &E.control, "getSignalingChannelEndpoint", body);
  for (const char *p = answer; (p = json_str(p, "ResourceEndpoint", ep, sizeof ep));) {
    if (strncmp(ep, "wss://", 6) == 0) bprintf(wss_s, sizeof wss_s, "%s", ep);
    else if (strncmp(ep, "https://", 8) == 0) bprintf(https_s, sizeof https_s, "%s", ep);
  }
  if (!wss_s[0] || !https_s[0]) die("get_endpoint: WSS or HTTPS endpoint missing in %s", answer);
  free(answer);
  parse_url(wss_s, "wss", wss, "the WSS endpoint");
  Url https;
  parse_url(https_s, "https", &https, "the HTTPS endpoint");

  bprintf(body, sizeof body, "{\"ChannelARN\":\"%s\",\"ClientId\":\"%s\",\"Service\":\"TURN\"}",
           arn, client_id);
  Conn *ic = &cp;
  if (!same_host(&https, &E.control)) {
    conn_open(&ice_conn, ctx, &https);
    ic = &ice_conn;
  }
  answer = post(ic, &https, "v1/get-ice-server-config", body);
  if (!strstr(answer, "IceServerList")) die("get_ice_config: no IceServerList in %s", answer);
  free(answer);
  if (ic != &cp) conn_close(ic);
  conn_close(&cp);
}

/* ---------------------------------------------------------------- WebSocket ---- */

/* Presigned ConnectAsViewer upgrade on a new connection; the 101 read and checked. */
static void ws_open(Conn *c, SSL_CTX *ctx, const Url *u, const char *arn, const char *client_id) {
  char date[17], cred[256], e_arn[512], e_cred[512], e_client[600], e_token[8192 * 3 + 1];
  char query[16384], creq[20000], sig[65], empty_hash[65];
  amz_date(date);
  bprintf(cred, sizeof cred, "%s/%.8s/%s/kinesisvideo/aws4_request", E.akid, date, E.region);
  uri_encode(arn, e_arn, sizeof e_arn);
  uri_encode(cred, e_cred, sizeof e_cred);
  uri_encode(client_id, e_client, sizeof e_client);
  e_token[0] = '\0';
  if (E.token) uri_encode(E.token, e_token, sizeof e_token);
  /* The parameters in SigV4 order (sorted by encoded name). */
  bprintf(query, sizeof query,
           "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN=%s&X-Amz-ClientId=%s"
           "&X-Amz-Credential=%s&X-Amz-Date=%s&X-Amz-Expires=299%s%s&X-Amz-SignedHeaders=host",
           e_arn, e_client, e_cred, date, E.token ? "&X-Amz-Security-Token=" : "", e_token);
  sha256_hex("", 0, empty_hash);
  bprintf(creq, sizeof creq, "GET\n%s/\n%s\nhost:%s\n\nhost\n%s", u->path, query, u->host_header,
           empty_hash);
  sign(date, creq, sig);

  conn_open(c, ctx, u);

  unsigned char nonce[16];
  if (RAND_bytes(nonce, sizeof nonce) != 1) ossl_die("RAND_bytes");
  char *key = b64(nonce, sizeof nonce);
  char req[20000];
  int n = snprintf(req, sizeof req,
                   "GET %s/?%s&X-Amz-Signature=%s HTTP/1.1\r\nHost: %s\r\n"
                   "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: %s\r\n\r\n",
                   u->path, query, sig, u->host_header, key);
  if (n < 0 || (size_t)n >= sizeof req) die("upgrade request too long");
  write_all(c, req, (size_t)n);

  char head[8192], accept[64], want_src[128];
  read_head(c, head, sizeof head);
  int status = http_status(head);
  if (status != 101) die("WebSocket upgrade answered %d: %.300s", status, head);
  unsigned char md[SHA_DIGEST_LENGTH];
  bprintf(want_src, sizeof want_src, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  SHA1((const unsigned char *)want_src, strlen(want_src), md);
  char *want = b64(md, sizeof md);
  if (!header_value(head, "sec-websocket-accept", accept, sizeof accept) || strcmp(accept, want))
    die("WebSocket upgrade: wrong Sec-WebSocket-Accept");
  free(want);
  free(key);
}

/* One masked client frame. */
static void ws_send(Conn *c, int opcode, const void *payload, size_t len) {
  size_t hl = len < 126 ? 2 : len < 65536 ? 4 : 10;
  unsigned char *f = malloc(hl + 4 + len);
  if (!f) die("out of memory");
  f[0] = (unsigned char)(0x80 | opcode);
  if (len < 126) f[1] = (unsigned char)(0x80 | len);
  else if (len < 65536) {
    f[1] = 0x80 | 126;
    f[2] = (unsigned char)(len >> 8);
    f[3] = (unsigned char)len;
  } else {
    f[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) f[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
  }
  unsigned char *mask = f + hl;
  if (RAND_bytes(mask, 4) != 1) ossl_die("RAND_bytes");
  const unsigned char *p = payload;
  for (size_t i = 0; i < len; i++) f[hl + 4 + i] = p[i] ^ mask[i & 3];
  write_all(c, f, hl + 4 + len);
  free(f);
}

/* Reads the next data frame (answering pings); returns its opcode, payload malloc'd in *out. */
static int ws_recv(Conn *c, char **out, size_t *out_len) {
  for (;;) {
    unsigned char h[2], ext[8];
    read_exact(c, h, 2);
    int opcode = h[0] & 0x0f;
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
      read_exact(c, ext, 2);
      len = ((uint64_t)ext[0] << 8) | ext[1];
    } else if (len == 127) {
      read_exact(c, ext, 8);
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | ext[i];
    }
    if (h[1] & 0x80) die("the server sent a masked frame");
    if (len > 1 << 20) die("a %llu-byte frame", (unsigned long long)len);
    char *p = malloc(len + 1);
    if (!p) die("out of memory");
    read_exact(c, p, len);
    p[len] = '\0';
    if (!(h[0] & 0x80)) die("fragmented frames are not expected from the signaling service");
    if (opcode == 0x9) { /* ping -> pong */
      ws_send(c, 0xA, p, len);
      free(p);
      continue;
    }
    if (opcode == 0xA) {
      free(p);
      continue;
    }
    if (opcode == 0x8) die("the server closed the WebSocket");
    *out = p;
    *out_len = len;
    return opcode;
  }
}

static void ws_close(Conn *c) {
  static const unsigned char normal[2] = {0x03, 0xe8}; /* 1000 */
  ws_send(c, 0x8, normal, sizeof normal);
  conn_close(c);
}

/* SDP offer out, then frames until the SDP answer (payload decoded, as an app needs it). */
static void offer_answer(Conn *c) {
  char *payload = b64(BENCH_OFFER, strlen(BENCH_OFFER));
  size_t cap = strlen(payload) + 64;
  char *frame = malloc(cap);
  if (!frame) die("out of memory");
  int n = snprintf(frame, cap, "{\"action\":\"SDP_OFFER\",\"messagePayload\":\"%s\"}", payload);
  ws_send(c, 0x1, frame, (size_t)n);
  free(frame);
  free(payload);
  for (;;) {
    char *msg, type[64];
    size_t len;
    if (ws_recv(c, &msg, &len) != 0x1) {
      free(msg);
      continue;
    }
    if (json_str(msg, "messageType", type, sizeof type) && strcmp(type, "SDP_ANSWER") == 0) {
      char *enc = malloc(len + 1);
      if (!enc || !json_str(msg, "messagePayload", enc, len + 1))
        die("SDP_ANSWER without messagePayload");
      size_t el = strlen(enc);
      unsigned char *dec = malloc(el / 4 * 3 + 3);
      if (!dec || EVP_DecodeBlock(dec, (unsigned char *)enc, (int)el) < 0)
        die("SDP_ANSWER payload is not base64");
      if (!strstr((char *)dec, "answer")) die("SDP_ANSWER payload is no answer");
      free(dec);
      free(enc);
      free(msg);
      return;
    }
    free(msg);
  }
}

static void next_client_id(char *out, size_t cap, const char *what) {
  bprintf(out, cap, "bench-floor-%s-%ld-%lu", what, (long)getpid(), client_seq++);
}

/* A session: optional discovery, then the WebSocket. */
static void session_open(Conn *c, SSL_CTX *ctx, int discovering, const char *what) {
  char id[128], arn[512];
  next_client_id(id, sizeof id, what);
  if (discovering) {
    Url wss;
    discover(ctx, id, arn, sizeof arn, &wss);
    ws_open(c, ctx, &wss, arn, id);
  } else {
    ws_open(c, ctx, &E.wss, E.arn, id);
  }
}

/* ---------------------------------------------------------------- modes ---- */

static int mode_cold(int discovering) {
  SSL_CTX *ctx = make_ctx();
  Conn c;
  session_open(&c, ctx, discovering, "cold");
  offer_answer(&c);
  int64_t t = mono_ns();
  printf("answer_mono_ns %lld\n", (long long)t);
  fflush(stdout);
  ws_close(&c);
  SSL_CTX_free(ctx);
  return 0;
}

typedef struct {
  SSL_CTX *ctx;
  Conn rtt;
} Warm;

static int64_t warm_connect(void *side, int discovering) {
  Warm *w = side;
  Conn c;
  session_open(&c, w->ctx, discovering, "warm");
  int64_t opened = mono_ns();
  ws_close(&c);
  return opened;
}

static void warm_rtt(void *side) { offer_answer(&((Warm *)side)->rtt); }

static int mode_serve(void) {
  Warm side;
  side.ctx = make_ctx();
  session_open(&side.rtt, side.ctx, 0, "rtt");
  BenchWarm w = {warm_connect, warm_rtt, &side};
  bench_warm_loop(&w);
  ws_close(&side.rtt);
  SSL_CTX_free(side.ctx);
  return 0;
}

static int mode_multi(const char *counts_arg) {
  long counts[8];
  size_t nc = parse_counts(counts_arg, counts, 8, 10000);
  SSL_CTX *ctx = make_ctx();
  Conn *conns = calloc((size_t)counts[nc - 1], sizeof *conns);
  if (!conns) die("out of memory");
  long open = 0;
  for (size_t i = 0; i < nc; i++) {
    for (; open < counts[i]; open++) session_open(&conns[open], ctx, 0, "multi");
    printf("floor.multi.%ld.rss_kib %ld\n", counts[i], proc_status_kib("VmRSS"));
    printf("floor.multi.%ld.threads %d\n", counts[i], thread_count());
  }
  for (long i = 0; i < open; i++) ws_close(&conns[i]);
  free(conns);
  SSL_CTX_free(ctx);
  return 0;
}

static int mode_idle(const char *secs_arg) {
  long secs = parse_count(secs_arg, "the idle seconds", 86400);
  SSL_CTX *ctx = make_ctx();
  Conn c;
  session_open(&c, ctx, 0, "idle");
  int64_t cpu0, cpu1;
  long vcs0, vcs1, ics0, ics1;
  self_usage(&cpu0, &vcs0, &ics0);
  int64_t start = mono_ns(), end = start + secs * 1000000000LL, now;
  while ((now = mono_ns()) < end) {
    struct pollfd p = {c.fd, POLLIN, 0};
    int left_ms = (int)((end - now) / 1000000) + 1;
    int r = poll(&p, 1, left_ms);
    if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    if (r > 0) { /* a frame (ping, or anything else): read and drop it */
      char *msg;
      size_t len;
      ws_recv(&c, &msg, &len);
      free(msg);
    }
  }
  self_usage(&cpu1, &vcs1, &ics1);
  print_idle("floor", (double)(mono_ns() - start) / 1e9, cpu1 - cpu0, vcs1 - vcs0, ics1 - ics0);
  ws_close(&c);
  SSL_CTX_free(ctx);
  return 0;
}

int main(int argc, char **argv) {
  bench_prog = "floor";
  const char *usage = "usage: floor cold [--discover] [--eager-roots] | serve | multi 1,10,100 | "
                      "idle SECONDS";
  if (argc < 2) die("%s", usage);
  load_env();
  if (strcmp(argv[1], "cold") == 0) {
    int discovering = 0;
    for (int i = 2; i < argc; i++) {
      if (strcmp(argv[i], "--discover") == 0) discovering = 1;
      else if (strcmp(argv[i], "--eager-roots") == 0) eager_roots = 1;
      else die("%s", usage);
    }
    return mode_cold(discovering);
  }
  if (strcmp(argv[1], "serve") == 0 && argc == 2) return mode_serve();
  if (strcmp(argv[1], "multi") == 0 && argc == 3) return mode_multi(argv[2]);
  if (strcmp(argv[1], "idle") == 0 && argc == 3) return mode_idle(argv[2]);
  die("%s", usage);
}
