// The header compiles as C++11 (-Wall -Wextra -Wpedantic -Werror), its enums behave as
// typed enums with a fixed int32_t underlying type, and it links without name mangling.
#include "kvs_viewer.h"

#include <cstdio>
#include <cstring>
#include <type_traits>

static_assert(sizeof(KvsStatus) == sizeof(int32_t), "KvsStatus is int32_t-sized");
static_assert(std::is_same<std::underlying_type<KvsStatus>::type, int32_t>::value,
              "KvsStatus is based on int32_t");
static_assert(std::is_same<std::underlying_type<KvsMessageType>::type, int32_t>::value,
              "KvsMessageType is based on int32_t");

int main() {
  KvsViewerConfig cfg;
  kvs_viewer_config_init(&cfg);
  char buf[8];
  KvsMessage msg;
  kvs_message_init(&msg, buf, sizeof buf);
  KvsIceServer ice;
  kvs_ice_server_init(&ice);
  if (cfg.struct_size != sizeof cfg || msg.struct_size != sizeof msg || ice.struct_size != sizeof ice) {
    return 1;
  }
  KvsViewer *v = nullptr;
  KvsStatus rc = kvs_viewer_connect(nullptr, &v);
  if (rc != KVS_ERR_NULL_POINTER) return 1;
  int32_t as_int = kvs_viewer_close(nullptr);  // 0.1 code stores codes in int32_t
  if (as_int != KVS_OK) return 1;
  if (std::strcmp(kvs_error_name(KVS_ERR_NULL_POINTER), "KVS_ERR_NULL_POINTER") != 0) return 1;
  if (std::strcmp(kvs_message_type_name(KVS_MSG_RECONNECTED), "RECONNECTED") != 0) return 1;
  std::printf("header (C++) ok, library %s\n", kvs_viewer_version());
  return 0;
}
