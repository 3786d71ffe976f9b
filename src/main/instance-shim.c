// The per-instance shim (conmon's job), native: runs the app, writes its output scrubbed and timestamped, records
// its exit. A node shim cost ~8 MB of private memory per instance; this one costs a few hundred kilobytes.
//
// The process runtime (src/control/runtime/process-runtime.ts) starts this detached (its own session and process
// group) with the instance id as its only argument (for `ps`), and writes its config on stdin as `key=value`
// records ended by NUL bytes, then closes it: secrets travel through a pipe, never through a file or the shim's
// own environment. Keys: instance, command, cwd, log, exit; env, scrub (NAME=VALUE) and cgroup, repeated;
// optional max_queue_bytes, max_line_bytes, partial_flush_ms.
//
// What it guarantees (each held by a test in src/control/runtime/ and test/):
// - The app runs as `/bin/sh -c "exec <command>"` in the shim's process group, so a stop (SIGTERM to the group)
//   reaches both; the shim ignores SIGTERM, SIGINT and SIGHUP once the app runs and stays until it has exited.
// - The app never outlives the shim: it gets PR_SET_PDEATHSIG(SIGKILL) before the exec (kept through the execs of
//   sh and the app), and the shim forks it from its only thread at that time, the main one, which lives as long
//   as the shim does.
// - It joins its cgroups (resource limits) before its exec: the shim places it, then lets it go on.
// - Both streams go to one file, one JSON object per line: {"t":<epoch ms>,"s":"out"|"err","l":"..."}, with
//   secret values replaced by [secret:NAME] before the disk, even when split across two writes; a partial line is
//   written after ~200 ms of silence (but for a tail that may start a secret value: that waits for what follows); lines are split at 16 KiB without cutting a UTF-8 character; invalid UTF-8
//   becomes U+FFFD (as node decodes it).
// - The app never waits for the disk: a writer thread writes while the main thread reads the pipes; the queue is
//   bounded (32 MiB) and what overflows it is counted and marked ([berth: N lines dropped]), never silent.
// - After the app exits (and its pipes close, or 2 s pass), everything queued is written, then
//   <instance>.exit ({"code","signal","t"}, via a rename), and the shim exits with the app's code (128 + signal).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_QUEUE_BYTES ((size_t)32 * 1024 * 1024)
#define DEFAULT_MAX_LINE_BYTES ((size_t)16 * 1024)
#define DEFAULT_PARTIAL_FLUSH_MS 200
/** How long to wait, after the app exited, for processes it left behind to close the output pipes. */
#define CLOSE_GRACE_MS 2000
/** Values shorter than this are not scrubbed (as MIN_SCRUB_LENGTH in src/control/secrets/scrubber.ts). */
#define MIN_SCRUB_LENGTH 4
/** Exit code when the shim itself fails (EX_SOFTWARE). */
#define EXIT_SHIM_FAILED 70
/** A large buffer that was emptied is given back rather than kept for the next burst. */
#define KEEP_CAPACITY ((size_t)256 * 1024)

// ---------------------------------------------------------------------------------------------------------------
// Failing, and byte buffers

static const char *log_path_for_errors;

static void append_record(int fd, const char *kind, const char *text, size_t length);

/** The shim itself failed: say so in the instance's log when its path is known, and exit 70. */
static void die(const char *format, ...) {
  char message[1024];
  va_list args;
  va_start(args, format);
  int n = vsnprintf(message, sizeof message, format, args);
  va_end(args);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof message) n = sizeof message - 1;
  if (log_path_for_errors != NULL) {
    int fd = open(log_path_for_errors, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
      char line[1100];
      int m = snprintf(line, sizeof line, "[berth shim failed: %.*s]", n, message);
      append_record(fd, "err", line, m < 0 ? 0 : (size_t)m < sizeof line ? (size_t)m : sizeof line - 1);
      close(fd);
    }
  }
  _exit(EXIT_SHIM_FAILED);
}

struct buf {
  unsigned char *data;
  size_t len;
  size_t cap;
};

static void buf_reserve(struct buf *b, size_t extra) {
  if (b->len + extra <= b->cap) return;
  size_t cap = b->cap == 0 ? 256 : b->cap;
  while (cap < b->len + extra) cap *= 2;
  unsigned char *data = realloc(b->data, cap);
  if (data == NULL) die("out of memory (%zu bytes)", cap);
  b->data = data;
  b->cap = cap;
}

static void buf_put(struct buf *b, const void *data, size_t n) {
  if (n == 0) return;
  buf_reserve(b, n);
  memcpy(b->data + b->len, data, n);
  b->len += n;
}

static void buf_puts(struct buf *b, const char *s) { buf_put(b, s, strlen(s)); }

/** Drops the first `n` bytes. */
static void buf_consume(struct buf *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

/** Empties the buffer, giving a large one's memory back. */
static void buf_clear(struct buf *b) {
  b->len = 0;
  if (b->cap > KEEP_CAPACITY) {
    free(b->data);
    b->data = NULL;
    b->cap = 0;
  }
}

static int64_t now_ms(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON records: node's JSON.stringify of a string decoded from UTF-8 (invalid sequences become U+FFFD, one per
// maximal subpart, as the WHATWG decoder does)

static void json_char_escape(struct buf *out, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  switch (c) {
    case '"': buf_puts(out, "\\\""); return;
    case '\\': buf_puts(out, "\\\\"); return;
    case '\b': buf_puts(out, "\\b"); return;
    case '\f': buf_puts(out, "\\f"); return;
    case '\n': buf_puts(out, "\\n"); return;
    case '\r': buf_puts(out, "\\r"); return;
    case '\t': buf_puts(out, "\\t"); return;
    default: {
      char escaped[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      buf_put(out, escaped, 6);
    }
  }
}

static void json_string(struct buf *out, const unsigned char *s, size_t n) {
  static const unsigned char replacement[] = {0xEF, 0xBF, 0xBD};
  buf_put(out, "\"", 1);
  size_t i = 0;
  while (i < n) {
    unsigned char b = s[i];
    if (b < 0x80) {
      if (b < 0x20 || b == '"' || b == '\\') json_char_escape(out, b);
      else buf_put(out, &b, 1);
      i++;
      continue;
    }
    size_t need;
    unsigned char lower = 0x80, upper = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b >= 0xE0 && b <= 0xEF) {
      need = 2;
      if (b == 0xE0) lower = 0xA0;
      if (b == 0xED) upper = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3;
      if (b == 0xF0) lower = 0x90;
      if (b == 0xF4) upper = 0x8F;
    } else {
      buf_put(out, replacement, 3);
      i++;
      continue;
    }
    size_t j = i + 1;
    bool valid = true;
    for (size_t k = 0; k < need; k++, j++) {
      if (j >= n || s[j] < (k == 0 ? lower : 0x80) || s[j] > (k == 0 ? upper : 0xBF)) {
        valid = false;
        break;
      }
    }
    if (valid) buf_put(out, s + i, j - i);
    else buf_put(out, replacement, 3);
    // An invalid byte that broke a sequence starts the next one.
    i = j;
  }
  buf_put(out, "\"", 1);
}

/** One line of the output file, `{"t":...,"s":"...","l":"..."}\n`, appended to `out`. */
static void format_record(struct buf *out, int64_t t, const char *kind, const unsigned char *text, size_t n) {
  char head[64];
  int m = snprintf(head, sizeof head, "{\"t\":%lld,\"s\":\"%s\",\"l\":", (long long)t, kind);
  buf_put(out, head, (size_t)m);
  json_string(out, text, n);
  buf_put(out, "}\n", 2);
}

/** Writes one record straight to `fd` (the shim's own messages on paths where the queue is not running). */
static void append_record(int fd, const char *kind, const char *text, size_t length) {
  struct buf line = {0};
  format_record(&line, now_ms(CLOCK_REALTIME), kind, (const unsigned char *)text, length);
  size_t done = 0;
  while (done < line.len) {
    ssize_t w = write(fd, line.data + done, line.len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) break;
    done += (size_t)w;
  }
  free(line.data);
}

// ---------------------------------------------------------------------------------------------------------------
// The config, from stdin

struct secret {
  const char *name;
  const unsigned char *value;
  size_t len;
  struct buf replacement;
};

struct config {
  const char *instance;
  const char *command;
  const char *cwd;
  const char *log_path;
  const char *exit_path;
  char **env;
  size_t env_count;
  struct secret *secrets;
  size_t secret_count;
  const char **cgroups;
  size_t cgroup_count;
  size_t max_queue_bytes;
  size_t max_line_bytes;
  int64_t partial_flush_ms;
};

static void *grow(void *array, size_t count, size_t size) {
  void *bigger = realloc(array, (count + 1) * size);
  if (bigger == NULL) die("out of memory");
  return bigger;
}

static size_t parse_size(const char *key, const char *value) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(value, &end, 10);
  if (errno != 0 || *end != '\0' || end == value || n == 0) die("config: %s: expected a positive number, got %s", key, value);
  return (size_t)n;
}

/** Longest first, so that a value containing another is replaced whole. */
static int by_length_descending(const void *a, const void *b) {
  size_t la = ((const struct secret *)a)->len, lb = ((const struct secret *)b)->len;
  return la < lb ? 1 : la > lb ? -1 : 0;
}

static void read_config(struct config *config) {
  struct buf input = {0};
  for (;;) {
    buf_reserve(&input, 65536);
    ssize_t n = read(STDIN_FILENO, input.data + input.len, input.cap - input.len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("reading the config: %s", strerror(errno));
    if (n == 0) break;
    input.len += (size_t)n;
  }
  buf_put(&input, "", 1);  // the last record ends here even if its NUL is missing
  *config = (struct config){
      .max_queue_bytes = DEFAULT_MAX_QUEUE_BYTES,
      .max_line_bytes = DEFAULT_MAX_LINE_BYTES,
      .partial_flush_ms = DEFAULT_PARTIAL_FLUSH_MS,
  };
  // Records point into `input`, which lives as long as the shim.
  for (size_t at = 0; at + 1 < input.len;) {
    char *record = (char *)input.data + at;
    at += strlen(record) + 1;
    char *equals = strchr(record, '=');
    if (equals == NULL) die("config: a record without '=' (%.40s)", record);
    *equals = '\0';
    const char *key = record, *value = equals + 1;
    if (strcmp(key, "instance") == 0) config->instance = value;
    else if (strcmp(key, "command") == 0) config->command = value;
    else if (strcmp(key, "cwd") == 0) config->cwd = value;
    else if (strcmp(key, "log") == 0) config->log_path = value;
    else if (strcmp(key, "exit") == 0) config->exit_path = value;
    else if (strcmp(key, "env") == 0) {
      config->env = grow(config->env, config->env_count, sizeof *config->env);
      config->env[config->env_count++] = (char *)value;
    } else if (strcmp(key, "scrub") == 0) {
      char *name_end = strchr(value, '=');
      if (name_end == NULL) die("config: scrub record without NAME=");
      *name_end = '\0';
      size_t len = strlen(name_end + 1);
      if (len < MIN_SCRUB_LENGTH) continue;
      config->secrets = grow(config->secrets, config->secret_count, sizeof *config->secrets);
      struct secret *secret = &config->secrets[config->secret_count++];
      *secret = (struct secret){.name = value, .value = (const unsigned char *)name_end + 1, .len = len};
      buf_puts(&secret->replacement, "[secret:");
      buf_puts(&secret->replacement, value);
      buf_puts(&secret->replacement, "]");
    } else if (strcmp(key, "cgroup") == 0) {
      config->cgroups = grow(config->cgroups, config->cgroup_count, sizeof *config->cgroups);
      config->cgroups[config->cgroup_count++] = value;
    } else if (strcmp(key, "max_queue_bytes") == 0) config->max_queue_bytes = parse_size(key, value);
    else if (strcmp(key, "max_line_bytes") == 0) config->max_line_bytes = parse_size(key, value);
    else if (strcmp(key, "partial_flush_ms") == 0) config->partial_flush_ms = (int64_t)parse_size(key, value);
    else die("config: unknown key %s", key);
  }
  if (config->log_path != NULL) log_path_for_errors = config->log_path;
  const char *missing = config->instance == NULL ? "instance"
                        : config->command == NULL ? "command"
                        : config->cwd == NULL ? "cwd"
                        : config->log_path == NULL ? "log"
                        : config->exit_path == NULL ? "exit"
                                                    : NULL;
  if (missing != NULL) die("config: no %s", missing);
  config->env = grow(config->env, config->env_count, sizeof *config->env);
  config->env[config->env_count] = NULL;
  qsort(config->secrets, config->secret_count, sizeof *config->secrets, by_length_descending);
}

// ---------------------------------------------------------------------------------------------------------------
// The queue to the disk: filled by the main thread, written by the writer thread

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct buf pending;
  /** Bytes taken by the writer and not written yet: they count toward the bound until they are on disk. */
  size_t in_flight;
  /** Lines not queued since the last marker (the queue was full, or a write failed). */
  size_t dropped;
  bool closing;
  size_t max_bytes;
  int fd;
} queue = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/** With the lock held: the marker for lines dropped since the last one. */
static void note_drops_locked(void) {
  if (queue.dropped == 0) return;
  char text[64];
  int n = snprintf(text, sizeof text, "[berth: %zu lines dropped]", queue.dropped);
  queue.dropped = 0;
  format_record(&queue.pending, now_ms(CLOCK_REALTIME), "err", (const unsigned char *)text, (size_t)n);
}

/** Queues one line of output as a record; drops it (counting) when the queue is full. */
static void record_line(const char *kind, const unsigned char *text, size_t n) {
  static struct buf line;
  line.len = 0;
  format_record(&line, now_ms(CLOCK_REALTIME), kind, text, n);
  pthread_mutex_lock(&queue.lock);
  if (queue.pending.len + queue.in_flight + line.len > queue.max_bytes) queue.dropped++;
  else {
    buf_put(&queue.pending, line.data, line.len);
    pthread_cond_signal(&queue.wake);
  }
  pthread_mutex_unlock(&queue.lock);
  if (line.cap > KEEP_CAPACITY) buf_clear(&line);
}

static void *writer_main(void *unused) {
  (void)unused;
  struct buf batch = {0};
  pthread_mutex_lock(&queue.lock);
  for (;;) {
    while (queue.pending.len == 0 && !queue.closing) pthread_cond_wait(&queue.wake, &queue.lock);
    if (queue.pending.len == 0) break;
    // Everything queued goes in one write: under a burst the queue batches itself.
    struct buf taken = queue.pending;
    queue.pending = batch;
    queue.pending.len = 0;
    queue.in_flight = taken.len;
    pthread_mutex_unlock(&queue.lock);
    size_t done = 0;
    bool failed = false;
    while (done < taken.len) {
      ssize_t w = write(queue.fd, taken.data + done, taken.len - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        failed = true;
        break;
      }
      done += (size_t)w;
    }
    size_t lost = 0;
    // A failed write (disk full...) loses these lines; there is no one to tell but the file itself.
    if (failed)
      for (size_t i = done; i < taken.len; i++) lost += taken.data[i] == '\n';
    batch = taken;
    buf_clear(&batch);
    pthread_mutex_lock(&queue.lock);
    queue.in_flight = 0;
    queue.dropped += lost;
    note_drops_locked();
  }
  pthread_mutex_unlock(&queue.lock);
  free(batch.data);
  return NULL;
}

// ---------------------------------------------------------------------------------------------------------------
// One output stream: scrubbed (holding back a tail that may start a secret), split into lines

struct stream {
  const char *kind;
  int fd;
  /** Bytes held back by the scrubber: they may be the start of a secret value whose rest comes next. */
  struct buf held;
  /** The current line, scrubbed, not complete yet. */
  struct buf line;
  /** When a partial line is written if nothing completes it (monotonic ms), 0 when not set. */
  int64_t flush_at;
};

static const struct config *cfg;
static size_t hold_back;

/** Length of the longest tail of `input` (shorter than a whole value) that is the start of some value. */
static size_t start_of_value_at_end(const unsigned char *input, size_t n) {
  for (size_t length = hold_back < n ? hold_back : n; length > 0; length--) {
    const unsigned char *tail = input + n - length;
    for (size_t s = 0; s < cfg->secret_count; s++) {
      const struct secret *secret = &cfg->secrets[s];
      if (secret->len > length && memcmp(tail, secret->value, length) == 0) return length;
    }
  }
  return 0;
}

/**
 * Replaces every match starting before `safe_end`, appending to `out`; returns how many input bytes that covers
 * (at least up to `safe_end`, further when a match straddles it). Earliest match wins, on a tie the longest.
 */
static size_t replace_all(const unsigned char *input, size_t n, size_t safe_end, struct buf *out) {
  size_t position = 0;
  for (;;) {
    const struct secret *best = NULL;
    size_t best_at = 0;
    for (size_t s = 0; s < cfg->secret_count; s++) {
      const struct secret *secret = &cfg->secrets[s];
      const unsigned char *found = memmem(input + position, n - position, secret->value, secret->len);
      if (found == NULL) continue;
      size_t at = (size_t)(found - input);
      if (at < safe_end && (best == NULL || at < best_at)) {
        best = secret;
        best_at = at;
      }
    }
    if (best == NULL) break;
    buf_put(out, input + position, best_at - position);
    buf_put(out, best->replacement.data, best->replacement.len);
    position = best_at + best->len;
  }
  size_t end = position > safe_end ? position : safe_end;
  buf_put(out, input + position, end - position);
  return end;
}

/** The largest cut ≤ `limit` that does not split a UTF-8 character (continuation bytes are 10xxxxxx). */
static size_t utf8_boundary(const unsigned char *data, size_t limit) {
  size_t cut = limit;
  while (cut + 4 > limit && cut > 0 && (data[cut] & 0xC0) == 0x80) cut--;
  return cut > 0 ? cut : limit;
}

/** Records one piece of a line (a trailing CR dropped, as a CRLF line ending). */
static void write_piece(struct stream *stream, const unsigned char *piece, size_t n) {
  if (n > 0 && piece[n - 1] == '\r') n--;
  record_line(stream->kind, piece, n);
}

/** Records a whole line, in pieces of at most max_line_bytes. */
static void emit(struct stream *stream, const unsigned char *line, size_t n) {
  while (n > cfg->max_line_bytes) {
    size_t cut = utf8_boundary(line, cfg->max_line_bytes);
    write_piece(stream, line, cut);
    line += cut;
    n -= cut;
  }
  write_piece(stream, line, n);
}

/** Adds scrubbed bytes to the current line, recording each line they complete; true when there was one. */
static bool take(struct stream *stream, const unsigned char *data, size_t n) {
  if (n == 0) return false;
  buf_put(&stream->line, data, n);
  unsigned char *buffer = stream->line.data;
  size_t length = stream->line.len, start = 0;
  for (;;) {
    unsigned char *newline = memchr(buffer + start, '\n', length - start);
    if (newline == NULL) break;
    emit(stream, buffer + start, (size_t)(newline - buffer) - start);
    start = (size_t)(newline - buffer) + 1;
  }
  bool completed = start > 0;
  while (length - start > cfg->max_line_bytes) {
    size_t cut = utf8_boundary(buffer + start, cfg->max_line_bytes);
    write_piece(stream, buffer + start, cut);
    start += cut;
  }
  buf_consume(&stream->line, start);
  if (stream->line.len == 0) buf_clear(&stream->line);
  return completed;
}

/**
 * Writes the partial line: after a quiet spell (`at_end` false) or at the end of the stream. What the scrubber holds
 * back (a tail that may start a secret value) is released only at the end: an app that prints a secret in two writes
 * further apart than the quiet spell would otherwise have the rest of it written in clear.
 */
static void flush_partial(struct stream *stream, bool at_end) {
  static struct buf scrubbed;
  scrubbed.len = 0;
  if (at_end && stream->held.len > 0) {
    replace_all(stream->held.data, stream->held.len, stream->held.len, &scrubbed);
    buf_clear(&stream->held);
  }
  take(stream, scrubbed.data, scrubbed.len);
  if (stream->line.len > 0) emit(stream, stream->line.data, stream->line.len);
  buf_clear(&stream->line);
  buf_clear(&scrubbed);
}

static void stream_push(struct stream *stream, const unsigned char *chunk, size_t n) {
  static struct buf scrubbed;
  scrubbed.len = 0;
  bool completed;
  if (cfg->secret_count == 0) completed = take(stream, chunk, n);
  else {
    buf_put(&stream->held, chunk, n);
    const unsigned char *input = stream->held.data;
    size_t length = stream->held.len;
    // Only a tail that could start a value is held back: any match starting before `safe_end` lies wholly inside
    // the input (else a longer tail would start a value), so lines without secrets pass at once.
    size_t safe_end = length - start_of_value_at_end(input, length);
    size_t consumed = replace_all(input, length, safe_end, &scrubbed);
    buf_consume(&stream->held, consumed);
    completed = take(stream, scrubbed.data, scrubbed.len);
    if (scrubbed.cap > KEEP_CAPACITY) buf_clear(&scrubbed);
  }
  // The quiet spell is counted from the last complete line, so a partial line waits its full time.
  if (completed) stream->flush_at = 0;
  if ((stream->line.len > 0 || stream->held.len > 0) && stream->flush_at == 0)
    stream->flush_at = now_ms(CLOCK_MONOTONIC) + cfg->partial_flush_ms;
}

// ---------------------------------------------------------------------------------------------------------------
// The app

/** Linux signal numbers by name, as node reports them (`exit` event, os.constants.signals). */
static const char *signal_name(int signal) {
  static const char *names[] = {
      [SIGHUP] = "SIGHUP",   [SIGINT] = "SIGINT",       [SIGQUIT] = "SIGQUIT", [SIGILL] = "SIGILL",
      [SIGTRAP] = "SIGTRAP", [SIGABRT] = "SIGABRT",     [SIGBUS] = "SIGBUS",   [SIGFPE] = "SIGFPE",
      [SIGKILL] = "SIGKILL", [SIGUSR1] = "SIGUSR1",     [SIGSEGV] = "SIGSEGV", [SIGUSR2] = "SIGUSR2",
      [SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM",     [SIGTERM] = "SIGTERM", [SIGSTKFLT] = "SIGSTKFLT",
      [SIGCHLD] = "SIGCHLD", [SIGCONT] = "SIGCONT",     [SIGSTOP] = "SIGSTOP", [SIGTSTP] = "SIGTSTP",
      [SIGTTIN] = "SIGTTIN", [SIGTTOU] = "SIGTTOU",     [SIGURG] = "SIGURG",   [SIGXCPU] = "SIGXCPU",
      [SIGXFSZ] = "SIGXFSZ", [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF", [SIGWINCH] = "SIGWINCH",
      [SIGIO] = "SIGIO",     [SIGPWR] = "SIGPWR",       [SIGSYS] = "SIGSYS",
  };
  return signal > 0 && signal < (int)(sizeof names / sizeof *names) && names[signal] != NULL ? names[signal] : NULL;
}

/** `<id>.exit`, written whole or not at all (a rename). */
static void write_exit(const char *path, int code, int signal) {
  size_t length = strlen(path);
  char *temporary = malloc(length + 5);
  if (temporary == NULL) die("out of memory");
  memcpy(temporary, path, length);
  memcpy(temporary + length, ".tmp", 5);
  char text[128];
  const char *name = signal_name(signal);
  char signal_json[40];
  if (signal == 0) snprintf(signal_json, sizeof signal_json, "null");
  else if (name != NULL) snprintf(signal_json, sizeof signal_json, "\"%s\"", name);
  else snprintf(signal_json, sizeof signal_json, "\"SIG%d\"", signal);
  char code_json[16];
  if (signal == 0) snprintf(code_json, sizeof code_json, "%d", code);
  else snprintf(code_json, sizeof code_json, "null");
  int n = snprintf(text, sizeof text, "{\"code\":%s,\"signal\":%s,\"t\":%lld}\n", code_json, signal_json,
                   (long long)now_ms(CLOCK_REALTIME));
  int fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("writing %s: %s", temporary, strerror(errno));
  if (write(fd, text, (size_t)n) != n) die("writing %s: %s", temporary, strerror(errno));
  close(fd);
  if (rename(temporary, path) != 0) die("renaming %s: %s", temporary, strerror(errno));
  free(temporary);
}

/** What the child reports on its error pipe when it could not run the command. */
struct spawn_error {
  int stage;  // 0: chdir, 1: exec
  int error;
};

/**
 * Runs in the forked child, before the exec: only async-signal-safe calls. Waits until the shim has placed it in
 * its cgroups, then becomes the app.
 */
static void become_app(const int go[2], const int report[2], const int out[2], const int err[2],
                       const char *const argv[], pid_t shim) {
  // Killed by the kernel when the shim dies (the thread that forked: the shim's only thread then).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != shim) _exit(EXIT_SHIM_FAILED);
  // The shim's ends: a copy held here would keep the go pipe from ever closing.
  close(go[1]);
  close(report[0]);
  close(out[0]);
  close(err[0]);
  char byte;
  while (read(go[0], &byte, 1) < 0 && errno == EINTR) {
  }
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0 && devnull != STDIN_FILENO) {
    dup2(devnull, STDIN_FILENO);
    close(devnull);
  }
  dup2(out[1], STDOUT_FILENO);
  dup2(err[1], STDERR_FILENO);
  // The shim's own dispositions and mask are not the app's.
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  struct spawn_error failure = {.stage = 0};
  if (chdir(cfg->cwd) == 0) {
    failure.stage = 1;
    execve(argv[0], (char *const *)argv, cfg->env);
  }
  failure.error = errno;
  ssize_t ignored = write(report[1], &failure, sizeof failure);
  (void)ignored;
  _exit(127);
}

/** Moves the app into the instance's cgroups; a failure is told in its output, not fatal. */
static void join_cgroups(pid_t app) {
  for (size_t i = 0; i < cfg->cgroup_count; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cgroup.procs", cfg->cgroups[i]);
    char pid[24];
    int n = snprintf(pid, sizeof pid, "%d", (int)app);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    const char *problem = NULL;
    if (fd < 0) problem = strerror(errno);
    else {
      if (write(fd, pid, (size_t)n) != n) problem = strerror(errno);
      close(fd);
    }
    if (problem != NULL) {
      char text[4400];
      int m = snprintf(text, sizeof text, "[berth: resource limits not applied (%s): %s]", cfg->cgroups[i], problem);
      record_line("err", (const unsigned char *)text, (size_t)m < sizeof text ? (size_t)m : sizeof text - 1);
    }
  }
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  // Pipes made below must not land on 0, 1 or 2 if the shim was started with any of them closed.
  for (int fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0) return EXIT_SHIM_FAILED;
  // One malloc arena for both threads: a second one would cost its own pages per shim.
  mallopt(M_ARENA_MAX, 1);
  // A stop signals the whole group: the app gets it too. The shim stays until the app has gone (so no output is
  // lost), so these are only ever read from a signalfd; it dies on SIGKILL only.
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGHUP);
  sigaddset(&handled, SIGCHLD);
  sigprocmask(SIG_BLOCK, &handled, NULL);
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_NAME, "berth-shim");

  static struct config config;
  read_config(&config);
  cfg = &config;
  for (size_t s = 0; s < config.secret_count; s++)
    if (config.secrets[s].len - 1 > hold_back) hold_back = config.secrets[s].len - 1;

  // Stopped before the app ran: nothing to wait for.
  sigset_t pending;
  sigpending(&pending);
  const int early[] = {SIGTERM, SIGINT, SIGHUP};
  for (size_t i = 0; i < 3; i++) {
    if (sigismember(&pending, early[i])) {
      write_exit(config.exit_path, 0, early[i]);
      return 128 + early[i];
    }
  }

  queue.fd = open(config.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (queue.fd < 0) die("opening %s: %s", config.log_path, strerror(errno));
  queue.max_bytes = config.max_queue_bytes;
  int signals = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signals < 0) die("signalfd: %s", strerror(errno));

  int out_pipe[2], err_pipe[2], go_pipe[2], report_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 || pipe2(go_pipe, O_CLOEXEC) != 0 ||
      pipe2(report_pipe, O_CLOEXEC) != 0)
    die("pipe: %s", strerror(errno));
  size_t script_length = strlen(config.command) + 6;
  char *script = malloc(script_length);
  if (script == NULL) die("out of memory");
  snprintf(script, script_length, "exec %s", config.command);
  const char *const app_argv[] = {"/bin/sh", "-c", script, NULL};

  // Forked before the writer thread exists: the child of a single-threaded process.
  pid_t shim = getpid();
  pid_t app = fork();
  if (app < 0) die("fork: %s", strerror(errno));
  if (app == 0) become_app(go_pipe, report_pipe, out_pipe, err_pipe, app_argv, shim);
  close(go_pipe[0]);
  close(report_pipe[1]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  // Secrets stay only in the scrubber: the environment they came in is the app's now.
  for (size_t i = 0; i < config.env_count; i++) explicit_bzero(config.env[i], strlen(config.env[i]));

  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setstacksize(&attributes, 64 * 1024);
  pthread_t writer;
  if (pthread_create(&writer, &attributes, writer_main, NULL) != 0) die("pthread_create failed");

  join_cgroups(app);
  close(go_pipe[1]);

  struct stream streams[2] = {{.kind = "out", .fd = out_pipe[0]}, {.kind = "err", .fd = err_pipe[0]}};
  struct spawn_error failure;
  ssize_t reported;
  while ((reported = read(report_pipe[0], &failure, sizeof failure)) < 0 && errno == EINTR) {
  }
  close(report_pipe[0]);
  if (reported == (ssize_t)sizeof failure) {
    char text[4400];
    int m = failure.stage == 0
                ? snprintf(text, sizeof text, "[berth: could not run the command: chdir %s: %s]", config.cwd,
                           strerror(failure.error))
                : snprintf(text, sizeof text, "[berth: could not run the command: %s]", strerror(failure.error));
    record_line("err", (const unsigned char *)text, (size_t)m < sizeof text ? (size_t)m : sizeof text - 1);
  }

  bool exited = false;
  int code = 0, exit_signal = 0;
  int64_t give_up_at = 0;
  unsigned char chunk[65536];
  for (;;) {
    bool open_streams = streams[0].fd >= 0 || streams[1].fd >= 0;
    if (exited && !open_streams) break;
    int64_t now = now_ms(CLOCK_MONOTONIC);
    if (exited && now >= give_up_at) break;
    int64_t wake = exited ? give_up_at : INT64_MAX;
    for (int i = 0; i < 2; i++) {
      if (streams[i].flush_at == 0) continue;
      if (streams[i].flush_at <= now) {
        streams[i].flush_at = 0;
        flush_partial(&streams[i], false);
      } else if (streams[i].flush_at < wake) wake = streams[i].flush_at;
    }
    struct pollfd fds[3] = {
        {.fd = streams[0].fd, .events = POLLIN},
        {.fd = streams[1].fd, .events = POLLIN},
        {.fd = signals, .events = POLLIN},
    };
    int timeout = wake == INT64_MAX ? -1 : (int)(wake - now > 0 ? wake - now : 0);
    if (poll(fds, 3, timeout) < 0) {
      if (errno == EINTR) continue;
      die("poll: %s", strerror(errno));
    }
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        close(streams[i].fd);
        streams[i].fd = -1;
        continue;
      }
      stream_push(&streams[i], chunk, (size_t)n);
    }
    if (fds[2].revents != 0) {
      struct signalfd_siginfo info;
      while (read(signals, &info, sizeof info) == (ssize_t)sizeof info) {
      }
      int status;
      if (!exited && waitpid(app, &status, WNOHANG) == app) {
        exited = true;
        if (WIFSIGNALED(status)) exit_signal = WTERMSIG(status);
        else code = WEXITSTATUS(status);
        give_up_at = now_ms(CLOCK_MONOTONIC) + CLOSE_GRACE_MS;
      }
    }
  }

  for (int i = 0; i < 2; i++) {
    streams[i].flush_at = 0;
    flush_partial(&streams[i], true);
  }
  pthread_mutex_lock(&queue.lock);
  note_drops_locked();
  queue.closing = true;
  pthread_cond_signal(&queue.wake);
  pthread_mutex_unlock(&queue.lock);
  pthread_join(writer, NULL);
  close(queue.fd);
  write_exit(config.exit_path, code, exit_signal);
  return exit_signal != 0 ? 128 + exit_signal : code;
}
