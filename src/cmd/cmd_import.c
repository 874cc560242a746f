/* cmd_import.c — `ragtide import movielens`: public MovieLens releases as a
 * catalog and daily event shards (docs/formats.md §1, §2; §2.3 the mapping).
 *
 * Two layouts, found by their file names in DIR:
 *   CSV releases (ml-latest-small, ml-25m, ...): ratings.csv
 *     (userId,movieId,rating,timestamp, a header line) and movies.csv
 *     (movieId,title,genres: RFC 4180 quoting, genres separated by '|');
 *   the 100K release: u.data (user<TAB>item<TAB>rating<TAB>timestamp),
 *     u.item (pipe-separated: id|title|release|video release|URL|19 flags)
 *     and u.genre (name|index: the flags' order).
 * A cluster is a genre set (`genre-set`: the movie's genres, sorted, as the
 * keywords) or a movie's first genre (`primary-genre`); cluster ids are 1..N
 * in the order of the sorted descriptions, so they do not depend on file
 * order. Engagement = rating / 5. The ratings are held in memory (24 bytes
 * each), sorted by (ts, user, cluster) and written as one shard per UTC day:
 * OUT/logs/YYYY-MM-DD/part-0000.<ext>, the layout of ragtide-gen-logs.
 *
 * MovieLens: F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens
 * Datasets: History and Context. ACM TiiS 5(4):19. */
#include "base/err.h"
#include "base/log.h"
#include "base/util.h"
#include "cmd/commands.h"
#include "format/catalog.h"
#include "format/events.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_GENRES 64

typedef struct {
  const char *kind; /* genre-set | primary-genre */
  const char *fmt;  /* msgpack.zst | tsv */
  const char *dir, *out;
} import_opts;

/* movie id -> cluster description (before ids are given) */
typedef struct {
  uint32_t movie;
  int32_t desc; /* index into the description list */
} movie_map;

typedef RT_VEC(char *) str_vec;
typedef RT_VEC(movie_map) movie_vec;
typedef RT_VEC(rt_event) event_vec;

typedef struct {
  import_opts o;
  str_vec desc; /* distinct cluster descriptions, in first-seen order */
  movie_vec movies;
  event_vec ev;
  char path[4096];
} importer;

static int exists(const char *dir, const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return access(p, F_OK) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The description of a movie's genres: genre-set = sorted, de-duplicated,
 * joined with ", "; primary-genre = the first one. No genre: the CSV
 * releases' own "(no genres listed)". Returns its index in im->desc. */
static int32_t intern_genres(importer *im, char **g, size_t n) {
  char buf[2048] = "";
  if (n == 0) {
    snprintf(buf, sizeof buf, "(no genres listed)");
  } else if (!strcmp(im->o.kind, "primary-genre")) {
    snprintf(buf, sizeof buf, "%s", g[0]);
  } else {
    qsort(g, n, sizeof *g, cmp_str);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
      if (i && !strcmp(g[i], g[i - 1])) continue;
      len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", len ? ", " : "", g[i]);
      if (len >= sizeof buf) break;
    }
  }
  for (size_t i = 0; i < im->desc.len; i++) /* few distinct sets (~1,000 in ml-25m) */
    if (!strcmp(im->desc.data[i], buf)) return (int32_t)i;
  rt_vec_push(&im->desc, rt_xstrdup(buf));
  return (int32_t)(im->desc.len - 1);
}

static int cmp_movie(const void *a, const void *b) {
  const movie_map *x = a, *y = b;
  return x->movie < y->movie ? -1 : x->movie > y->movie;
}

static int parse_u32(const char *s, uint32_t *out) {
  if (!*s || *s == '-' || *s == '+') return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > UINT32_MAX) return -1;
  *out = (uint32_t)v;
  return 0;
}

static void chomp(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = 0;
}

/* Split one CSV line (RFC 4180 quotes, "" inside quotes) in place. */
static size_t csv_split(char *line, char **f, size_t max) {
  size_t n = 0;
  char *r = line, *w = line;
  while (n < max) {
    f[n++] = w;
    if (*r == '"') {
      r++;
      for (;;) {
        if (!*r) break;
        if (*r == '"' && r[1] == '"') *w++ = '"', r += 2;
        else if (*r == '"') {
          r++;
          break;
        } else *w++ = *r++;
      }
    }
    while (*r && *r != ',') *w++ = *r++;
    if (!*r) {
      *w = 0;
      break;
    }
    *w++ = 0;
    r++;
  }
  return n;
}

static FILE *open_in(importer *im, const char *name, rt_err *err) {
  snprintf(im->path, sizeof im->path, "%s/%s", im->o.dir, name);
  FILE *f = fopen(im->path, "r");
  if (!f) rt_err_set(err, RT_ERR_INPUT, "cannot open %s: %s", im->path, strerror(errno));
  return f;
}

static int load_movies_csv(importer *im, rt_err *err) {
  FILE *f = open_in(im, "movies.csv", err);
  if (!f) return err->code;
  char *line = NULL;
  size_t cap = 0;
  long lineno = 0;
  int rc = RT_OK;
  while (rc == RT_OK && getline(&line, &cap, f) >= 0) {
    lineno++;
    chomp(line);
    if (!*line) continue;
    if (lineno == 1 && !strncmp(line, "movieId,", 8)) continue;
    char *fld[3];
    size_t nf = csv_split(line, fld, 3);
    uint32_t id;
    if (nf != 3 || parse_u32(fld[0], &id))
      rc = rt_err_set(err, RT_ERR_INPUT, "%s:%ld: expected \"movieId,title,genres\" with an unsigned movieId; "
                      "is this a MovieLens movies.csv?", im->path, lineno);
    if (rc) break;
    char *g[MAX_GENRES];
    size_t ng = 0;
    for (char *s = fld[2], *tok; ng < MAX_GENRES && (tok = strsep(&s, "|"));)
      if (*tok && strcmp(tok, "(no genres listed)")) g[ng++] = tok;
    rt_vec_push(&im->movies, ((movie_map){id, intern_genres(im, g, ng)}));
  }
  free(line);
  fclose(f);
  return rc;
}

static int load_movies_100k(importer *im, rt_err *err) {
  /* u.genre: "name|index" lines give the flags' order */
  char *gname[MAX_GENRES] = {0};
  size_t ngenre = 0;
  FILE *f = open_in(im, "u.genre", err);
  if (!f) return err->code;
  char *line = NULL;
  size_t cap = 0;
  long lineno = 0;
  int rc = RT_OK;
  while (rc == RT_OK && getline(&line, &cap, f) >= 0) {
    lineno++;
    chomp(line);
    if (!*line) continue;
    char *bar = strrchr(line, '|');
    uint32_t idx;
    if (!bar || parse_u32(bar + 1, &idx) || idx >= MAX_GENRES || idx != ngenre) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s:%ld: expected \"genre|index\" with indices 0, 1, 2, ... in order",
                      im->path, lineno);
      break;
    }
    *bar = 0;
    gname[ngenre++] = rt_xstrdup(line);
  }
  fclose(f);
  if (rc == RT_OK && !ngenre) rc = rt_err_set(err, RT_ERR_INPUT, "%s: no genres", im->path);
  if (rc == RT_OK && !(f = open_in(im, "u.item", err))) rc = err->code;
  lineno = 0;
  while (rc == RT_OK && getline(&line, &cap, f) >= 0) {
    lineno++;
    chomp(line);
    if (!*line) continue;
    char *fld[5 + MAX_GENRES], *s = line, *tok;
    size_t nf = 0;
    while (nf < 5 + MAX_GENRES && (tok = strsep(&s, "|"))) fld[nf++] = tok;
    uint32_t id;
    if (nf != 5 + ngenre || parse_u32(fld[0], &id)) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s:%ld: expected %zu '|'-separated fields (id|title|release|video "
                      "release|URL|%zu genre flags in u.genre order), found %zu", im->path, lineno, 5 + ngenre,
                      ngenre, nf);
      break;
    }
    char *g[MAX_GENRES];
    size_t ng = 0;
    for (size_t k = 0; k < ngenre && rc == RT_OK; k++) {
      if (!strcmp(fld[5 + k], "1")) g[ng++] = gname[k];
      else if (strcmp(fld[5 + k], "0"))
        rc = rt_err_set(err, RT_ERR_INPUT, "%s:%ld: genre flag %zu (%s) is \"%s\", expected 0 or 1", im->path,
                        lineno, k, gname[k], fld[5 + k]);
    }
    if (rc == RT_OK) rt_vec_push(&im->movies, ((movie_map){id, intern_genres(im, g, ng)}));
  }
  if (f) fclose(f);
  free(line);
  for (size_t k = 0; k < ngenre; k++) free(gname[k]);
  return rc;
}

/* Ratings: CSV (header, ',') or u.data (no header, tabs). */
static int load_ratings(importer *im, const char *name, char sep, rt_err *err) {
  FILE *f = open_in(im, name, err);
  if (!f) return err->code;
  char *line = NULL;
  size_t cap = 0;
  long lineno = 0;
  int rc = RT_OK;
  while (rc == RT_OK && getline(&line, &cap, f) >= 0) {
    lineno++;
    chomp(line);
    if (!*line) continue;
    if (lineno == 1 && sep == ',' && !strncmp(line, "userId,", 7)) continue;
    char *fld[5], *s = line, *tok;
    size_t nf = 0;
    char seps[2] = {sep, 0};
    while (nf < 5 && (tok = strsep(&s, seps))) fld[nf++] = tok;
    uint32_t user, movie;
    char *end;
    double rating = nf == 4 ? strtod(fld[2], &end) : -1;
    long long ts = 0;
    if (nf != 4 || parse_u32(fld[0], &user) || parse_u32(fld[1], &movie) || *end || !(rating >= 0 && rating <= 5)) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s:%ld: expected user%sitem%srating (0..5)%stimestamp", im->path, lineno,
                      sep == ',' ? "," : "<TAB>", sep == ',' ? "," : "<TAB>", sep == ',' ? "," : "<TAB>");
      break;
    }
    errno = 0;
    ts = strtoll(fld[3], &end, 10);
    if (errno || *end || !*fld[3] || ts < 0) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s:%ld: timestamp \"%s\" is not unix seconds >= 0", im->path, lineno,
                      fld[3]);
      break;
    }
    movie_map key = {movie, 0}, *m = bsearch(&key, im->movies.data, im->movies.len, sizeof key, cmp_movie);
    if (!m) {
      rc = rt_err_set(err, RT_ERR_INPUT, "%s:%ld: movie %u is not in the movie list (%s); the two files must come "
                      "from the same release", im->path, lineno, movie,
                      sep == ',' ? "movies.csv" : "u.item");
      break;
    }
    /* the cluster index for now; ids are given once all descriptions are known */
    rt_vec_push(&im->ev, ((rt_event){user, ts, (uint32_t)m->desc, (float)(rating / 5.0)}));
  }
  free(line);
  fclose(f);
  return rc;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int cmp_event(const void *a, const void *b) {
  const rt_event *x = a, *y = b;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  if (x->user != y->user) return x->user < y->user ? -1 : 1;
  if (x->cluster != y->cluster) return x->cluster < y->cluster ? -1 : 1;
  return x->engagement < y->engagement ? -1 : x->engagement > y->engagement;
}

static int mkdir_p(const char *path, rt_err *err) {
  char p[4096];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, 0755) && errno != EEXIST) return rt_err_set(err, RT_ERR_OUTPUT, "cannot create %s: %s", p, strerror(errno));
    *s = '/';
  }
  if (mkdir(p, 0755) && errno != EEXIST) return rt_err_set(err, RT_ERR_OUTPUT, "cannot create %s: %s", p, strerror(errno));
  return RT_OK;
}

static int write_out(importer *im, uint64_t *users, uint64_t *days, rt_err *err) {
  /* cluster ids 1..N in the order of the sorted descriptions */
  size_t n = im->desc.len;
  char **sorted = rt_xmalloc((n ? n : 1) * sizeof *sorted);
  memcpy(sorted, im->desc.data, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, cmp_str);
  uint32_t *id_of = rt_xmalloc((n ? n : 1) * sizeof *id_of), *ids = rt_xmalloc((n ? n : 1) * sizeof *ids);
  for (size_t i = 0; i < n; i++) {
    ids[i] = (uint32_t)i + 1;
    for (size_t j = 0; j < n; j++)
      if (sorted[i] == im->desc.data[j]) id_of[j] = (uint32_t)i + 1;
  }
  rt_catalog cat = {0};
  int rc = mkdir_p(im->o.out, err);
  if (rc == RT_OK) rc = rt_catalog_build(ids, (const char *const *)sorted, (uint32_t)n, "the MovieLens genres", &cat, err);
  char path[4096];
  snprintf(path, sizeof path, "%s/catalog.tsv", im->o.out);
  if (rc == RT_OK) rc = rt_catalog_write(&cat, path, err);
  rt_catalog_free(&cat);
  for (size_t i = 0; i < im->ev.len; i++) im->ev.data[i].cluster = id_of[im->ev.data[i].cluster];
  qsort(im->ev.data, im->ev.len, sizeof *im->ev.data, cmp_event);
  /* users: distinct ids */
  uint64_t *u = rt_xmalloc((im->ev.len ? im->ev.len : 1) * sizeof *u);
  for (size_t i = 0; i < im->ev.len; i++) u[i] = im->ev.data[i].user;
  qsort(u, im->ev.len, sizeof *u, cmp_u64);
  *users = 0;
  for (size_t i = 0; i < im->ev.len; i++) *users += i == 0 || u[i] != u[i - 1];
  free(u);
  *days = 0;
  for (size_t i = 0; i < im->ev.len && rc == RT_OK;) {
    int64_t day = im->ev.data[i].ts / 86400;
    size_t j = i;
    while (j < im->ev.len && im->ev.data[j].ts / 86400 == day) j++;
    char date[32];
    rt_format_utc(day * 86400, date, sizeof date);
    date[10] = 0;
    snprintf(path, sizeof path, "%s/logs/%s", im->o.out, date);
    rc = mkdir_p(path, err);
    snprintf(path, sizeof path, "%s/logs/%s/part-0000.%s", im->o.out, date, im->o.fmt);
    rt_event_writer *w = NULL;
    if (rc == RT_OK) rc = rt_events_create(path, 3, &w, err);
    if (rc == RT_OK) {
      rc = rt_events_write(w, im->ev.data + i, j - i, err);
      if (rc == RT_OK) rc = rt_events_finish(w, err);
      else rt_events_abort(w);
    }
    (*days)++;
    i = j;
  }
  free(sorted);
  free(id_of);
  free(ids);
  return rc;
}

static const char USAGE_NOTE[] = "see `ragtide help import`";

int rt_cmd_import(int argc, char **argv) {
  rt_err err = {0};
  importer im = {.o = {"genre-set", "msgpack.zst", NULL, NULL}};
  int rc = RT_OK;
  const char *pos[3];
  int npos = 0;
  for (int i = 1; i < argc && rc == RT_OK; i++) {
    const char *v;
    int r;
    if ((r = rt_flag_value(argc, argv, &i, "--clusters", &v, "import", &err))) {
      if (r < 0) rc = RT_ERR_USAGE;
      else if (strcmp(v, "genre-set") && strcmp(v, "primary-genre"))
        rc = rt_err_set(&err, RT_ERR_USAGE, "import: --clusters is genre-set or primary-genre, not \"%s\"", v);
      else im.o.kind = v;
    } else if ((r = rt_flag_value(argc, argv, &i, "--format", &v, "import", &err))) {
      if (r < 0) rc = RT_ERR_USAGE;
      else if (strcmp(v, "msgpack.zst") && strcmp(v, "tsv"))
        rc = rt_err_set(&err, RT_ERR_USAGE, "import: --format is msgpack.zst or tsv, not \"%s\"", v);
      else im.o.fmt = v;
    } else if (argv[i][0] == '-' || npos == 3) {
      rc = rt_bad_arg("import", argv[i], &err);
    } else {
      pos[npos++] = argv[i];
    }
  }
  if (rc == RT_OK && (npos != 3 || strcmp(pos[0], "movielens")))
    rc = rt_err_set(&err, RT_ERR_USAGE, "import: expected `import movielens [options] DIR OUT` (%s)", USAGE_NOTE);
  if (rc) goto out;
  im.o.dir = pos[1];
  im.o.out = pos[2];
  int csv = exists(im.o.dir, "ratings.csv") && exists(im.o.dir, "movies.csv");
  int old = exists(im.o.dir, "u.data") && exists(im.o.dir, "u.item") && exists(im.o.dir, "u.genre");
  if (!csv && !old) {
    rc = rt_err_set(&err, RT_ERR_INPUT, "%s holds neither MovieLens layout: expected ratings.csv and movies.csv "
                    "(CSV releases), or u.data, u.item and u.genre (the 100K release)", im.o.dir);
    goto out;
  }
  rc = csv ? load_movies_csv(&im, &err) : load_movies_100k(&im, &err);
  if (rc) goto out;
  qsort(im.movies.data, im.movies.len, sizeof *im.movies.data, cmp_movie);
  for (size_t i = 1; i < im.movies.len && rc == RT_OK; i++)
    if (im.movies.data[i].movie == im.movies.data[i - 1].movie)
      rc = rt_err_set(&err, RT_ERR_INPUT, "%s/%s: movie %u is listed twice", im.o.dir, csv ? "movies.csv" : "u.item",
                      im.movies.data[i].movie);
  if (rc == RT_OK) rc = csv ? load_ratings(&im, "ratings.csv", ',', &err) : load_ratings(&im, "u.data", '\t', &err);
  uint64_t users = 0, days = 0;
  if (rc == RT_OK) rc = write_out(&im, &users, &days, &err);
  if (rc == RT_OK) {
    char first[32] = "-", last[32] = "-";
    if (im.ev.len) {
      rt_format_utc(im.ev.data[0].ts / 86400 * 86400, first, sizeof first);
      rt_format_utc(im.ev.data[im.ev.len - 1].ts / 86400 * 86400, last, sizeof last);
      first[10] = last[10] = 0;
    }
    printf("imported %s (%s layout): ratings %zu, users %llu, movies %zu, clusters %zu (%s), days %llu, "
           "first %s, last %s -> %s/catalog.tsv, %s/logs/*/part-0000.%s\n",
           im.o.dir, csv ? "CSV" : "100K", im.ev.len, (unsigned long long)users, im.movies.len, im.desc.len,
           im.o.kind, (unsigned long long)days, first, last, im.o.out, im.o.out, im.o.fmt);
    printf("MovieLens: F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and "
           "Context. ACM TiiS 5(4):19 (non-commercial use; see the release's README)\n");
  }
out:
  if (rc) fprintf(stderr, "ragtide: error: %s\n", err.msg);
  for (size_t i = 0; i < im.desc.len; i++) free(im.desc.data[i]);
  free(im.desc.data);
  free(im.movies.data);
  free(im.ev.data);
  return rc;
}
