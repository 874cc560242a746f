/* catalog.c — load, index and normalise the cluster catalog. */
#include "format/catalog.h"
#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* --- normalisation ------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t rt_normalize_desc(const char *in, char *out, size_t cap) {
  size_t n = strlen(in);
  char *work = rt_xmalloc(n + 1);
  char **kw = rt_xmalloc((n + 1) * sizeof *kw); /* at most one keyword per byte */
  size_t nkw = 0, w = 0;
  char *cur = work;
  int space = 0;
  for (size_t i = 0; i <= n; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c == '\0' || c == ',' || c == ';' || c == '|' || c == '\n' || c == '\r') {
      while (w > 0 && work[w - 1] == ' ' && &work[w - 1] >= cur) w--;
      work[w++] = '\0';
      if (*cur) kw[nkw++] = cur;
      cur = work + w;
      space = 0;
      continue;
    }
    if (c >= 0x80 || isalnum(c)) {
      if (space && &work[w] != cur) work[w++] = ' ';
      space = 0;
      work[w++] = (char)(c < 0x80 ? tolower(c) : c);
    } else {
      space = 1; /* white space and punctuation separate words */
    }
  }
  qsort(kw, nkw, sizeof *kw, cmp_str);
  size_t len = 0;
  const char *prev = NULL;
  if (cap) out[0] = '\0';
  for (size_t i = 0; i < nkw; i++) {
    if (prev && strcmp(prev, kw[i]) == 0) continue;
    const char *sep = prev ? ", " : "";
    int k = snprintf(cap > len ? out + len : NULL, cap > len ? cap - len : 0, "%s%s", sep, kw[i]);
    len += (size_t)k;
    prev = kw[i];
  }
  free(work);
  free(kw);
  return len;
}

static char *normalize_dup(const char *in) {
  size_t need = rt_normalize_desc(in, NULL, 0);
  char *out = rt_xmalloc(need + 1);
  rt_normalize_desc(in, out, need + 1);
  return out;
}

/* --- building ------------------------------------------------------------ */

typedef struct {
  uint32_t id;
  const char *desc;
  size_t line;
} entry;

static int cmp_entry(const void *a, const void *b) {
  const entry *x = a, *y = b;
  return x->id < y->id ? -1 : x->id > y->id;
}

static int build(entry *e, uint32_t n, const char *origin, rt_catalog *cat, rt_err *err) {
  memset(cat, 0, sizeof *cat);
  if (n == 0) return rt_err_set(err, RT_ERR_INPUT, "%s: catalog has no clusters", origin);
  if (n > RT_CATALOG_MAX)
    return rt_err_set(err, RT_ERR_INPUT, "%s: catalog has %u clusters, more than the %u supported",
                      origin, n, RT_CATALOG_MAX);
  qsort(e, n, sizeof *e, cmp_entry);
  for (uint32_t i = 1; i < n; i++)
    if (e[i].id == e[i - 1].id)
      return rt_err_set(err, RT_ERR_INPUT, "%s:%zu: duplicate cluster id %u (first at line %zu)",
                        origin, e[i].line > e[i - 1].line ? e[i].line : e[i - 1].line, e[i].id,
                        e[i].line < e[i - 1].line ? e[i].line : e[i - 1].line);
  cat->n = n;
  cat->ids = rt_xmalloc(n * sizeof *cat->ids);
  cat->desc = rt_xmalloc(n * sizeof *cat->desc);
  cat->norm = rt_xmalloc(n * sizeof *cat->norm);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (uint32_t i = 0; i < n; i++) {
    cat->ids[i] = e[i].id;
    cat->desc[i] = rt_xstrdup(e[i].desc);
    cat->norm[i] = normalize_dup(e[i].desc);
    h = (h ^ rt_hash_bytes(&e[i].id, sizeof e[i].id)) * 0x100000001b3ULL;
    h = (h ^ rt_hash_bytes(cat->norm[i], strlen(cat->norm[i]))) * 0x100000001b3ULL;
  }
  cat->hash = h;
  /* Unique normalised descriptions (an answer must name one cluster): sort
   * pointers to them and compare neighbours. */
  char **sorted = rt_xmalloc(n * sizeof *sorted);
  memcpy(sorted, cat->norm, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, cmp_str);
  for (uint32_t i = 1; i < n; i++) {
    if (strcmp(sorted[i], sorted[i - 1]) == 0) {
      char dup[256];
      snprintf(dup, sizeof dup, "%s", sorted[i]);
      free(sorted);
      rt_catalog_free(cat);
      return rt_err_set(err, RT_ERR_INPUT,
                        "%s: two clusters have the same description \"%s\" once normalised; "
                        "descriptions must be unique so an answer names one cluster", origin, dup);
    }
  }
  free(sorted);
  /* id -> index. Ids below max(4n, 64Ki): a direct table, no larger than
   * the hash map would be. Else open addressing, load factor <= 1/4 (most
   * hits at the first slot) while the table stays within 512 KiB, <= 1/2
   * beyond, where memory matters more. */
  uint32_t max_id = cat->ids[n - 1];
  if ((uint64_t)max_id < 4ULL * n || max_id < 65536u) {
    cat->direct_n = max_id + 1;
    cat->direct = rt_xmalloc((size_t)cat->direct_n * sizeof *cat->direct);
    for (uint32_t i = 0; i < cat->direct_n; i++) cat->direct[i] = -1;
    for (uint32_t i = 0; i < n; i++) cat->direct[cat->ids[i]] = (int32_t)i;
    return RT_OK;
  }
  uint32_t cap = 16;
  int bits = 4;
  uint32_t want = n <= 16384 ? 4 * n : 2 * n;
  while (cap < want) cap *= 2, bits++;
  cat->map_mask = cap - 1;
  cat->map_shift = 64 - bits;
  cat->map = rt_xmalloc(cap * sizeof *cat->map);
  for (uint32_t i = 0; i < cap; i++) cat->map[i] = (struct rt_catalog_slot){0, -1};
  for (uint32_t i = 0; i < n; i++) {
    uint32_t s = (uint32_t)(((uint64_t)cat->ids[i] * 0x9e3779b97f4a7c15ULL) >> cat->map_shift);
    while (cat->map[s].idx >= 0) s = (s + 1) & cat->map_mask;
    cat->map[s] = (struct rt_catalog_slot){cat->ids[i], (int32_t)i};
  }
  return RT_OK;
}

int rt_catalog_build(const uint32_t *ids, const char *const *desc, uint32_t n, const char *origin,
                     rt_catalog *cat, rt_err *err) {
  entry *e = rt_xmalloc((n ? n : 1) * sizeof *e);
  for (uint32_t i = 0; i < n; i++) {
    e[i].id = ids[i];
    e[i].desc = desc[i];
    e[i].line = i + 1;
  }
  int rc = build(e, n, origin, cat, err);
  free(e);
  return rc;
}

int rt_catalog_load(const char *path, rt_catalog *cat, rt_err *err) {
  memset(cat, 0, sizeof *cat);
  char *text;
  size_t len;
  int rc = rt_read_file(path, &text, &len, err);
  if (rc) return rt_err_wrap(err, "catalog: ");
  RT_VEC(entry) v = {0};
  size_t lineno = 0;
  char *p = text;
  rc = RT_OK;
  while (p && *p) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    lineno++;
    char *line = p;
    p = nl ? nl + 1 : NULL;
    size_t ll = strlen(line);
    if (ll && line[ll - 1] == '\r') line[--ll] = '\0';
    if (ll == 0 || line[0] == '#') continue;
    if (memchr(line, '\0', ll) != NULL) continue;
    char *tab = strchr(line, '\t');
    if (!tab) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s:%zu: expected \"cluster_id<TAB>keywords\", found no tab",
                      path, lineno);
      break;
    }
    *tab = '\0';
    errno = 0;
    char *end;
    unsigned long long id = strtoull(line, &end, 10);
    if (line[0] == '\0' || *end != '\0' || errno || id > UINT32_MAX || line[0] == '-' || line[0] == '+') {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s:%zu: cluster id \"%.40s\" is not an unsigned 32-bit integer",
                      path, lineno, line);
      break;
    }
    char *d = tab + 1;
    while (*d == ' ' || *d == '\t') d++;
    size_t dl = strlen(d);
    while (dl && (d[dl - 1] == ' ' || d[dl - 1] == '\t')) d[--dl] = '\0';
    if (rt_normalize_desc(d, NULL, 0) == 0) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s:%zu: cluster %llu has no keywords", path, lineno, id);
      break;
    }
    entry e = {(uint32_t)id, d, lineno};
    rt_vec_push(&v, e);
  }
  if (rc == RT_OK) rc = build(v.data, (uint32_t)v.len, path, cat, err);
  free(v.data);
  free(text);
  return rc;
}

int rt_catalog_write(const rt_catalog *cat, const char *path, rt_err *err) {
  RT_VEC(char) b = {0};
  for (uint32_t i = 0; i < cat->n; i++) {
    char head[16];
    int k = snprintf(head, sizeof head, "%u\t", cat->ids[i]);
    size_t dl = strlen(cat->desc[i]);
    rt_vec_reserve(&b, b.len + (size_t)k + dl + 1);
    memcpy(b.data + b.len, head, (size_t)k);
    b.len += (size_t)k;
    memcpy(b.data + b.len, cat->desc[i], dl);
    b.len += dl;
    b.data[b.len++] = '\n';
  }
  int rc = rt_write_file_atomic(path, b.data, b.len, err);
  free(b.data);
  return rc;
}

int32_t rt_catalog_find_norm(const rt_catalog *cat, const char *norm) {
  /* The reference lookup, O(n): the match stage keeps a hash index instead. */
  for (uint32_t i = 0; i < cat->n; i++)
    if (strcmp(cat->norm[i], norm) == 0) return (int32_t)i;
  return -1;
}

void rt_catalog_free(rt_catalog *cat) {
  if (!cat) return;
  for (uint32_t i = 0; i < cat->n; i++) {
    if (cat->desc) free(cat->desc[i]);
    if (cat->norm) free(cat->norm[i]);
  }
  free(cat->ids);
  free(cat->desc);
  free(cat->norm);
  free(cat->direct);
  free(cat->map);
  memset(cat, 0, sizeof *cat);
}
