/*
 * fault-pkcs11: a PKCS#11 module that wraps a real one (env FAULT_PKCS11_MODULE, default SoftHSM)
 * and injects faults under the control of a test, for failure tests of pkcs11-webcrypto.
 *
 *   cc -std=c99 -shared -fPIC -O2 -o faultpkcs11.so fault-pkcs11.c -ldl -lpthread
 *
 * Every entry of the function list forwards to the real module through a hook that counts the call,
 * sleeps the configured latency, and may answer a chosen CKR_ code instead (see "Injection" below).
 * Session handles are virtual (never reused), so a session that disappeared with a "removed"
 * token stays invalid after the token comes back even when the real module reuses its number.
 *
 * Control (env FAULT_PKCS11_CONTROL): an append-only command file. Before each call the module
 * stat()s it and applies the complete lines it has not applied yet (a new inode, or a file shorter
 * than what was read, starts over from the top). Commands:
 *
 *   latency <C_fn|*> <microseconds>          0 clears
 *   fail <C_fn|*> <CKR_name|number> [count N | rate K | always] [skip M]
 *                                            count N: the next N calls (default: count 1)
 *                                            rate K:  every K-th call (K-th, 2K-th, ...) from now
 *                                            skip M:  let M calls through first
 *   clear [<C_fn|*>]                         drops the latency and fail rule (of all functions)
 *   removed <0|1>                            token removal, see below
 *   reset                                    clear + removed 0 (counts are kept)
 *   zero                                     sets all counts to 0
 *   dump <path>                              writes "C_Sign 12" lines (all counts) to path
 *   # comment
 *
 * Injection: for the calls that end an operation (C_Encrypt, C_Decrypt, C_Digest, C_Sign,
 * C_SignRecover, C_Verify, C_VerifyRecover and the *Final calls) the real function runs first and
 * the injected code replaces its result, so the real operation ends as the caller believes it did
 * (a size query or CKR_BUFFER_TOO_SMALL is completed with a scratch buffer). For the *Update calls
 * of sign/verify/digest/encrypt/decrypt (and C_DigestKey) the real function is not called and the
 * operation is ended with the matching real *Final. Every other call is answered without calling
 * the real function.
 *
 * Removal: while "removed 1" holds, session calls answer CKR_DEVICE_REMOVED; C_GetTokenInfo,
 * C_GetMechanismList/Info, C_InitToken, C_OpenSession and C_CloseAllSessions answer
 * CKR_TOKEN_NOT_PRESENT; C_GetSlotList(CK_TRUE) lists no slot and C_GetSlotInfo clears
 * CKF_TOKEN_PRESENT. Sessions open when the removal is applied are closed in the real module, once
 * the session calls inside it have returned (a card pulled between two calls): SoftHSM frees a
 * session closed under another thread's call, which then fails oddly (CKR_KEY_FUNCTION_NOT_PERMITTED
 * from a copy of a key whose attributes were discarded) or reads freed memory. After "removed 0"
 * their handles answer CKR_SESSION_HANDLE_INVALID.
 *
 * Counts (env FAULT_PKCS11_COUNTS): a file the module maps shared and updates on every call, so a
 * reader sees current numbers at any time: "P11FAULT", u64 version (1), u64 n, then n u64 little-
 * endian counters: the 68 functions in function-list order, then sessions opened (successful
 * C_OpenSession), sessions closed (successful C_CloseSession / C_CloseAllSessions / removal /
 * C_Finalize), sessions open now, faults injected, calls asleep now, the most asleep at once, and
 * C_Sign calls made on the process's main thread. Without the variable, counts live in memory
 * (reachable with "dump").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pkcs11-min.h"

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

/* ---------------------------------------------------------------- function indexes and names */

enum {
#define FAULT_ENUM(name) F_##name,
  CK_FUNCTION_NAMES(FAULT_ENUM)
  F_COUNT
};

static const char *const function_names[F_COUNT] = {
#define FAULT_NAME(name) #name,
  CK_FUNCTION_NAMES(FAULT_NAME)
};

enum { X_OPENED = F_COUNT, X_CLOSED, X_OPEN_NOW, X_INJECTED, X_SLEEPING, X_SLEEPING_PEAK, X_MAIN_THREAD_SIGNS, COUNTER_COUNT };
static const char *const extra_names[COUNTER_COUNT - F_COUNT] = {
  "sessionsOpened", "sessionsClosed", "sessionsOpen", "injected", "sleepingNow", "sleepingPeak", "mainThreadSigns"
};

/* ---------------------------------------------------------------- shared state */

typedef struct {
  CK_RV code;
  int active;
  int always;
  unsigned long remaining; /* count mode: failures left */
  unsigned long rate;      /* rate mode: every rate-th call */
  unsigned long skip;      /* calls to let through first */
  unsigned long seen;      /* calls seen since the rule was set (after skip) */
} fail_rule;

enum { S_FREE = 0, S_OPEN, S_STALE, S_CLOSED };
typedef struct {
  CK_SESSION_HANDLE real;
  CK_SLOT_ID slot;
  int state;
} session_entry;

#define SESSION_BASE 0x10000UL

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* Held shared by each session call while it is inside the real module, and exclusively while a
 * removal closes the real sessions; writers first, so a steady stream of calls cannot hold one off. */
static pthread_rwlock_t inside = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static CK_RV init_error = CKR_OK;
static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST wrapper;

static unsigned long latency_us[F_COUNT];
static fail_rule rules[F_COUNT];
static int removed;

static session_entry *sessions;
static size_t session_count, session_capacity;

static const char *control_path;
static ino_t control_ino;
static dev_t control_dev;
static off_t control_offset;

typedef struct {
  char magic[8];
  uint64_t version;
  uint64_t n;
  uint64_t value[COUNTER_COUNT];
} counts_file;
static counts_file *counts;
static counts_file counts_memory;

static void bump(int index, int64_t delta) {
  __atomic_fetch_add(&counts->value[index], (uint64_t)delta, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- CKR names */

static const struct { const char *name; CK_RV value; } ckr_names[] = {
  {"CKR_OK", 0x0}, {"CKR_CANCEL", 0x1}, {"CKR_HOST_MEMORY", 0x2}, {"CKR_SLOT_ID_INVALID", 0x3},
  {"CKR_GENERAL_ERROR", 0x5}, {"CKR_FUNCTION_FAILED", 0x6}, {"CKR_ARGUMENTS_BAD", 0x7},
  {"CKR_NO_EVENT", 0x8}, {"CKR_NEED_TO_CREATE_THREADS", 0x9}, {"CKR_CANT_LOCK", 0xA},
  {"CKR_ATTRIBUTE_READ_ONLY", 0x10}, {"CKR_ATTRIBUTE_SENSITIVE", 0x11},
  {"CKR_ATTRIBUTE_TYPE_INVALID", 0x12}, {"CKR_ATTRIBUTE_VALUE_INVALID", 0x13},
  {"CKR_ACTION_PROHIBITED", 0x1B}, {"CKR_DATA_INVALID", 0x20}, {"CKR_DATA_LEN_RANGE", 0x21},
  {"CKR_DEVICE_ERROR", 0x30}, {"CKR_DEVICE_MEMORY", 0x31}, {"CKR_DEVICE_REMOVED", 0x32},
  {"CKR_ENCRYPTED_DATA_INVALID", 0x40}, {"CKR_ENCRYPTED_DATA_LEN_RANGE", 0x41},
  {"CKR_FUNCTION_CANCELED", 0x50}, {"CKR_FUNCTION_NOT_PARALLEL", 0x51},
  {"CKR_FUNCTION_NOT_SUPPORTED", 0x54}, {"CKR_KEY_HANDLE_INVALID", 0x60},
  {"CKR_KEY_SIZE_RANGE", 0x62}, {"CKR_KEY_TYPE_INCONSISTENT", 0x63},
  {"CKR_KEY_FUNCTION_NOT_PERMITTED", 0x68}, {"CKR_MECHANISM_INVALID", 0x70},
  {"CKR_MECHANISM_PARAM_INVALID", 0x71}, {"CKR_OBJECT_HANDLE_INVALID", 0x82},
  {"CKR_OPERATION_ACTIVE", 0x90}, {"CKR_OPERATION_NOT_INITIALIZED", 0x91},
  {"CKR_PIN_INCORRECT", 0xA0}, {"CKR_PIN_INVALID", 0xA1}, {"CKR_PIN_LEN_RANGE", 0xA2},
  {"CKR_PIN_EXPIRED", 0xA3}, {"CKR_PIN_LOCKED", 0xA4}, {"CKR_SESSION_CLOSED", 0xB0},
  {"CKR_SESSION_COUNT", 0xB1}, {"CKR_SESSION_HANDLE_INVALID", 0xB3},
  {"CKR_SESSION_PARALLEL_NOT_SUPPORTED", 0xB4}, {"CKR_SESSION_READ_ONLY", 0xB5},
  {"CKR_SESSION_EXISTS", 0xB6}, {"CKR_SESSION_READ_ONLY_EXISTS", 0xB7},
  {"CKR_SESSION_READ_WRITE_SO_EXISTS", 0xB8}, {"CKR_SIGNATURE_INVALID", 0xC0},
  {"CKR_SIGNATURE_LEN_RANGE", 0xC1}, {"CKR_TEMPLATE_INCOMPLETE", 0xD0},
  {"CKR_TEMPLATE_INCONSISTENT", 0xD1}, {"CKR_TOKEN_NOT_PRESENT", 0xE0},
  {"CKR_TOKEN_NOT_RECOGNIZED", 0xE1}, {"CKR_TOKEN_WRITE_PROTECTED", 0xE2},
  {"CKR_USER_ALREADY_LOGGED_IN", 0x100}, {"CKR_USER_NOT_LOGGED_IN", 0x101},
  {"CKR_USER_PIN_NOT_INITIALIZED", 0x102}, {"CKR_USER_TYPE_INVALID", 0x103},
  {"CKR_USER_ANOTHER_ALREADY_LOGGED_IN", 0x104}, {"CKR_USER_TOO_MANY_TYPES", 0x105},
  {"CKR_RANDOM_SEED_NOT_SUPPORTED", 0x120}, {"CKR_RANDOM_NO_RNG", 0x121},
  {"CKR_DOMAIN_PARAMS_INVALID", 0x130}, {"CKR_CURVE_NOT_SUPPORTED", 0x140},
  {"CKR_BUFFER_TOO_SMALL", 0x150}, {"CKR_SAVED_STATE_INVALID", 0x160},
  {"CKR_INFORMATION_SENSITIVE", 0x170}, {"CKR_STATE_UNSAVEABLE", 0x180},
  {"CKR_CRYPTOKI_NOT_INITIALIZED", 0x190}, {"CKR_CRYPTOKI_ALREADY_INITIALIZED", 0x191},
  {"CKR_MUTEX_BAD", 0x1A0}, {"CKR_MUTEX_NOT_LOCKED", 0x1A1},
  {"CKR_FUNCTION_REJECTED", 0x200}, {"CKR_VENDOR_DEFINED", 0x80000000UL},
};

static int parse_ckr(const char *text, CK_RV *out) {
  size_t i;
  char *end;
  for (i = 0; i < sizeof ckr_names / sizeof ckr_names[0]; i++) {
    if (strcmp(text, ckr_names[i].name) == 0) { *out = ckr_names[i].value; return 1; }
  }
  errno = 0;
  *out = strtoul(text, &end, 0);
  return errno == 0 && end != text && *end == '\0';
}

static int parse_ulong(const char *text, unsigned long *out) {
  char *end;
  if (!text) return 0;
  errno = 0;
  *out = strtoul(text, &end, 0);
  return errno == 0 && end != text && *end == '\0';
}

/* -1: unknown; -2: "*" (all) */
static int function_index(const char *name) {
  int i;
  if (!name) return -1;
  if (strcmp(name, "*") == 0) return -2;
  for (i = 0; i < F_COUNT; i++) if (strcmp(name, function_names[i]) == 0) return i;
  return -1;
}

/* ---------------------------------------------------------------- sessions (call with lock held) */

static CK_SESSION_HANDLE session_add(CK_SESSION_HANDLE real_handle, CK_SLOT_ID slot) {
  if (session_count == session_capacity) {
    size_t capacity = session_capacity ? session_capacity * 2 : 256;
    session_entry *grown = realloc(sessions, capacity * sizeof *grown);
    if (!grown) return 0;
    sessions = grown;
    session_capacity = capacity;
  }
  sessions[session_count].real = real_handle;
  sessions[session_count].slot = slot;
  sessions[session_count].state = S_OPEN;
  return SESSION_BASE + session_count++;
}

static session_entry *session_find(CK_SESSION_HANDLE handle) {
  if (handle < SESSION_BASE || handle - SESSION_BASE >= session_count) return NULL;
  return &sessions[handle - SESSION_BASE];
}

static void session_set_closed(session_entry *entry) {
  if (entry->state == S_OPEN) { bump(X_CLOSED, 1); bump(X_OPEN_NOW, -1); }
  entry->state = S_CLOSED;
}

/* ---------------------------------------------------------------- control file */

static void write_dump(const char *path) {
  char tmp[4096];
  FILE *file;
  int i;
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= sizeof tmp) return;
  file = fopen(tmp, "w");
  if (!file) { fprintf(stderr, "fault-pkcs11: cannot write %s: %s\n", tmp, strerror(errno)); return; }
  for (i = 0; i < COUNTER_COUNT; i++) {
    fprintf(file, "%s %llu\n", i < F_COUNT ? function_names[i] : extra_names[i - F_COUNT],
            (unsigned long long)__atomic_load_n(&counts->value[i], __ATOMIC_RELAXED));
  }
  if (fclose(file) != 0 || rename(tmp, path) != 0) {
    fprintf(stderr, "fault-pkcs11: cannot write %s: %s\n", path, strerror(errno));
    unlink(tmp);
  }
}

static void clear_function(int index) {
  latency_us[index] = 0;
  memset(&rules[index], 0, sizeof rules[index]);
}

/* Sessions (indexes) to close in the real module after a removal, collected under the lock and
 * closed outside it, once no session call is inside the real module. */
typedef struct { size_t *indexes; size_t count; } close_list;

static void set_removed(int value, close_list *to_close) {
  size_t i;
  if (value && !removed) {
    for (i = 0; i < session_count; i++) {
      if (sessions[i].state != S_OPEN) continue;
      size_t *grown = realloc(to_close->indexes, (to_close->count + 1) * sizeof *grown);
      if (grown) { to_close->indexes = grown; to_close->indexes[to_close->count++] = i; }
      sessions[i].state = S_STALE;
      bump(X_CLOSED, 1);
      bump(X_OPEN_NOW, -1);
    }
  }
  removed = value;
}

static void apply_command(char *line, close_list *to_close) {
  char *words[8];
  int n = 0, index, i;
  char *save = NULL, *word;
  for (word = strtok_r(line, " \t\r", &save); word && n < 8; word = strtok_r(NULL, " \t\r", &save)) words[n++] = word;
  if (n == 0 || words[0][0] == '#') return;

  if (strcmp(words[0], "latency") == 0 && n == 3) {
    unsigned long micros;
    index = function_index(words[1]);
    if (index != -1 && parse_ulong(words[2], &micros)) {
      for (i = 0; i < F_COUNT; i++) if (index == -2 || index == i) latency_us[i] = micros;
      return;
    }
  } else if (strcmp(words[0], "fail") == 0 && n >= 3) {
    fail_rule rule;
    int ok = 1, k;
    memset(&rule, 0, sizeof rule);
    rule.active = 1;
    rule.remaining = 1;
    index = function_index(words[1]);
    ok = index != -1 && parse_ckr(words[2], &rule.code);
    for (k = 3; ok && k < n; k++) {
      if (strcmp(words[k], "always") == 0) rule.always = 1;
      else if (strcmp(words[k], "count") == 0 && k + 1 < n) ok = parse_ulong(words[++k], &rule.remaining);
      else if (strcmp(words[k], "rate") == 0 && k + 1 < n) ok = parse_ulong(words[++k], &rule.rate) && rule.rate > 0;
      else if (strcmp(words[k], "skip") == 0 && k + 1 < n) ok = parse_ulong(words[++k], &rule.skip);
      else ok = 0;
    }
    if (ok) {
      for (i = 0; i < F_COUNT; i++) if (index == -2 || index == i) rules[i] = rule;
      return;
    }
  } else if (strcmp(words[0], "clear") == 0 && n <= 2) {
    index = n == 2 ? function_index(words[1]) : -2;
    if (index != -1) {
      for (i = 0; i < F_COUNT; i++) if (index == -2 || index == i) clear_function(i);
      return;
    }
  } else if (strcmp(words[0], "removed") == 0 && n == 2 && (strcmp(words[1], "0") == 0 || strcmp(words[1], "1") == 0)) {
    set_removed(words[1][0] == '1', to_close);
    return;
  } else if (strcmp(words[0], "reset") == 0 && n == 1) {
    for (i = 0; i < F_COUNT; i++) clear_function(i);
    set_removed(0, to_close);
    return;
  } else if (strcmp(words[0], "zero") == 0 && n == 1) {
    for (i = 0; i < COUNTER_COUNT; i++) {
      if (i != X_OPEN_NOW) __atomic_store_n(&counts->value[i], 0, __ATOMIC_RELAXED);
    }
    return;
  } else if (strcmp(words[0], "dump") == 0 && n == 2) {
    write_dump(words[1]);
    return;
  }
  fprintf(stderr, "fault-pkcs11: ignored control line: %s%s%s\n", words[0], n > 1 ? " " : "", n > 1 ? words[1] : "");
}

/* Applies the control file's new complete lines. Called with the lock held. */
static void read_control(const struct stat *st, close_list *to_close) {
  int fd;
  char *buffer, *line, *end;
  off_t length;
  ssize_t got;
  if (st->st_ino != control_ino || st->st_dev != control_dev || st->st_size < control_offset) {
    control_ino = st->st_ino;
    control_dev = st->st_dev;
    control_offset = 0;
  }
  length = st->st_size - control_offset;
  if (length <= 0) return;
  fd = open(control_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  buffer = malloc((size_t)length + 1);
  got = buffer ? pread(fd, buffer, (size_t)length, control_offset) : -1;
  close(fd);
  if (got <= 0) { free(buffer); return; }
  buffer[got] = '\0';
  line = buffer;
  while ((end = strchr(line, '\n')) != NULL) {
    *end = '\0';
    control_offset += (end - line) + 1;
    apply_command(line, to_close);
    line = end + 1;
  }
  free(buffer);
}

static void refresh_control(void) {
  struct stat st;
  close_list to_close = { NULL, 0 };
  size_t i;
  if (!control_path || stat(control_path, &st) != 0) return;
  pthread_mutex_lock(&lock);
  if (st.st_ino != control_ino || st.st_dev != control_dev || st.st_size != control_offset) read_control(&st, &to_close);
  pthread_mutex_unlock(&lock);
  if (to_close.count == 0) return;
  pthread_rwlock_wrlock(&inside);
  for (i = 0; i < to_close.count; i++) {
    CK_SESSION_HANDLE handle = 0;
    pthread_mutex_lock(&lock);
    /* Not closed meanwhile (C_Finalize): its real handle may name another session now. */
    session_entry *entry = &sessions[to_close.indexes[i]];
    if (entry->state == S_STALE) {
      handle = entry->real;
      session_set_closed(entry);
    }
    pthread_mutex_unlock(&lock);
    if (handle) real->C_CloseSession(handle);
  }
  pthread_rwlock_unlock(&inside);
  free(to_close.indexes);
}

/* ---------------------------------------------------------------- the hook */

enum { K_NONE, K_SLOT, K_TOKEN, K_SESSION };

/*
 * Counts the call, applies new control lines, sleeps the latency and decides the call's fate.
 * Returns CKR_OK to forward, else the code to answer; *injected is the code to inject (0: none),
 * which the caller answers before or after forwarding. For K_SESSION, *hSession becomes the real
 * handle.
 */
static CK_RV enter(int fi, int kind, CK_SESSION_HANDLE *hSession, CK_RV *injected) {
  unsigned long sleep_us;
  CK_RV answer = CKR_OK;
  *injected = CKR_OK;
  bump(fi, 1);
  /* mainThreadSigns: C_Sign calls made on the process's main thread (its thread id is the pid) */
  if (fi == F_C_Sign && (pid_t)syscall(SYS_gettid) == getpid()) bump(X_MAIN_THREAD_SIGNS, 1);
  refresh_control();
  pthread_mutex_lock(&lock);
  sleep_us = latency_us[fi];
  pthread_mutex_unlock(&lock);
  if (sleep_us > 0) {
    /* sleepingPeak: the most calls that slept their latency at once (concurrency, not speed) */
    uint64_t now = __atomic_add_fetch(&counts->value[X_SLEEPING], 1, __ATOMIC_RELAXED);
    uint64_t peak = __atomic_load_n(&counts->value[X_SLEEPING_PEAK], __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&counts->value[X_SLEEPING_PEAK], &peak, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    struct timespec ts;
    ts.tv_sec = (time_t)(sleep_us / 1000000UL);
    ts.tv_nsec = (long)(sleep_us % 1000000UL) * 1000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    bump(X_SLEEPING, -1);
    refresh_control(); /* a removal written while the call slept is seen by it */
  }
  /* A session call's fate is decided once no removal can close its session under it (see leave). */
  if (kind == K_SESSION) pthread_rwlock_rdlock(&inside);
  pthread_mutex_lock(&lock);
  if (removed && kind == K_SESSION) answer = CKR_DEVICE_REMOVED;
  else if (removed && kind == K_TOKEN) answer = CKR_TOKEN_NOT_PRESENT;
  else if (kind == K_SESSION) {
    session_entry *entry = session_find(*hSession);
    if (!entry || entry->state != S_OPEN) answer = CKR_SESSION_HANDLE_INVALID;
    else *hSession = entry->real;
  }
  if (answer == CKR_OK && rules[fi].active) {
    fail_rule *rule = &rules[fi];
    if (rule->skip > 0) rule->skip--;
    else if (rule->always) *injected = rule->code;
    else if (rule->rate > 0) { if (++rule->seen % rule->rate == 0) *injected = rule->code; }
    else if (rule->remaining > 0) { *injected = rule->code; if (--rule->remaining == 0) rule->active = 0; }
    if (*injected != CKR_OK) bump(X_INJECTED, 1);
  }
  pthread_mutex_unlock(&lock);
  if (kind == K_SESSION && answer != CKR_OK) pthread_rwlock_unlock(&inside);
  return answer;
}

/* Ends a session call that enter() let through (CKR_OK): its real calls are done. */
static CK_RV leave(CK_RV rv) {
  pthread_rwlock_unlock(&inside);
  return rv;
}

/* ---------------------------------------------------------------- initialization */

static void map_counts(void) {
  const char *path = getenv("FAULT_PKCS11_COUNTS");
  counts = &counts_memory;
  if (path && *path) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && (st.st_size == (off_t)sizeof(counts_file) || ftruncate(fd, sizeof(counts_file)) == 0)) {
      void *mapped = mmap(NULL, sizeof(counts_file), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (mapped != MAP_FAILED) counts = mapped;
    }
    if (counts == &counts_memory) fprintf(stderr, "fault-pkcs11: cannot map %s: %s\n", path, strerror(errno));
    if (fd >= 0) close(fd);
  }
  if (memcmp(counts->magic, "P11FAULT", 8) != 0 || counts->n != COUNTER_COUNT) {
    memset(counts, 0, sizeof *counts);
    counts->version = 1;
    counts->n = COUNTER_COUNT;
    memcpy(counts->magic, "P11FAULT", 8);
  }
}

static void initialize(void) {
  const char *path = getenv("FAULT_PKCS11_MODULE");
  const char *control = getenv("FAULT_PKCS11_CONTROL");
  void *handle;
  CK_C_GetFunctionList get_function_list;
  Dl_info self;

  /* Stay loaded after the application's dlclose: the fault state and the real module survive a
   * reload (pkcs11js closes the library on close()), so consumed "count" rules are not replayed. */
  if (dladdr((void *)&init_error, &self) && self.dli_fname) dlopen(self.dli_fname, RTLD_NOW | RTLD_NODELETE);

  map_counts();
  if (control && *control) control_path = strdup(control);
  if (!path || !*path) path = DEFAULT_MODULE;
  handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!handle) { fprintf(stderr, "fault-pkcs11: cannot load %s: %s\n", path, dlerror()); init_error = CKR_GENERAL_ERROR; return; }
  get_function_list = (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList");
  if (!get_function_list || get_function_list(&real) != CKR_OK || !real) {
    fprintf(stderr, "fault-pkcs11: %s has no usable C_GetFunctionList\n", path);
    init_error = CKR_GENERAL_ERROR;
  }
}

/* ---------------------------------------------------------------- wrappers */

#define FW(name) fw_##name

/* Calls that take no slot and no session. */
#define DEF_NONE(name) \
  static CK_RV FW(name) CK_P_##name { \
    CK_RV injected, rv = enter(F_##name, K_NONE, NULL, &injected); \
    if (rv != CKR_OK) return rv; \
    if (injected != CKR_OK) return injected; \
    return real->name CK_A_##name; \
  }

/* Slot calls that need the token: CKR_TOKEN_NOT_PRESENT while removed. */
#define DEF_TOKEN(name) \
  static CK_RV FW(name) CK_P_##name { \
    CK_RV injected, rv = enter(F_##name, K_TOKEN, NULL, &injected); \
    if (rv != CKR_OK) return rv; \
    if (injected != CKR_OK) return injected; \
    return real->name CK_A_##name; \
  }

/* Session calls, injected before (the real function is not called). */
#define DEF_SESSION(name) \
  static CK_RV FW(name) CK_P_##name { \
    CK_RV injected, rv = enter(F_##name, K_SESSION, &hSession, &injected); \
    if (rv != CKR_OK) return rv; \
    return leave(injected != CKR_OK ? injected : real->name CK_A_##name); \
  }

/* Calls that end an operation and return data: injected after the real call, which is completed
 * with a scratch buffer when it was a size query or too small, so the real operation ends. */
#define DEF_AFTER_OUT(name, out, out_len) \
  static CK_RV FW(name) CK_P_##name { \
    CK_RV injected, rv = enter(F_##name, K_SESSION, &hSession, &injected); \
    if (rv != CKR_OK) return rv; \
    rv = real->name CK_A_##name; \
    if (injected == CKR_OK) return leave(rv); \
    if (out_len != NULL && ((rv == CKR_OK && out == NULL) || rv == CKR_BUFFER_TOO_SMALL)) { \
      CK_ULONG size = *out_len > 0 ? *out_len : 1; \
      out = malloc(size); \
      if (out) { out_len = &size; real->name CK_A_##name; free(out); } \
    } \
    return leave(injected); \
  }

/* Verify calls that end an operation: injected after the real call. */
#define DEF_AFTER(name) \
  static CK_RV FW(name) CK_P_##name { \
    CK_RV injected, rv = enter(F_##name, K_SESSION, &hSession, &injected); \
    if (rv != CKR_OK) return rv; \
    rv = real->name CK_A_##name; \
    return leave(injected != CKR_OK ? injected : rv); \
  }

static void end_with_final(CK_RV (*final)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR), CK_SESSION_HANDLE session) {
  CK_ULONG size = 0;
  CK_BYTE_PTR scratch;
  if (final(session, NULL, &size) != CKR_OK) return; /* an error ended it already */
  scratch = malloc(size > 0 ? size : 1);
  if (!scratch) return;
  if (size == 0) size = 1;
  final(session, scratch, &size);
  free(scratch);
}

/* Update calls: injected before; the real operation is then ended by its *Final. */
#define DEF_UPDATE(name, ender) \
  static CK_RV FW(name) CK_P_##name { \
    CK_RV injected, rv = enter(F_##name, K_SESSION, &hSession, &injected); \
    if (rv != CKR_OK) return rv; \
    if (injected == CKR_OK) return leave(real->name CK_A_##name); \
    ender; \
    return leave(injected); \
  }

static void end_verify(CK_SESSION_HANDLE session) {
  CK_BYTE dummy[1] = { 0 };
  real->C_VerifyFinal(session, dummy, sizeof dummy);
}

DEF_NONE(C_Initialize)
DEF_NONE(C_GetInfo)
DEF_TOKEN(C_GetTokenInfo)
DEF_TOKEN(C_GetMechanismList)
DEF_TOKEN(C_GetMechanismInfo)
DEF_TOKEN(C_InitToken)
DEF_SESSION(C_InitPIN)
DEF_SESSION(C_SetPIN)
DEF_SESSION(C_GetSessionInfo)
DEF_SESSION(C_GetOperationState)
DEF_SESSION(C_SetOperationState)
DEF_SESSION(C_Login)
DEF_SESSION(C_Logout)
DEF_SESSION(C_CreateObject)
DEF_SESSION(C_CopyObject)
DEF_SESSION(C_DestroyObject)
DEF_SESSION(C_GetObjectSize)
DEF_SESSION(C_GetAttributeValue)
DEF_SESSION(C_SetAttributeValue)
DEF_SESSION(C_FindObjectsInit)
DEF_SESSION(C_FindObjects)
DEF_SESSION(C_FindObjectsFinal)
DEF_SESSION(C_EncryptInit)
DEF_AFTER_OUT(C_Encrypt, pEncryptedData, pulEncryptedDataLen)
DEF_UPDATE(C_EncryptUpdate, end_with_final(real->C_EncryptFinal, hSession))
DEF_AFTER_OUT(C_EncryptFinal, pLastEncryptedPart, pulLastEncryptedPartLen)
DEF_SESSION(C_DecryptInit)
DEF_AFTER_OUT(C_Decrypt, pData, pulDataLen)
DEF_UPDATE(C_DecryptUpdate, end_with_final(real->C_DecryptFinal, hSession))
DEF_AFTER_OUT(C_DecryptFinal, pLastPart, pulLastPartLen)
DEF_SESSION(C_DigestInit)
DEF_AFTER_OUT(C_Digest, pDigest, pulDigestLen)
DEF_UPDATE(C_DigestUpdate, end_with_final(real->C_DigestFinal, hSession))
DEF_UPDATE(C_DigestKey, end_with_final(real->C_DigestFinal, hSession))
DEF_AFTER_OUT(C_DigestFinal, pDigest, pulDigestLen)
DEF_SESSION(C_SignInit)
DEF_AFTER_OUT(C_Sign, pSignature, pulSignatureLen)
DEF_UPDATE(C_SignUpdate, end_with_final(real->C_SignFinal, hSession))
DEF_AFTER_OUT(C_SignFinal, pSignature, pulSignatureLen)
DEF_SESSION(C_SignRecoverInit)
DEF_AFTER_OUT(C_SignRecover, pSignature, pulSignatureLen)
DEF_SESSION(C_VerifyInit)
DEF_AFTER(C_Verify)
DEF_UPDATE(C_VerifyUpdate, end_verify(hSession))
DEF_AFTER(C_VerifyFinal)
DEF_SESSION(C_VerifyRecoverInit)
DEF_AFTER_OUT(C_VerifyRecover, pData, pulDataLen)
DEF_SESSION(C_DigestEncryptUpdate)
DEF_SESSION(C_DecryptDigestUpdate)
DEF_SESSION(C_SignEncryptUpdate)
DEF_SESSION(C_DecryptVerifyUpdate)
DEF_SESSION(C_GenerateKey)
DEF_SESSION(C_GenerateKeyPair)
DEF_SESSION(C_WrapKey)
DEF_SESSION(C_UnwrapKey)
DEF_SESSION(C_DeriveKey)
DEF_SESSION(C_SeedRandom)
DEF_SESSION(C_GenerateRandom)
DEF_SESSION(C_GetFunctionStatus)
DEF_SESSION(C_CancelFunction)
DEF_NONE(C_WaitForSlotEvent)

static CK_RV fw_C_Finalize CK_P_C_Finalize {
  CK_RV injected, rv = enter(F_C_Finalize, K_NONE, NULL, &injected);
  size_t i;
  if (rv != CKR_OK) return rv;
  if (injected != CKR_OK) return injected;
  /* Not beside a removal's closing of sessions, whose handles would then name new ones. */
  pthread_rwlock_wrlock(&inside);
  rv = real->C_Finalize(pReserved);
  if (rv == CKR_OK) {
    pthread_mutex_lock(&lock);
    for (i = 0; i < session_count; i++) session_set_closed(&sessions[i]);
    pthread_mutex_unlock(&lock);
  }
  pthread_rwlock_unlock(&inside);
  return rv;
}

static CK_RV fw_C_GetFunctionList CK_P_C_GetFunctionList {
  CK_RV injected, rv;
  pthread_once(&once, initialize);
  if (init_error != CKR_OK) return init_error;
  rv = enter(F_C_GetFunctionList, K_NONE, NULL, &injected);
  if (rv != CKR_OK) return rv;
  if (injected != CKR_OK) return injected;
  if (!ppFunctionList) return 0x7; /* CKR_ARGUMENTS_BAD */
  *ppFunctionList = &wrapper;
  return CKR_OK;
}

static CK_RV fw_C_GetSlotList CK_P_C_GetSlotList {
  CK_RV injected, rv = enter(F_C_GetSlotList, K_NONE, NULL, &injected);
  int gone;
  if (rv != CKR_OK) return rv;
  if (injected != CKR_OK) return injected;
  pthread_mutex_lock(&lock);
  gone = removed;
  pthread_mutex_unlock(&lock);
  if (gone && tokenPresent) {
    if (!pulCount) return 0x7;
    *pulCount = 0;
    return CKR_OK;
  }
  return real->C_GetSlotList(tokenPresent, pSlotList, pulCount);
}

static CK_RV fw_C_GetSlotInfo CK_P_C_GetSlotInfo {
  CK_RV injected, rv = enter(F_C_GetSlotInfo, K_SLOT, NULL, &injected);
  int gone;
  if (rv != CKR_OK) return rv;
  if (injected != CKR_OK) return injected;
  rv = real->C_GetSlotInfo(slotID, pInfo);
  pthread_mutex_lock(&lock);
  gone = removed;
  pthread_mutex_unlock(&lock);
  if (rv == CKR_OK && gone && pInfo) pInfo->flags &= ~CKF_TOKEN_PRESENT;
  return rv;
}

static CK_RV fw_C_OpenSession CK_P_C_OpenSession {
  CK_RV injected, rv = enter(F_C_OpenSession, K_TOKEN, NULL, &injected);
  CK_SESSION_HANDLE real_handle = 0, virtual_handle;
  int gone;
  if (rv != CKR_OK) return rv;
  if (injected != CKR_OK) return injected;
  if (!phSession) return 0x7;
  rv = real->C_OpenSession(slotID, flags, pApplication, Notify, &real_handle);
  if (rv != CKR_OK) return rv;
  pthread_mutex_lock(&lock);
  /* Removed while it opened: it goes with the others. */
  gone = removed;
  virtual_handle = gone ? 0 : session_add(real_handle, slotID);
  pthread_mutex_unlock(&lock);
  if (virtual_handle == 0) { real->C_CloseSession(real_handle); return gone ? CKR_TOKEN_NOT_PRESENT : 0x2; /* CKR_HOST_MEMORY */ }
  bump(X_OPENED, 1);
  bump(X_OPEN_NOW, 1);
  *phSession = virtual_handle;
  return CKR_OK;
}

static CK_RV fw_C_CloseSession CK_P_C_CloseSession {
  CK_SESSION_HANDLE virtual_handle = hSession;
  CK_RV injected, rv = enter(F_C_CloseSession, K_SESSION, &hSession, &injected);
  session_entry *entry;
  if (rv != CKR_OK) return rv;
  if (injected != CKR_OK) return leave(injected);
  rv = real->C_CloseSession(hSession);
  if (rv == CKR_OK || rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED) {
    pthread_mutex_lock(&lock);
    entry = session_find(virtual_handle);
    if (entry) session_set_closed(entry);
    pthread_mutex_unlock(&lock);
  }
  return leave(rv);
}

static CK_RV fw_C_CloseAllSessions CK_P_C_CloseAllSessions {
  CK_RV injected, rv = enter(F_C_CloseAllSessions, K_TOKEN, NULL, &injected);
  size_t i;
  if (rv != CKR_OK) return rv;
  if (injected != CKR_OK) return injected;
  rv = real->C_CloseAllSessions(slotID);
  if (rv == CKR_OK) {
    pthread_mutex_lock(&lock);
    for (i = 0; i < session_count; i++) if (sessions[i].slot == slotID) session_set_closed(&sessions[i]);
    pthread_mutex_unlock(&lock);
  }
  return rv;
}

static CK_FUNCTION_LIST wrapper = {
  { 2, 40 },
#define FAULT_ENTRY(name) FW(name),
  CK_FUNCTION_NAMES(FAULT_ENTRY)
};

/* The only exported symbol. */
__attribute__((visibility("default"))) CK_RV C_GetFunctionList CK_P_C_GetFunctionList {
  return fw_C_GetFunctionList(ppFunctionList);
}
