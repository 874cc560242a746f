/* ragtide/table.h — the ragtide transition table: open, look up, build.
 *
 * libragtide is what an online-serving binary links to read the table that
 * `ragtide refresh` publishes. It depends on msgpack-c, zstd and xxhash only:
 * no MPI, no curl. The file format is specified in docs/formats.md.
 *
 * Stable API: everything outside the RAGTIDE_STATIC_LINKING_ONLY section.
 * Within a major version (RAGTIDE_VERSION_MAJOR, the soname libragtide.so.MAJOR)
 * it only grows: no declaration, struct layout or enum value changes.
 * Experimental API: building tables (the section at the end), declared only
 * when RAGTIDE_STATIC_LINKING_ONLY is defined before including this header,
 * as zstd does with ZSTD_STATIC_LINKING_ONLY. It may change in any minor
 * release: link libragtide statically, or require the exact version.
 * Symbols: the shared library exports the functions declared here (both
 * sections, marked RAGTIDE_API) and nothing else.
 * Functions return RAGTIDE_OK (0) or a negative ragtide_status;
 * ragtide_strerror() names it.
 * Thread safety: after ragtide_table_open() returns, any number of threads
 * may call the const lookup functions on the same table concurrently.
 * Ownership: pointers returned by accessors belong to the table and live
 * until ragtide_table_close(). Tables and builders are created by this library
 * and freed only with ragtide_table_close() / ragtide_builder_free() (both
 * accept NULL). A builder is not thread-safe: one thread at a time.
 * Error messages: functions taking (errbuf, errcap) write one line naming the
 * file and what is wrong, NUL-terminated and truncated to errcap; errbuf may
 * be NULL. A table is fully decoded at open (about 8 bytes per pair and
 * candidate of memory) and never touches its file again, so the file may be
 * replaced or deleted while the table is open.
 * Link with `pkg-config --cflags --libs ragtide` or CMake find_package(ragtide)
 * -> ragtide::ragtide. */
#ifndef RAGTIDE_TABLE_H
#define RAGTIDE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Library version (semantic versioning). The build reads it from here:
 * CMakeLists.txt, ragtide.pc and `ragtide --version` follow these lines. */
#define RAGTIDE_VERSION_MAJOR 0
#define RAGTIDE_VERSION_MINOR 1
#define RAGTIDE_VERSION_PATCH 0
#define RAGTIDE_VERSION_NUMBER \
  (RAGTIDE_VERSION_MAJOR * 10000 + RAGTIDE_VERSION_MINOR * 100 + RAGTIDE_VERSION_PATCH)
#define RAGTIDE_VERSION_STR2_(x) #x
#define RAGTIDE_VERSION_STR_(a, b, c) \
  RAGTIDE_VERSION_STR2_(a) "." RAGTIDE_VERSION_STR2_(b) "." RAGTIDE_VERSION_STR2_(c)
#define RAGTIDE_VERSION_STRING \
  RAGTIDE_VERSION_STR_(RAGTIDE_VERSION_MAJOR, RAGTIDE_VERSION_MINOR, RAGTIDE_VERSION_PATCH)

/* Exported from the shared library (which is built with -fvisibility=hidden). */
#ifndef RAGTIDE_API
#if defined(__GNUC__) && __GNUC__ >= 4
#define RAGTIDE_API __attribute__((visibility("default")))
#else
#define RAGTIDE_API
#endif
#endif

/* The version of the library linked at run time (the macros above are the
 * version compiled against): RAGTIDE_VERSION_NUMBER and "MAJOR.MINOR.PATCH". */
RAGTIDE_API unsigned ragtide_version_number(void);
RAGTIDE_API const char *ragtide_version_string(void);

#define RAGTIDE_FORMAT_MAJOR 1 /* readers refuse files of another major version */
#define RAGTIDE_FORMAT_MINOR 1 /* minor version this library writes; it reads any 1.x */

typedef enum ragtide_status {
  RAGTIDE_OK = 0,
  RAGTIDE_E_IO = -1,        /* open/read/write/rename failed (errno in the message) */
  RAGTIDE_E_NOMEM = -2,
  RAGTIDE_E_MAGIC = -3,     /* not a ragtide table */
  RAGTIDE_E_VERSION = -4,   /* unknown major format version */
  RAGTIDE_E_CHECKSUM = -5,  /* checksum mismatch: the file was altered or truncated */
  RAGTIDE_E_CORRUPT = -6,   /* structure invalid (truncated section, bad field) */
  RAGTIDE_E_NOTFOUND = -7,  /* cluster id not in the table's catalog */
  RAGTIDE_E_ARG = -8,       /* invalid argument */
  RAGTIDE_E_MISMATCH = -9,  /* two tables with different catalogs (merge) */
} ragtide_status;

typedef enum ragtide_provenance {
  RAGTIDE_PROV_NONE = 0,     /* no prediction for this pair */
  RAGTIDE_PROV_BASE = 1,     /* from the base (fine-tuned, monthly) table */
  RAGTIDE_PROV_RAG = 2,      /* from a RAG refresh answer */
  RAGTIDE_PROV_FALLBACK = 3, /* endpoint failed: base answer or top retrieved successor */
  RAGTIDE_PROV_RETRIEVAL = 4, /* the pair's top retrieved successor, no model asked (llm.api = retrieval);
                                 format 1.1 (a 1.0 reader sees it as RAGTIDE_PROV_RAG) */
} ragtide_provenance;
#define RAGTIDE_PROV_COUNT 5

/* The provenance's name as the tools print it: "none", "base", "rag",
 * "fallback", "retrieval"; "?" for a value out of range. */
RAGTIDE_API const char *ragtide_provenance_name(ragtide_provenance p);

/* The overlay rule, shared by `ragtide refresh` and ragtide_table_merge: a
 * pair whose refreshed entry has one of these provenances (rag, retrieval,
 * fallback: the refresh produced it) takes the refresh's whole candidate
 * list; any other pair keeps the base table's. */
static inline int ragtide_provenance_is_refresh(ragtide_provenance p) {
  return p == RAGTIDE_PROV_RAG || p == RAGTIDE_PROV_FALLBACK || p == RAGTIDE_PROV_RETRIEVAL;
}

/* Header fields. Strings are NUL-terminated, never NULL (may be ""). */
typedef struct ragtide_table_info {
  uint32_t version_major, version_minor;
  uint32_t n_clusters;      /* catalog size */
  uint32_t k;               /* history length; always 2 */
  uint32_t candidates;      /* predictions stored per pair */
  int64_t created_at;       /* unix seconds */
  int64_t window_start;     /* refresh data window [start, end), unix seconds; 0 if none */
  int64_t window_end;
  uint64_t catalog_hash;    /* hash of cluster ids and normalised descriptions */
  uint64_t template_hash;   /* hash of the prompt template */
  uint64_t config_hash;     /* hash of the effective configuration */
  const char *model;        /* model id */
  const char *run_id;       /* the run that produced the table */
  const char *base_run_id;  /* run id of the base table overlaid, "" if none */
  uint64_t count_by_prov[RAGTIDE_PROV_COUNT]; /* pairs whose first candidate has provenance i */
} ragtide_table_info;

typedef struct ragtide_candidate {
  uint32_t next;            /* external cluster id */
  ragtide_provenance prov;
  uint32_t day;             /* day produced, days since 1970-01-01 UTC */
} ragtide_candidate;

typedef struct ragtide_table ragtide_table;

/* Open and fully verify a table (magic, version, checksum, structure).
 * On success *out is a new table. On failure *out is NULL and the status is
 * RAGTIDE_E_IO (cannot read the file), E_MAGIC (not a table), E_VERSION
 * (another major version; the message names the file's version), E_CORRUPT
 * (truncated, bad section lengths or a malformed field), E_CHECKSUM (altered
 * bytes), E_NOMEM or E_ARG (NULL path/out); errbuf gets the message. Files of
 * a later minor version open: unknown header fields are ignored. */
RAGTIDE_API int ragtide_table_open(const char *path, ragtide_table **out, char *errbuf, size_t errcap);
RAGTIDE_API void ragtide_table_close(ragtide_table *t);

RAGTIDE_API const ragtide_table_info *ragtide_table_get_info(const ragtide_table *t);
/* The catalog's cluster ids in dense-index order (ascending). */
RAGTIDE_API const uint32_t *ragtide_table_cluster_ids(const ragtide_table *t, uint32_t *n);

/* Top prediction for the history (c1, c2), by external cluster ids. O(1).
 * RAGTIDE_OK with *prov = RAGTIDE_PROV_NONE (and *next untouched) when the
 * pair has no prediction; RAGTIDE_E_NOTFOUND when c1 or c2 is unknown;
 * RAGTIDE_E_ARG when t or prov is NULL (next may be NULL). */
RAGTIDE_API int ragtide_table_lookup(const ragtide_table *t, uint32_t c1, uint32_t c2, uint32_t *next,
                                     ragtide_provenance *prov);

/* All candidates of (c1, c2) in rank order (ranks without a prediction are
 * skipped); returns how many (0..candidates) were written to out (at most
 * cap), or RAGTIDE_E_NOTFOUND / RAGTIDE_E_ARG. */
RAGTIDE_API int ragtide_table_candidates(const ragtide_table *t, uint32_t c1, uint32_t c2,
                                         ragtide_candidate *out, size_t cap);

/* Candidate j of the pair of dense indices (i1, i2): next as a dense index,
 * or UINT32_MAX when none (then *prov = NONE, *day = 0). Any output pointer
 * may be NULL. RAGTIDE_E_ARG when i1, i2 or j is out of range. For tools
 * that walk every pair. */
RAGTIDE_API int ragtide_table_get_idx(const ragtide_table *t, uint32_t i1, uint32_t i2, uint32_t j,
                                      uint32_t *next_idx, ragtide_provenance *prov, uint32_t *day);

/* Human-readable description of a status ("checksum mismatch ..."); static string. */
RAGTIDE_API const char *ragtide_strerror(int status);
/* Short stable name of a status for machine output: "ok", "io", "nomem", "magic",
 * "version", "checksum", "corrupt", "notfound", "arg", "mismatch". Static string. */
RAGTIDE_API const char *ragtide_status_name(int status);

/* Dense index of an external cluster id, or -1 if the id is not in the catalog. O(1). */
RAGTIDE_API int32_t ragtide_table_index_of(const ragtide_table *t, uint32_t id);

/* Open and close a table only to check it: the same checks as ragtide_table_open(). */
RAGTIDE_API int ragtide_table_verify_file(const char *path, char *errbuf, size_t errcap);

#ifdef __cplusplus
}
#endif
#endif /* RAGTIDE_TABLE_H */

/* Outside the include guard, as zstd.h does: a file may include this header
 * again after defining RAGTIDE_STATIC_LINKING_ONLY. */
#if defined(RAGTIDE_STATIC_LINKING_ONLY) && !defined(RAGTIDE_H_BUILDER_API)
#define RAGTIDE_H_BUILDER_API
#ifdef __cplusplus
extern "C" {
#endif
/* ---- Experimental: building tables (`ragtide refresh`, `merge`, tests) ----
 * Declared only with RAGTIDE_STATIC_LINKING_ONLY defined. NOT stable: these
 * declarations may change between minor versions (the file format they
 * write is versioned on its own: RAGTIDE_FORMAT_MAJOR/MINOR). Use them
 * linked statically (ragtide::ragtide_static, libragtide.a) or against the
 * exact version built with. A serving binary needs none. */

typedef struct ragtide_table_builder ragtide_table_builder;

/* A builder for n clusters (ids ascending, unique, n <= 2^20), `candidates`
 * per pair (1..16), every pair initially RAGTIDE_PROV_NONE; n*n*candidates
 * must stay below 2^31. Copies the ids. NULL on bad arguments or OOM. */
RAGTIDE_API ragtide_table_builder *ragtide_builder_new(const uint32_t *cluster_ids, uint32_t n,
                                                       uint32_t candidates);

/* Set candidate j of pair (i1, i2) (dense indices) to next_idx; prov NONE
 * clears the entry (next_idx and day are then ignored). RAGTIDE_E_ARG for an
 * index, rank, next_idx or provenance out of range. */
RAGTIDE_API int ragtide_builder_set(ragtide_table_builder *b, uint32_t i1, uint32_t i2, uint32_t j,
                                    uint32_t next_idx, ragtide_provenance prov, uint32_t day);

/* Header fields to write (n_clusters, candidates, counts are filled by the
 * builder; strings are copied). */
RAGTIDE_API int ragtide_builder_set_info(ragtide_table_builder *b, const ragtide_table_info *info);

/* Serialize and write atomically: write path.tmp.PID, fsync, rename over
 * path, fsync the directory. A failed write leaves any existing file at path
 * untouched (RAGTIDE_E_IO with the file and errno). Keeps no backups: the
 * refresh publishes with rt_table_publish() (K previous tables, rollback). */
RAGTIDE_API int ragtide_builder_write(ragtide_table_builder *b, const char *path, char *errbuf, size_t errcap);

RAGTIDE_API void ragtide_builder_free(ragtide_table_builder *b);

/* Serialize to memory: *out (malloc'ed, the caller frees it) holds the whole
 * file image, *len its size. Deterministic: the same pairs and info give the
 * same bytes whatever the order of ragtide_builder_set() calls. */
RAGTIDE_API int ragtide_builder_serialize(const ragtide_table_builder *b, uint8_t **out, size_t *len,
                                          char *errbuf, size_t errcap);

/* A builder holding a copy of t (pairs and header info), with `candidates`
 * ranks (0 = same as t; fewer drops the lower ranks). NULL on OOM. */
RAGTIDE_API ragtide_table_builder *ragtide_builder_from_table(const ragtide_table *t, uint32_t candidates);

/* Overlay merge: for each pair whose top candidate in `overlay` is RAG or
 * FALLBACK take all of overlay's candidates, else base's. Header info comes
 * from the overlay, with base_run_id = base's run id (if set) and created_at
 * = the later of the two. RAGTIDE_E_MISMATCH when the catalogs differ (ids or
 * catalog hash) or when the overlay names a base_run_id different from base's
 * run_id (both non-empty). On success *out is a new builder (caller frees). */
RAGTIDE_API int ragtide_table_merge(const ragtide_table *base, const ragtide_table *overlay,
                                    ragtide_table_builder **out, char *errbuf, size_t errcap);
#ifdef __cplusplus
}
#endif
#endif /* RAGTIDE_STATIC_LINKING_ONLY */
