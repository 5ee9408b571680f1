// `dadi pull` as a small native program (dist/cli/dadi-pull, built by scripts/bundle-cli.ts when a
// C compiler is there; bin/dadi runs it when it exists). The pull is one line of JSON to the running
// dadi snapshotter's line socket and one line back (snapshotter/pull-wire.ts): what pull-remote.ts
// does, without node's start. A cold `dadi pull` (page cache dropped, as the benchmark does before
// every run) spent 60-70 ms starting node and the pull bundle, against ~5 ms for this program.
//
// This program does only that request. Anything else runs the pull bundle instead (exec of
// `node dist/cli/start.cjs pull ARGS…`, with the same arguments and environment): help, an option
// it does not know, no --snapshotter-address (the address is then the config file's, which only
// the bundle reads), and a line socket that is not there (the bundle then asks over gRPC or pulls
// in-process), or any other failure to connect (the bundle reports it in its words). For an
// answer, its output is the bundle's, byte for byte: the plain lines, `--json` (as
// JSON.stringify(…, null, 2) prints it), `--timings` (whose first step is "CLI start") and a
// failed pull's `dadi: MESSAGE`, exit code 1; an answer that is not JSON is reported in its own words.
//
// Build: cc -O2 -o dadi-pull pull-client.c (C99 and POSIX only).

#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/** Bound on the answer line (pull-wire.ts MAX_PULL_MESSAGE_BYTES). */
#define MAX_MESSAGE (1 << 20)
/** The pull's own steps are bounded; this bounds the call (pull-client.ts DEFAULT_TIMEOUT_MS). */
#define TIMEOUT_MS 600000

static char **g_argv;
static double g_start;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/** Run the pull bundle with this command line instead (never returns). */
static void fallback(void) {
  // The bundle lies beside this program: found through /proc, else through the path bin/dadi ran.
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) self[n] = 0;
  else snprintf(self, sizeof self, "%s", g_argv[-1]);
  char *slash = strrchr(self, '/');
  if (!slash) {
    fprintf(stderr, "dadi: cannot find the pull bundle beside %s\n", self);
    exit(2);
  }
  *slash = 0;
  char start[PATH_MAX + 16];
  snprintf(start, sizeof start, "%s/start.cjs", self);
  int argc = 0;
  while (g_argv[argc]) argc++;
  char **args = calloc(argc + 4, sizeof *args);
  args[0] = "node";
  args[1] = start;
  args[2] = "pull";
  for (int i = 0; i < argc; i++) args[3 + i] = g_argv[i];
  execvp("node", args);
  fprintf(stderr, "dadi: cannot run node: %s\n", strerror(errno));
  exit(2);
}

// --- output ---

typedef struct {
  char *p;
  size_t len, cap;
} Buf;

static void put(Buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void puts_(Buf *b, const char *s) { put(b, s, strlen(s)); }
static void putf(Buf *b, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

/** A JSON string of `s` (JSON.stringify's escapes: the two quotes, backslash, C0 controls). */
static void json_string(Buf *b, const char *s) {
  puts_(b, "\"");
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    switch (*c) {
    case '"': puts_(b, "\\\""); break;
    case '\\': puts_(b, "\\\\"); break;
    case '\b': puts_(b, "\\b"); break;
    case '\f': puts_(b, "\\f"); break;
    case '\n': puts_(b, "\\n"); break;
    case '\r': puts_(b, "\\r"); break;
    case '\t': puts_(b, "\\t"); break;
    default:
      if (*c < 0x20) putf(b, "\\u%04x", *c);
      else put(b, (const char *)c, 1);
    }
  }
  puts_(b, "\"");
}

// --- reading the answer (compact JSON from JSON.stringify, whitespace tolerated) ---

static const char *ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return p;
}

/** The end of the JSON string starting at `p` (its opening quote), or NULL. */
static const char *skip_string(const char *p) {
  for (p++; *p; p++) {
    if (*p == '\\') {
      if (!*++p) return NULL;
    } else if (*p == '"') return p + 1;
  }
  return NULL;
}

/** The end of the JSON value starting at `p`, or NULL if it is not one. */
static const char *skip_value(const char *p) {
  p = ws(p);
  if (*p == '"') return skip_string(p);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        if (*p != '"' || !(p = skip_string(p))) return NULL;
        p = ws(p);
        if (*p++ != ':') return NULL;
      }
      if (!(p = skip_value(p))) return NULL;
      p = ws(p);
      if (*p == close) return p + 1;
      if (*p++ != ',') return NULL;
      p = ws(p);
    }
  }
  const char *q = p;
  while (*q && strchr("+-.0123456789eEtruefalsn", *q)) q++;
  return q > p ? q : NULL;
}

/** Call `each` for each member of the object at `p`; false if it is not an object. */
static int members(const char *p, int (*each)(const char *key, const char *key_end, const char *v, const char *v_end, void *),
                   void *ctx) {
  p = ws(p);
  if (*p != '{') return 0;
  p = ws(p + 1);
  if (*p == '}') return 1;
  for (;;) {
    const char *k = p;
    if (*p != '"' || !(p = skip_string(p))) return 0;
    const char *k_end = p;
    p = ws(p);
    if (*p++ != ':') return 0;
    const char *v = ws(p);
    if (!(p = skip_value(v))) return 0;
    if (!each(k, k_end, v, p, ctx)) return 0;
    p = ws(p);
    if (*p == '}') return 1;
    if (*p++ != ',') return 0;
    p = ws(p);
  }
}

static int key_is(const char *k, const char *k_end, const char *name) {
  size_t n = strlen(name);
  return (size_t)(k_end - k) == n + 2 && memcmp(k + 1, name, n) == 0;
}

static void put_utf8(Buf *b, unsigned cp) {
  char u[4];
  if (cp < 0x80) u[0] = (char)cp, put(b, u, 1);
  else if (cp < 0x800) u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), put(b, u, 2);
  else if (cp < 0x10000)
    u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3f)), u[2] = (char)(0x80 | (cp & 0x3f)), put(b, u, 3);
  else
    u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3f)), u[2] = (char)(0x80 | (cp >> 6 & 0x3f)),
    u[3] = (char)(0x80 | (cp & 0x3f)), put(b, u, 4);
}

static int hex4(const char *p, unsigned *v) {
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
    if (d == 16) return 0;
    *v = *v << 4 | d;
  }
  return 1;
}

/**
 * The text of the JSON string at [p, end) (quotes included) as UTF-8; a lone surrogate becomes
 * U+FFFD, as node writes such a string.
 */
static void unescape(Buf *b, const char *p, const char *end) {
  for (p++, end--; p < end; p++) {
    if (*p != '\\') {
      put(b, p, 1);
      continue;
    }
    char c = *++p;
    unsigned cp;
    switch (c) {
    case 'b': puts_(b, "\b"); break;
    case 'f': puts_(b, "\f"); break;
    case 'n': puts_(b, "\n"); break;
    case 'r': puts_(b, "\r"); break;
    case 't': puts_(b, "\t"); break;
    case 'u':
      if (end - p < 5 || !hex4(p + 1, &cp)) return;
      p += 4;
      if (cp >= 0xd800 && cp < 0xdc00) {
        unsigned lo;
        if (end - p >= 7 && p[1] == '\\' && p[2] == 'u' && hex4(p + 3, &lo) && lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          p += 6;
        } else cp = 0xfffd;
      } else if (cp >= 0xdc00 && cp < 0xe000) cp = 0xfffd;
      put_utf8(b, cp);
      break;
    default: put(b, &c, 1);
    }
  }
}

/**
 * util/quote.ts terminalSafe on UTF-8 text: C0 controls but newline and tab, DEL and C1 as \xNN,
 * U+FFFD as \ufffd.
 */
static void terminal_safe(Buf *out, const char *s) {
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if ((*c < 0x20 && *c != '\n' && *c != '\t') || *c == 0x7f) putf(out, "\\x%02x", *c);
    else if (*c == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) putf(out, "\\x%02x", *++c);
    else if (*c == 0xef && c[1] == 0xbf && c[2] == 0xbd) puts_(out, "\\ufffd"), c += 2;
    else put(out, (const char *)c, 1);
  }
}

/**
 * The JSON value at [p, end) as JSON.stringify(value, null, 2) prints it at `depth`: members and
 * elements on their own lines, indented by two spaces a level, `"key": value`, `{}` and `[]` empty.
 */
static const char *pretty(Buf *b, const char *p, int depth) {
  p = ws(p);
  if (*p != '{' && *p != '[') {
    const char *end = skip_value(p);
    put(b, p, (size_t)(end - p));
    return end;
  }
  char open = *p, close = open == '{' ? '}' : ']';
  p = ws(p + 1);
  put(b, &open, 1);
  if (*p == close) {
    put(b, &close, 1);
    return p + 1;
  }
  for (;;) {
    puts_(b, "\n");
    for (int i = 0; i <= depth; i++) puts_(b, "  ");
    if (open == '{') {
      const char *k_end = skip_string(p);
      put(b, p, (size_t)(k_end - p));
      puts_(b, ": ");
      p = ws(ws(k_end) + 1);
    }
    p = ws(pretty(b, p, depth + 1));
    if (*p == close) break;
    p = ws(p + 1); // the comma
    puts_(b, ",");
  }
  puts_(b, "\n");
  for (int i = 0; i < depth; i++) puts_(b, "  ");
  put(b, &close, 1);
  return p + 1;
}

// --- the reply ---

typedef struct {
  Buf result; // the reply's members but steps, compact, comma-separated
  const char *steps, *steps_end;
  const char *name, *name_end, *digest, *digest_end;
  const char *layers, *layers_end, *bytes, *bytes_end;
} Reply;

static int reply_member(const char *k, const char *k_end, const char *v, const char *v_end, void *ctx) {
  Reply *r = ctx;
  if (key_is(k, k_end, "steps")) {
    if (*v != '[') return 0;
    r->steps = v, r->steps_end = v_end;
    return 1;
  }
  if (key_is(k, k_end, "name")) r->name = v, r->name_end = v_end;
  else if (key_is(k, k_end, "manifestDigest")) r->digest = v, r->digest_end = v_end;
  else if (key_is(k, k_end, "layers")) r->layers = v, r->layers_end = v_end;
  else if (key_is(k, k_end, "registryBytes")) r->bytes = v, r->bytes_end = v_end;
  if (r->result.len) puts_(&r->result, ",");
  put(&r->result, k, (size_t)(k_end - k));
  puts_(&r->result, ":");
  put(&r->result, v, (size_t)(v_end - v));
  return 1;
}

typedef struct {
  const char *step, *step_end, *ms, *ms_end;
} Step;

static int step_member(const char *k, const char *k_end, const char *v, const char *v_end, void *ctx) {
  Step *s = ctx;
  if (key_is(k, k_end, "step") && *v == '"') s->step = v, s->step_end = v_end;
  else if (key_is(k, k_end, "ms")) s->ms = v, s->ms_end = v_end;
  return 1;
}

/** Each step of the array at `p`; the number of them, or -1 if one is not {step, ms}. */
static int each_step(const char *p, int (*each)(Step *, void *), void *ctx) {
  int n = 0;
  p = ws(p + 1);
  if (*p == ']') return 0;
  for (;;) {
    Step s = {0};
    if (!members(p, step_member, &s) || !s.step || !s.ms) return -1;
    if (each && !each(&s, ctx)) return -1;
    n++;
    p = ws(skip_value(p));
    if (*p == ']') return n;
    p = ws(p + 1);
  }
}

static int sum_ms(Step *s, void *ctx) {
  *(double *)ctx += strtod(s->ms, NULL);
  return 1;
}

/** `${String(ms).padStart(6)} ms  ${step}`, as pull-remote.ts prints a step. */
static int print_step(Step *s, void *ctx) {
  Buf *err = ctx;
  putf(err, "%6.*s ms  ", (int)(s->ms_end - s->ms), s->ms);
  unescape(err, s->step, s->step_end);
  puts_(err, "\n");
  return 1;
}

static void fail(const char *address, const char *what) {
  Buf e = {0}, text = {0};
  puts_(&text, "dadi snapshotter ");
  puts_(&text, address);
  puts_(&text, ": ");
  puts_(&text, what);
  puts_(&e, "dadi: ");
  terminal_safe(&e, text.p);
  puts_(&e, "\n");
  write_all(2, e.p, e.len);
  exit(1);
}

int main(int argc, char **argv) {
  g_start = now_ms();
  g_argv = argv + 1;
  // The options of cli/pull.ts; every form this does not read runs the bundle, which reads them all.
  const char *ref = NULL, *containerd = NULL, *ns = "default", *snapshotter = "dadi", *address = NULL;
  const char *hosts = NULL, *platform = NULL;
  int insecure = 0, json = 0, timings = 0;
  if (argc < 2 || strcmp(argv[1], "pull") != 0) fallback();
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char **value = NULL;
    if (!strcmp(a, "--containerd-address")) value = &containerd;
    else if (!strcmp(a, "-n") || !strcmp(a, "--namespace")) value = &ns;
    else if (!strcmp(a, "--snapshotter")) value = &snapshotter;
    else if (!strcmp(a, "--snapshotter-address")) value = &address;
    else if (!strcmp(a, "--hosts-dir")) value = &hosts;
    else if (!strcmp(a, "--platform")) value = &platform;
    else if (!strcmp(a, "--insecure")) insecure = 1;
    else if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--timings")) timings = 1;
    else if (a[0] != '-' && !ref) ref = a;
    else fallback(); // --config, --help, `--opt=value`, a second argument, `--`…
    if (value) {
      // commander takes the next word as the value, whatever it is; a missing one is its error.
      if (i + 1 >= argc) fallback();
      *value = argv[++i];
    }
  }
  if (!ref || !containerd || !address) fallback();

  Buf req = {0};
  puts_(&req, "{\"ref\":");
  json_string(&req, ref);
  puts_(&req, ",\"containerdAddress\":");
  json_string(&req, containerd);
  puts_(&req, ",\"namespace\":");
  json_string(&req, ns);
  puts_(&req, ",\"snapshotter\":");
  json_string(&req, snapshotter);
  if (hosts) puts_(&req, ",\"hostsDir\":"), json_string(&req, hosts);
  if (insecure) puts_(&req, ",\"insecure\":true");
  if (platform) puts_(&req, ",\"platform\":"), json_string(&req, platform);
  puts_(&req, "}\n");

  // pull-wire.ts pullSocketOf: the line socket beside the snapshotter's.
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(address) + sizeof ".pull" > sizeof sa.sun_path) fallback();
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s.pull", address);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fallback();
  double cli_start = now_ms() - g_start;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    // Nothing listens there (the bundle tells an older snapshotter, gRPC only, from none), or
    // another failure, which the bundle reports in its words: nothing was asked yet.
    close(fd);
    fallback();
  }
  // The request is sent: from here on every outcome is this program's to report.
  signal(SIGPIPE, SIG_IGN);
  write_all(fd, req.p, req.len);

  Buf line = {0};
  double deadline = now_ms() + TIMEOUT_MS;
  for (;;) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int left = (int)(deadline - now_ms());
    int r = left > 0 ? poll(&pfd, 1, left) : 0;
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) {
      char what[64];
      snprintf(what, sizeof what, "no answer to the pull within %d ms", TIMEOUT_MS);
      fail(address, what);
    }
    char chunk[65536];
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(address, errno == ECONNRESET ? "read ECONNRESET" : strerror(errno));
    if (n == 0) fail(address, "the pull ended without an answer");
    char *nl = memchr(chunk, '\n', (size_t)n);
    put(&line, chunk, nl ? (size_t)(nl - chunk) : (size_t)n);
    if (line.len > MAX_MESSAGE) {
      char what[64];
      snprintf(what, sizeof what, "pull reply over %d bytes", MAX_MESSAGE);
      fail(address, what);
    }
    if (nl) break;
  }
  close(fd);
  double elapsed = now_ms() - g_start;

  // pull-client.ts answerOf: {"reply": …} or {"error": {"code", "message"}}.
  const char *a = ws(line.p ? line.p : "");
  if (*a != '{' || !skip_value(a) || *ws(skip_value(a))) fail(address, "a pull answer that is not JSON");
  Reply r = {0};
  const char *reply = NULL, *reply_end = NULL, *error = NULL, *error_end = NULL;
  {
    const char *p = ws(a + 1);
    while (*p == '"') {
      const char *k_end = skip_string(p), *v = ws(ws(k_end) + 1), *v_end = skip_value(v);
      if (key_is(p, k_end, "reply") && *v == '{') reply = v, reply_end = v_end;
      if (key_is(p, k_end, "error") && *v == '{') error = v, error_end = v_end;
      p = ws(v_end);
      if (*p == ',') p = ws(p + 1);
    }
  }
  if (!reply && error) {
    // {code, message}: the message is what the CLI prints (a DadiError: exit 1).
    const char *m = NULL, *m_end = NULL;
    const char *p = ws(error + 1);
    while (*p == '"') {
      const char *k_end = skip_string(p), *v = ws(ws(k_end) + 1), *v_end = skip_value(v);
      if (key_is(p, k_end, "message") && *v == '"') m = v, m_end = v_end;
      p = ws(v_end);
      if (*p == ',') p = ws(p + 1);
    }
    (void)error_end;
    if (!m) fail(address, "a malformed pull answer");
    Buf text = {0}, e = {0};
    unescape(&text, m, m_end);
    puts_(&e, "dadi: ");
    terminal_safe(&e, text.len ? text.p : "pull failed");
    puts_(&e, "\n");
    write_all(2, e.p, e.len);
    return 1;
  }
  if (!reply || !members(reply, reply_member, &r) || !r.steps || !r.name || !r.digest || !r.layers || !r.bytes)
    fail(address, "a malformed pull answer");
  (void)reply_end;
  double in_snapshotter = 0;
  if (each_step(r.steps, sum_ms, &in_snapshotter) < 0) fail(address, "a malformed pull answer");
  long start_ms = (long)(cli_start + 0.5);
  double req_ms = elapsed - cli_start - in_snapshotter;
  long request_ms = req_ms > 0 ? (long)(req_ms + 0.5) : 0;

  Buf out = {0}, err = {0}, after = {0};
  if (json) {
    Buf obj = {0};
    puts_(&obj, "{");
    put(&obj, r.result.p ? r.result.p : "", r.result.len);
    if (timings) {
      if (r.result.len) puts_(&obj, ",");
      putf(&obj, "\"steps\":[{\"step\":\"CLI start\",\"ms\":%ld},{\"step\":\"request to the snapshotter\",\"ms\":%ld}",
           start_ms, request_ms);
      const char *inner = ws(r.steps + 1);
      if (*inner != ']') puts_(&obj, ","), put(&obj, inner, (size_t)(r.steps_end - 1 - inner));
      puts_(&obj, "]");
    }
    puts_(&obj, "}");
    pretty(&out, obj.p, 0);
    puts_(&out, "\n");
  } else {
    if (timings) {
      putf(&err, "%6ld ms  CLI start\n%6ld ms  request to the snapshotter\n", start_ms, request_ms);
      each_step(r.steps, print_step, &err);
    }
    // console.log / console.error of the reply's fields, as pull-remote.ts prints them.
    Buf name = {0}, digest = {0};
    unescape(&name, r.name, r.name_end);
    unescape(&digest, r.digest, r.digest_end);
    put(&out, name.p ? name.p : "", name.len);
    puts_(&out, "\n");
    puts_(&after, "pulled ");
    put(&after, name.p ? name.p : "", name.len);
    puts_(&after, " (");
    put(&after, digest.p ? digest.p : "", digest.len);
    puts_(&after, ", ");
    put(&after, r.layers, (size_t)(r.layers_end - r.layers));
    puts_(&after, " DADI layers left remote; ");
    put(&after, r.bytes, (size_t)(r.bytes_end - r.bytes));
    puts_(&after, " bytes fetched)\n");
  }
  if (err.len) write_all(2, err.p, err.len);
  write_all(1, out.p, out.len);
  if (after.len) write_all(2, after.p, after.len);
  return 0;
}
