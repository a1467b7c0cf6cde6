/* Minimal test helpers for the C tests: no framework, one binary per file, exit code = failures. */
#ifndef KVS_TEST_UTIL_H
#define KVS_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvs_viewer.h"

static int g_failures = 0;
static int g_checks = 0;

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    g_checks++;                                                                            \
    if (!(cond)) {                                                                         \
      g_failures++;                                                                        \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);             \
    }                                                                                      \
  } while (0)

/* Compares two int32 codes and prints both names when they differ. */
#define CHECK_CODE(got_expr, want)                                                         \
  do {                                                                                     \
    int32_t got_ = (got_expr);                                                             \
    int32_t want_ = (want);                                                                \
    g_checks++;                                                                            \
    if (got_ != want_) {                                                                   \
      char detail_[512];                                                                   \
      kvs_last_error_message(detail_, sizeof detail_);                                     \
      g_failures++;                                                                        \
      fprintf(stderr, "%s:%d: %s returned %s (%d), want %s (%d); detail: %s\n", __FILE__,  \
              __LINE__, #got_expr, kvs_error_name(got_), (int)got_, kvs_error_name(want_), \
              (int)want_, detail_);                                                        \
    }                                                                                      \
  } while (0)

#define CHECK_STR(got, want)                                                               \
  do {                                                                                     \
    const char *got_s_ = (got);                                                            \
    const char *want_s_ = (want);                                                          \
    g_checks++;                                                                            \
    if (got_s_ == NULL || strcmp(got_s_, want_s_) != 0) {                                  \
      g_failures++;                                                                        \
      fprintf(stderr, "%s:%d: %s is \"%s\", want \"%s\"\n", __FILE__, __LINE__, #got,      \
              got_s_ ? got_s_ : "(null)", want_s_);                                        \
    }                                                                                      \
  } while (0)

/* The detail message of the last failure on this thread, in a static buffer. */
static inline const char *last_error(void) {
  static char buf[2048];
  buf[0] = '\0';
  kvs_last_error_message(buf, sizeof buf);
  return buf;
}

#define CHECK_DETAIL_HAS(needle)                                                           \
  do {                                                                                     \
    const char *d_ = last_error();                                                         \
    g_checks++;                                                                            \
    if (strstr(d_, (needle)) == NULL) {                                                    \
      g_failures++;                                                                        \
      fprintf(stderr, "%s:%d: last error \"%s\" does not mention \"%s\"\n", __FILE__,      \
              __LINE__, d_, (needle));                                                     \
    }                                                                                      \
  } while (0)

static inline int test_summary(const char *name) {
  printf("%s: %d checks, %d failed\n", name, g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}

#endif
