/* fuzz_catalog — the cluster catalog TSV reader (src/format/catalog.c,
 * rt_catalog_load) and the description normaliser. Input: the file. */
#include "fuzz_common.h"
#include "format/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_path(0, "catalog.tsv");
  fz_write(path, data, size);
  rt_catalog cat;
  rt_err err = {0};
  if (rt_catalog_load(path, &cat, &err) == RT_OK) {
    for (uint32_t i = 0; i < cat.n; i++) {
      if (rt_catalog_index(&cat, cat.ids[i]) != (int32_t)i) abort();
      if (i < 4 && rt_catalog_find_norm(&cat, cat.norm[i]) != (int32_t)i) abort();
    }
    rt_catalog_free(&cat);
  } else {
    if (err.code == RT_OK) abort(); /* failed without saying why */
    fz_check_msg(err.msg, sizeof err.msg);
  }
  /* The normaliser on the raw bytes (the match stage runs it on LLM answers). */
  char *s = malloc(size + 1);
  memcpy(s, data, size);
  s[size] = '\0';
  size_t need = rt_normalize_desc(s, NULL, 0);
  char *out = malloc(need + 1);
  if (rt_normalize_desc(s, out, need + 1) != need || strlen(out) != need) abort();
  free(out);
  free(s);
  return 0;
}
