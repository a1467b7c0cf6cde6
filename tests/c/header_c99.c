/* The header compiles alone as strict C99 (-std=c99 -pedantic -Wall -Wextra -Werror) and its
 * version macros agree with the library it is linked against. */
#include "kvs_viewer.h"

#include <stdio.h>
#include <string.h>

#define KVS_STR2(x) #x
#define KVS_STR(x) KVS_STR2(x)

int main(void) {
  const char *want = KVS_STR(KVS_VIEWER_VERSION_MAJOR) "." KVS_STR(KVS_VIEWER_VERSION_MINOR) "." KVS_STR(
      KVS_VIEWER_VERSION_PATCH);
  if (strcmp(kvs_viewer_version(), want) != 0) {
    fprintf(stderr, "library %s, header %s\n", kvs_viewer_version(), want);
    return 1;
  }
  if (kvs_viewer_abi_version() != KVS_VIEWER_ABI_VERSION) return 1;
  printf("header (C99) %s == library %s\n", want, kvs_viewer_version());
  return 0;
}
