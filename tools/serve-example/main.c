/* serve-example — how an online service uses libragtide.
 *
 *   ragtide-serve-example TABLE C1 C2 [C1 C2 ...]   answer the given pairs
 *   ragtide-serve-example TABLE < pairs.txt         one "C1 C2" per line
 *
 * Prints "C1 C2 -> NEXT (provenance)" or "C1 C2 -> none". In stdin mode it
 * also shows hot reload: when `ragtide refresh` publishes a new table (a new
 * inode at TABLE), it opens the new one and swaps it in; the old handle stays
 * valid until closed, because publishing never rewrites a file in place.
 * Links only libragtide (msgpack, zstd, xxhash; no MPI, no curl). */
#include <ragtide/table.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *prov_name(ragtide_provenance p) {
  static const char *names[] = {"none", "base", "rag", "fallback"};
  return (unsigned)p < 4 ? names[p] : "?";
}

static int parse_id(const char *s, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || v > UINT32_MAX || s[0] == '-') return -1;
  *out = (uint32_t)v;
  return 0;
}

static void answer(const ragtide_table *t, uint32_t c1, uint32_t c2) {
  uint32_t next = 0;
  ragtide_provenance prov = RAGTIDE_PROV_NONE;
  int rc = ragtide_table_lookup(t, c1, c2, &next, &prov);
  if (rc == RAGTIDE_E_NOTFOUND) printf("%u %u -> unknown cluster\n", c1, c2);
  else if (rc) printf("%u %u -> error: %s\n", c1, c2, ragtide_strerror(rc));
  else if (prov == RAGTIDE_PROV_NONE) printf("%u %u -> none\n", c1, c2);
  else printf("%u %u -> %u (%s)\n", c1, c2, next, prov_name(prov));
}

static ino_t inode_of(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_ino : 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc % 2 != 0) {
    fprintf(stderr, "usage: ragtide-serve-example TABLE [C1 C2 ...]   (pairs from stdin if none)\n");
    return 2;
  }
  char err[1024];
  ragtide_table *t = NULL;
  ino_t ino = inode_of(argv[1]);
  int rc = ragtide_table_open(argv[1], &t, err, sizeof err);
  if (rc) {
    fprintf(stderr, "ragtide-serve-example: %s\n", err);
    return 7;
  }
  for (int i = 2; i + 1 < argc; i += 2) {
    uint32_t c1, c2;
    if (parse_id(argv[i], &c1) || parse_id(argv[i + 1], &c2)) {
      fprintf(stderr, "ragtide-serve-example: \"%s %s\" is not a pair of cluster ids\n", argv[i], argv[i + 1]);
      ragtide_table_close(t);
      return 2;
    }
    answer(t, c1, c2);
  }
  if (argc == 2) {
    char line[256];
    unsigned long lineno = 0;
    while (fgets(line, sizeof line, stdin)) {
      lineno++;
      ino_t now = inode_of(argv[1]);
      if (now && now != ino) { /* a new table was published: swap it in */
        ragtide_table *nt = NULL;
        if (ragtide_table_open(argv[1], &nt, err, sizeof err) == RAGTIDE_OK) {
          ragtide_table_close(t);
          t = nt;
          ino = now;
        } else {
          fprintf(stderr, "ragtide-serve-example: keeping the old table: %s\n", err);
        }
      }
      unsigned long a, b;
      if (sscanf(line, "%lu %lu", &a, &b) != 2 || a > UINT32_MAX || b > UINT32_MAX) {
        fprintf(stderr, "ragtide-serve-example: stdin line %lu: expected \"C1 C2\"\n", lineno);
        continue;
      }
      answer(t, (uint32_t)a, (uint32_t)b);
    }
  }
  ragtide_table_close(t);
  return 0;
}
