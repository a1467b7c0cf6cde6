/* The header compiles alone as strict C89, C99 and C11 (-pedantic -Wall -Wextra -Werror),
 * its typed codes and init macros work, and its version macros agree with the library it is
 * linked against. C89 on purpose: no // comments, declarations first. */
#include "kvs_viewer.h"

#include <stdio.h>
#include <string.h>

#define KVS_STR2(x) #x
#define KVS_STR(x) KVS_STR2(x)

static int is_closed(KvsStatus rc) {
  switch (rc) {
    case KVS_ERR_CLOSED:
      return 1;
    default:
      return 0;
  }
}

int main(void) {
  const char *want = KVS_STR(KVS_VIEWER_VERSION_MAJOR) "." KVS_STR(KVS_VIEWER_VERSION_MINOR) "." KVS_STR(
      KVS_VIEWER_VERSION_PATCH);
  KvsViewerConfig cfg;
  KvsMessage msg;
  KvsIceServer ice;
  char buf[8];
  KvsViewer *v = NULL;
  KvsStatus rc;
  KvsMessageType t = KVS_MSG_RECONNECTED;

  if (strcmp(kvs_viewer_version(), want) != 0) {
    fprintf(stderr, "library %s, header %s\n", kvs_viewer_version(), want);
    return 1;
  }
  if (kvs_viewer_abi_version() != KVS_VIEWER_ABI_VERSION) return 1;
  kvs_viewer_config_init(&cfg);
  kvs_message_init(&msg, buf, sizeof buf);
  kvs_ice_server_init(&ice);
  if (cfg.struct_size != sizeof cfg || msg.struct_size != sizeof msg || ice.struct_size != sizeof ice) {
    return 1;
  }
  rc = kvs_viewer_connect(NULL, &v);
  if (rc != KVS_ERR_NULL_POINTER || is_closed(rc)) return 1;
  if (strcmp(kvs_message_type_name(t), "RECONNECTED") != 0) return 1;
  if (!kvs_status_is_retryable(KVS_ERR_TIMEOUT) || kvs_status_is_retryable(KVS_ERR_NULL_POINTER)) {
    return 1;
  }
  printf("header (C %ld) %s == library %s\n",
#ifdef __STDC_VERSION__
         (long)__STDC_VERSION__,
#else
         (long)198900L,
#endif
         want, kvs_viewer_version());
  return 0;
}
