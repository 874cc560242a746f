/* fuzz_config — the INI job configuration (src/format/config.c):
 * rt_config_load over the defaults, then the cross-key checks and the hash.
 * Input: the file. */
#include "fuzz_common.h"
#include "format/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_path(0, "job.ini");
  fz_write(path, data, size);
  rt_config cfg;
  rt_config_defaults(&cfg);
  rt_err err = {0};
  if (rt_config_load(&cfg, path, &err) == RT_OK) {
    if (rt_config_validate(&cfg, "refresh", &err) != RT_OK) fz_check_msg(err.msg, sizeof err.msg);
    rt_config_resolve_window(&cfg, 1764806400); /* 2025-12-04 */
    (void)rt_config_hash(&cfg);
  } else {
    if (err.code == RT_OK) abort();
    fz_check_msg(err.msg, sizeof err.msg);
  }
  rt_config_free(&cfg);
  return 0;
}
