/* prompt.c — the template language and rendering. */
#include "rag/prompt.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

typedef RT_VEC(char) strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
  rt_vec_reserve(b, b->len + n + 1);
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}
static void sb_str(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static const char *const VARS[] = {"c1", "c2", "retrieved", "popular", "examples"};
static const char *const BLOCKS[] = {"rag", "popular", "examples"};

static int is_one_of(const char *s, size_t n, const char *const *set, size_t nset) {
  for (size_t i = 0; i < nset; i++)
    if (strlen(set[i]) == n && strncmp(set[i], s, n) == 0) return 1;
  return 0;
}

/* Trimmed line equals "{{#name}}" or "{{/name}}"? Returns '#', '/' or 0 and the name. */
static int block_marker(const char *line, size_t len, const char **name, size_t *nlen) {
  while (len && (*line == ' ' || *line == '\t')) line++, len--;
  while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r')) len--;
  if (len < 6 || strncmp(line, "{{", 2) != 0 || strncmp(line + len - 2, "}}", 2) != 0) return 0;
  if (line[2] != '#' && line[2] != '/') return 0;
  *name = line + 3;
  *nlen = len - 5;
  return line[2];
}

int rt_template_load(const char *path, rt_template *t, rt_err *err) {
  memset(t, 0, sizeof *t);
  size_t len;
  if (rt_read_file(path, &t->text, &len, err)) return rt_err_wrap(err, "prompt.template: ");
  t->path = rt_xstrdup(path);
  t->hash = rt_hash_bytes(t->text, len);
  /* Validate line by line: placeholders known, blocks balanced. */
  const char *p = t->text;
  int line = 0;
  char open[32] = "";
  int open_line = 0;
  while (*p) {
    line++;
    const char *nl = strchr(p, '\n');
    size_t ll = nl ? (size_t)(nl - p) : strlen(p);
    const char *name;
    size_t nlen;
    int m = block_marker(p, ll, &name, &nlen);
    if (m) {
      if (!is_one_of(name, nlen, BLOCKS, 3)) {
        rt_err_set(err, RT_ERR_INPUT, "%s:%d: unknown block {{%c%.*s}} (blocks: rag, popular, examples)", path,
                   line, m, (int)nlen, name);
        goto fail;
      }
      if (m == '#') {
        if (open[0]) {
          rt_err_set(err, RT_ERR_INPUT, "%s:%d: block {{#%.*s}} opened inside {{#%s}} (line %d); blocks do not nest",
                     path, line, (int)nlen, name, open, open_line);
          goto fail;
        }
        snprintf(open, sizeof open, "%.*s", (int)nlen, name);
        open_line = line;
      } else {
        if (strlen(open) != nlen || strncmp(open, name, nlen) != 0) {
          rt_err_set(err, RT_ERR_INPUT, "%s:%d: {{/%.*s}} does not close an open block", path, line, (int)nlen, name);
          goto fail;
        }
        open[0] = '\0';
      }
    } else {
      for (const char *q = p; q < p + ll; q++) {
        if (q[0] != '{' || q + 1 >= p + ll || q[1] != '{') continue;
        const char *e = strstr(q, "}}");
        if (!e || e > p + ll) {
          rt_err_set(err, RT_ERR_INPUT, "%s:%d: \"{{\" without a closing \"}}\"", path, line);
          goto fail;
        }
        if (!is_one_of(q + 2, (size_t)(e - q - 2), VARS, 5)) {
          rt_err_set(err, RT_ERR_INPUT,
                     "%s:%d: unknown placeholder {{%.*s}} (known: c1, c2, retrieved, popular, examples)", path,
                     line, (int)(e - q - 2), q + 2);
          goto fail;
        }
        q = e + 1;
      }
    }
    p = nl ? nl + 1 : p + ll;
  }
  if (open[0]) {
    rt_err_set(err, RT_ERR_INPUT, "%s:%d: block {{#%s}} is never closed", path, open_line, open);
    goto fail;
  }
  return RT_OK;
fail:
  rt_template_free(t);
  return RT_ERR_INPUT;
}

void rt_template_free(rt_template *t) {
  free(t->path);
  free(t->text);
  memset(t, 0, sizeof *t);
}

static void list_block(strbuf *b, const rt_catalog *cat, const uint32_t *idx, size_t n) {
  for (size_t i = 0; i < n; i++) {
    sb_str(b, "- ");
    sb_str(b, cat->desc[idx[i]]);
    if (i + 1 < n) sb_str(b, "\n");
  }
}

static void subst_line(strbuf *b, const char *p, size_t ll, const rt_prompt_vars *v) {
  const char *end = p + ll;
  while (p < end) {
    const char *q = p;
    while (q + 1 < end && !(q[0] == '{' && q[1] == '{')) q++;
    if (q + 1 >= end) {
      sb_add(b, p, (size_t)(end - p));
      return;
    }
    sb_add(b, p, (size_t)(q - p));
    const char *e = strstr(q, "}}");
    size_t n = (size_t)(e - q - 2);
    const char *name = q + 2;
    if (n == 2 && !strncmp(name, "c1", 2)) sb_str(b, v->cat->desc[v->c1]);
    else if (n == 2 && !strncmp(name, "c2", 2)) sb_str(b, v->cat->desc[v->c2]);
    else if (n == 9 && !strncmp(name, "retrieved", 9)) list_block(b, v->cat, v->retrieved, v->n_retrieved);
    else if (n == 7 && !strncmp(name, "popular", 7)) list_block(b, v->cat, v->popular, v->n_popular);
    else if (n == 8 && !strncmp(name, "examples", 8)) sb_str(b, v->examples ? v->examples : "");
    p = e + 2;
  }
}

static void finish(strbuf *b, char **out) {
  /* trim trailing blank lines so templates may end with a newline or not */
  while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == ' ')) b->data[--b->len] = '\0';
  if (!b->data) sb_str(b, "");
  *out = b->data;
}

void rt_prompt_render(const rt_template *t, const rt_prompt_vars *v, char **system, char **user) {
  strbuf sys = {0}, usr = {0};
  strbuf *cur = &usr;
  int skip = 0;
  const char *p = t->text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t ll = nl ? (size_t)(nl - p) : strlen(p);
    const char *name;
    size_t nlen;
    int m = block_marker(p, ll, &name, &nlen);
    if (m == '#') {
      size_t have = !strncmp(name, "rag", nlen) ? v->n_retrieved
                    : !strncmp(name, "popular", nlen) ? v->n_popular
                    : (v->examples && *v->examples);
      skip = have == 0;
    } else if (m == '/') {
      skip = 0;
    } else if (ll >= 10 && !strncmp(p, "### system", 10)) {
      cur = &sys;
    } else if (ll >= 8 && !strncmp(p, "### user", 8)) {
      cur = &usr;
    } else if (!skip) {
      subst_line(cur, p, ll, v);
      sb_str(cur, "\n");
    }
    p = nl ? nl + 1 : p + ll;
  }
  finish(&sys, system);
  finish(&usr, user);
}
