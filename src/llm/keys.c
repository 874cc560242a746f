/* keys.c — API key loading (env or owner-only file) and request headers. */
#include "llm/keys.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"


/* A key goes into a header line: a control byte would let it inject headers. */
static int has_control(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
  return 0;
}

static int read_key_file(const char *path, char **key, rt_err *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return rt_err_set(err, RT_ERR_USAGE, "llm.api_key_file %s: cannot open: %s — check the path", path,
                      strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return rt_err_set(err, RT_ERR_USAGE, "llm.api_key_file %s: not a regular file", path);
  }
  if (st.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH)) {
    close(fd);
    return rt_err_set(err, RT_ERR_USAGE,
                      "llm.api_key_file %s has mode %04o: group or others may read it; run `chmod 600 %s`",
                      path, (unsigned)(st.st_mode & 07777), path);
  }
  if (st.st_size > 65536) {
    close(fd);
    return rt_err_set(err, RT_ERR_USAGE, "llm.api_key_file %s is %lld bytes: not an API key file", path,
                      (long long)st.st_size);
  }
  char *buf = rt_xmalloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  buf[got] = '\0';
  rt_trim(buf);
  if (!*buf) {
    free(buf);
    return rt_err_set(err, RT_ERR_USAGE, "llm.api_key_file %s is empty: write the API key into it", path);
  }
  if (has_control(buf)) {
    free(buf);
    return rt_err_set(err, RT_ERR_USAGE,
                      "llm.api_key_file %s: the key holds a control character or line break; "
                      "the file must contain the key alone on one line",
                      path);
  }
  *key = buf;
  return RT_OK;
}

void rt_llm_guard_secrets(const rt_config *cfg) {
  const char *env = cfg->api_key_env;
  const char *v = env && *env ? getenv(env) : NULL;
  if ((v && *v) || (cfg->api_key_file && *cfg->api_key_file) || (cfg->headers && *cfg->headers))
    rt_secret_guard();
}

int rt_llm_read_key(const rt_config *cfg, char **key, rt_err *err) {
  *key = NULL;
  const char *env = cfg->api_key_env, *file = cfg->api_key_file;
  int has_env = env && *env, has_file = file && *file;
  if (has_env && has_file)
    return rt_err_set(err, RT_ERR_USAGE,
                      "llm.api_key_env (%s) and llm.api_key_file (%s) are both set: keep one", env, file);
  if (has_env) {
    const char *v = getenv(env);
    if (!v || !*v)
      return rt_err_set(err, RT_ERR_USAGE,
                        "llm.api_key_env = %s but the environment variable %s is unset or empty: export it "
                        "or use llm.api_key_file",
                        env, env);
    char *k = rt_trim(rt_xstrdup(v));
    if (!*k || has_control(k)) {
      free(k);
      return rt_err_set(err, RT_ERR_USAGE,
                        "the environment variable %s (llm.api_key_env) is blank or holds a control character",
                        env);
    }
    *key = k;
  } else if (has_file) {
    int rc = read_key_file(file, key, err);
    if (rc) return rc;
  }
  if (*key) rt_secret_add(*key);
  return RT_OK;
}

static int valid_header_name(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(isalnum(c) || strchr("!#$%&'*+-.^_`|~", c))) return 0;
  }
  return 1;
}

static struct curl_slist *append(struct curl_slist *l, const char *line) {
  struct curl_slist *n = curl_slist_append(l, line);
  if (!n) {
    fprintf(stderr, "ragtide: out of memory building request headers\n");
    exit(RT_ERR_NOMEM);
  }
  return n;
}

int rt_llm_build_headers(int gemini, const char *key, const char *extra, struct curl_slist **out, rt_err *err) {
  struct curl_slist *l = NULL;
  l = append(l, "Content-Type: application/json");
  l = append(l, "Accept: application/json");
  /* HTTP/1.1 POSTs over 1 KiB would wait up to a second for "100 Continue". */
  l = append(l, "Expect:");
  if (key) {
    size_t n = strlen(key) + 32;
    char *line = rt_xmalloc(n);
    snprintf(line, n, gemini ? "x-goog-api-key: %s" : "Authorization: Bearer %s", key);
    l = append(l, line);
    memset(line, 0, n); /* do not leave a copy of the key on the heap */
    free(line);
  }
  if (extra && *extra) {
    char *copy = rt_xstrdup(extra);
    int idx = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
      idx++;
      rt_trim(tok);
      if (!*tok) continue;
      char *colon = strchr(tok, ':');
      size_t nl = colon ? (size_t)(colon - tok) : 0;
      while (nl && isspace((unsigned char)tok[nl - 1])) nl--;
      if (!colon || !valid_header_name(tok, nl) || has_control(tok)) {
        rt_err_set(err, RT_ERR_USAGE,
                   "llm.headers entry %d (\"%.60s\") is not \"Name: value\" (entries are separated by ';')",
                   idx, tok);
        free(copy);
        curl_slist_free_all(l);
        return RT_ERR_USAGE;
      }
      char *val = colon + 1;
      while (isspace((unsigned char)*val)) val++;
      size_t n = nl + strlen(val) + 4;
      char *line = rt_xmalloc(n);
      /* "Name:" alone would tell curl to remove the header; "Name;" sends it empty. */
      if (*val)
        snprintf(line, n, "%.*s: %s", (int)nl, tok, val);
      else
        snprintf(line, n, "%.*s;", (int)nl, tok);
      l = append(l, line);
      free(line);
    }
    free(copy);
  }
  *out = l;
  return RT_OK;
}
