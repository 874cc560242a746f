/* successors.h — per-pair top-k successor sets by period, and what the data
 * tools compute from them (paper §2.1, §2.2, §3.1).
 *
 * Owns: splitting count records' days into periods (calendar months, N-day
 * blocks, or a train/test split date), the top-k successors of every pair in
 * every period (count descending, ties by the smaller cluster index, which is
 * the smaller id since dense indices follow id order), the drift statistics
 * of `ragtide drift` (Jaccard of consecutive periods, overlap with the first
 * period) and the sample selection and JSONL lines of `ragtide
 * export-finetune`. No MPI, no I/O: the commands read and write files. */
#ifndef RT_RAG_SUCCESSORS_H
#define RT_RAG_SUCCESSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "format/counts.h"

/* ---- periods ------------------------------------------------------------ */

typedef enum rt_period_kind {
  RT_PERIOD_MONTH, /* calendar months (UTC); period 0 is the month of `anchor` */
  RT_PERIOD_DAYS,  /* blocks of `days` days; period 0 starts on day `anchor` */
  RT_PERIOD_SPLIT, /* period 0: days before `anchor`; period 1: from it on */
} rt_period_kind;

typedef struct rt_periods {
  rt_period_kind kind;
  int32_t days;   /* RT_PERIOD_DAYS: block length (>= 1) */
  int32_t anchor; /* days since 1970-01-01; see the kinds */
} rt_periods;

/* Cap on the number of periods, so a corrupt day value cannot ask for a huge
 * table (1000 years of months). */
#define RT_PERIODS_MAX 12000

/* Parse "month", "week" (= 7d) or "Nd" (N in 1..36500). The anchor is left
 * 0; the caller sets it (the first day with data). RT_ERR_USAGE on bad text. */
int rt_periods_parse(const char *s, rt_periods *p, rt_err *err);
/* Period index of a day (negative before the anchor). */
int64_t rt_period_of(const rt_periods *p, int32_t day);
/* First day and end day (exclusive) of period idx. For SPLIT period 0 starts
 * at INT32_MIN and period 1 ends at INT32_MAX. */
void rt_period_bounds(const rt_periods *p, int64_t idx, int32_t *first, int32_t *end);
/* "2026-01" for months, the first day "2026-01-08" for day blocks, "train" /
 * "test" for a split. */
void rt_period_name(const rt_periods *p, int64_t idx, char *buf, size_t cap);
/* "YYYY-MM-DD" of a day number; "YYYY-MM-DD" -> day (0 ok, -1 malformed). */
void rt_day_format(int32_t day, char *buf, size_t cap);
int rt_day_parse(const char *s, int32_t *day);

/* ---- top-k successor sets ----------------------------------------------- */

typedef struct rt_topk {
  uint64_t pair;   /* c1 << 20 | c2 (rt_key_pair) */
  int32_t period;
  uint32_t n;      /* successors kept, 1..k */
  uint64_t total;  /* the pair's count in the period, over all its successors */
  size_t off;      /* its successors: next[off .. off+n), best first */
} rt_topk;

typedef struct rt_succ {
  uint32_t k;
  int32_t n_periods;  /* periods 0 .. n_periods-1 (some may hold no set) */
  rt_topk *sets;      /* sorted by (period, pair) */
  size_t n_sets;
  size_t *begin;      /* [n_periods + 1]: sets of period p are sets[begin[p] .. begin[p+1]) */
  uint32_t *next;     /* ranked successors (dense indices) */
  uint64_t *count;    /* their counts in the period */
} rt_succ;

/* Build the top-k sets of every (pair, period) from count records (any
 * order). Only records of the refresh window (win 0) count; records before
 * period 0 are ignored. A successor enters a set only if its count in the
 * period is >= min_count; a pair none of whose successors does has no set.
 * RT_ERR_INPUT if the days span more than RT_PERIODS_MAX periods; RT_ERR_USAGE
 * if k is 0. */
int rt_succ_build(const rt_count *rec, size_t n, const rt_periods *p, uint32_t k, uint64_t min_count,
                  rt_succ *out, rt_err *err);
void rt_succ_free(rt_succ *s);

/* The same, streamed: records come in any number of chunks, sorted by pair
 * (as a counts file holds them); memory holds one pair's records plus the
 * sets. add fails (RT_ERR_INPUT) on a record out of pair order or dated too
 * far out, naming its number in the stream. finish fills out and frees b;
 * after a failure, free b with rt_succ_builder_free. k must be >= 1. */
typedef struct rt_succ_builder rt_succ_builder;
rt_succ_builder *rt_succ_builder_new(const rt_periods *p, uint32_t k, uint64_t min_count);
int rt_succ_builder_add(rt_succ_builder *b, const rt_count *rec, size_t n, rt_err *err);
void rt_succ_builder_finish(rt_succ_builder *b, rt_succ *out);
void rt_succ_builder_free(rt_succ_builder *b);
/* The set of pair in period p, or NULL. O(log n). */
const rt_topk *rt_succ_find(const rt_succ *s, int32_t period, uint64_t pair);

/* First and last day of the records of window 0 (0 if there are none). */
size_t rt_counts_day_range(const rt_count *rec, size_t n, int32_t *first, int32_t *last);

/* ---- drift (paper §2.1, Figure 3(b)) ------------------------------------ */

typedef struct rt_drift_stat {
  size_t pairs;   /* pairs with a set in both periods */
  double mean;    /* mean Jaccard over them (0 if none) */
  double variance;/* population variance (0 if none) */
} rt_drift_stat;

typedef struct rt_drift {
  int32_t n_periods;
  uint32_t k;
  size_t *period_pairs;  /* [n_periods]: pairs with a set */
  rt_drift_stat *steps;  /* [n_periods - 1]: period i -> i + 1 */
  rt_drift_stat overall; /* every step's Jaccard values pooled */
  size_t *overlap_pairs; /* [n_periods]: pairs with a set in period 0 and in p */
  double *overlap;       /* [n_periods * k]: [p*k + k'-1] = mean |top-k'(0) ∩ top-k'(p)| / k' */
} rt_drift;

/* |A ∩ B| / |A ∪ B| of two sets of distinct indices (1 if both are empty). */
double rt_jaccard(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb);
void rt_drift_compute(const rt_succ *s, rt_drift *d);
void rt_drift_free(rt_drift *d);

/* ---- fine-tuning samples (paper §2.2) ----------------------------------- */

typedef struct rt_ft_pick {
  uint64_t pair;
  uint32_t label;  /* dense index of the pair's most frequent successor */
  uint64_t total;  /* the pair's count in the period */
} rt_ft_pick;

typedef struct rt_ft_stats {
  size_t considered;      /* pairs with a label in the period */
  size_t picked;
  size_t skipped_cap;     /* pairs passed over because their label was at the cap */
  size_t labels_capped;   /* distinct labels that reached the cap */
  size_t distinct_labels; /* distinct labels among the picked samples */
  uint64_t cap;           /* samples allowed per label: ceil(cap_frac * max_pairs) */
} rt_ft_stats;

/* Samples allowed per label for --pairs N --cap-per-next F: ceil(F * N),
 * with a little slack so 0.02 * 5000 is 100, not 101. */
uint64_t rt_ft_cap(size_t max_pairs, double cap_frac);

/* Pick up to max_pairs pairs of `period` (the sets must come from k >= 1;
 * the label is the first successor), by total count descending, ties by
 * pair ascending, passing over a pair whose label already has `cap` samples.
 * *out is malloc'ed (NULL when none). */
void rt_ft_select(const rt_succ *s, int32_t period, size_t max_pairs, uint64_t cap, rt_ft_pick **out,
                  size_t *n_out, rt_ft_stats *st);

/* One JSONL line (no trailing newline, malloc'ed) of a sample: OpenAI chat
 * fine-tuning ({"messages": [system?, user, assistant]}) or Vertex AI Gemini
 * supervised tuning ({"systemInstruction"?, "contents": [user, model]}). The
 * system part is left out when system is "". NULL if a string is not valid
 * UTF-8 (jansson refuses it). */
char *rt_ft_openai_line(const char *system, const char *user, const char *label);
char *rt_ft_gemini_line(const char *system, const char *user, const char *label);

#endif
