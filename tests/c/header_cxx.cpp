// The header compiles as C++ (-Wall -Wextra -Werror -pedantic) and links without name mangling.
#include "kvs_viewer.h"

#include <cstdio>
#include <cstring>

int main() {
  KvsViewerConfig cfg;
  kvs_viewer_config_init(&cfg);
  char buf[8];
  KvsMessage msg;
  kvs_message_init(&msg, buf, sizeof buf);
  KvsViewer *v = nullptr;
  if (kvs_viewer_connect(nullptr, &v) != KVS_ERR_NULL_POINTER) return 1;
  if (std::strcmp(kvs_error_name(KVS_ERR_NULL_POINTER), "KVS_ERR_NULL_POINTER") != 0) return 1;
  if (kvs_viewer_close(nullptr) != KVS_OK) return 1;
  std::printf("header (C++) ok, library %s\n", kvs_viewer_version());
  return 0;
}
