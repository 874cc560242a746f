/* main.c — `ragtide COMMAND ...`: dispatch to the subcommands. */
#include "cmd/commands.h"
#include "base/err.h"
#include "base/util.h"
#include "format/config.h"

#include <ragtide/table.h>

#include <stdio.h>
#include <string.h>

#ifndef RAGTIDE_VERSION
#define RAGTIDE_VERSION "0.0.0"
#endif

static const rt_command COMMANDS[] = {
    {"refresh", rt_cmd_refresh, "run the refresh job (MPI): logs -> RAG prompts -> LLM -> table",
     "usage: mpirun -n N ragtide refresh --config FILE [--set section.key=value ...] [--no-cache] [--force]\n"
     "                                   [--dry-run]\n"
     "\n"
     "Reads the event shards in the refresh window, counts (c1, c2, c_next) triples, builds a RAG\n"
     "prompt for every pair with recent data, asks the LLM endpoint, matches the answers to the\n"
     "catalog and publishes the transition table atomically, with a JSON run summary.\n"
     "  --config FILE        INI configuration (see `ragtide help config`)\n"
     "  --set S.K=V          override one key (repeatable; --set=S.K=V too)\n"
     "  --no-cache           ignore cached answers from earlier runs; call the endpoint for every pair\n"
     "  --force              publish even over a table built from a window that ends later (exit 11 otherwise)\n"
     "  --dry-run            print the pairs it would ask, how many the journal answers, estimated tokens and\n"
     "                       cost; send and write nothing\n"
     "\n"
     "Resumable: killed or stopped (SIGTERM, SIGINT, SIGUSR1: exit 9), the same command resumes and pays\n"
     "no LLM call twice. One run per table (TABLE.lock; exit 10). docs/operations.md.\n",
     "--config --set --no-cache --force --dry-run"},
    {"aggregate", rt_cmd_aggregate, "count triples per pair and day into a counts file (MPI)",
     "usage: mpirun -n N ragtide aggregate --config FILE --out COUNTS [--format counts|tsv]\n"
     "                                     [--set section.key=value ...]\n"
     "\n"
     "Stages 1-5 of refresh: reads the event shards in the window and writes per-pair, per-day triple\n"
     "counts, for `input.counts`, `ragtide drift` and `ragtide export-finetune`.\n"
     "  --config FILE        INI configuration (see `ragtide help config aggregate`)\n"
     "  --out COUNTS         the counts file to write (replaced atomically)\n"
     "  --format tsv         write TSV (c1, c2, next, day, count) instead of the counts file\n"
     "                       (--format counts, the default: docs/formats.md §4)\n"
     "  --set S.K=V          override one key (repeatable; --set=S.K=V too)\n",
     "--config --out --format --set"},
    {"batches", rt_cmd_batches, "list (or cancel) a batch-mode refresh's provider batches",
     "usage: ragtide batches --config FILE [--set section.key=value ...] [--cancel] [--json]\n"
     "\n"
     "Every batch that a refresh with llm.api = openai-batch or gemini-batch recorded in its run\n"
     "directory (TABLE.run/batches-r*.jsonl), with its state as the provider reports it now.\n"
     "  --cancel             cancel every batch that has not ended (a rerun then sends its requests again)\n"
     "  --json               one JSON object per batch\n",
     "--config --set --cancel --json"},
    {"journal", rt_cmd_journal, "print the answer journal as JSON lines (key, day, answer)",
     "usage: ragtide journal dump JOURNAL\n"
     "One line per request answered: {\"key\": request hash, \"day\": when, \"answer\": text or null if\n"
     "forgotten (it named no cluster)}. Reads a copy: safe while a refresh runs.\n",
     ""},
    {"lookup", rt_cmd_lookup, "print the predictions for a pair of cluster ids",
     "usage: ragtide lookup [--json] [--catalog CATALOG] TABLE C1 C2\n"
     "\n"
     "Every candidate of the pair in rank order, with its provenance; with --catalog (the table's\n"
     "own catalog) also the clusters' keywords and the candidates' days.\n",
     "--json --catalog"},
    {"inspect", rt_cmd_inspect, "print a table's header and pairs per provenance",
     "usage: ragtide inspect [--json] TABLE\n", "--json"},
    {"validate", rt_cmd_validate, "check a table's checksum and structure",
     "usage: ragtide validate [--json] TABLE\n", "--json"},
    {"diff", rt_cmd_diff, "compare two tables pair by pair", "usage: ragtide diff [--json] A B\n", "--json"},
    {"export", rt_cmd_export, "write every pair of a table as TSV or JSONL",
     "usage: ragtide export [--format tsv|jsonl] [--catalog CATALOG] TABLE [OUT]\n"
     "\n"
     "Every candidate of every pair: c1, c2, rank, next, provenance, day; with --catalog (the\n"
     "table's own catalog) also the three clusters' keywords.\n",
     "--format --catalog"},
    {"merge", rt_cmd_merge, "overlay a RAG table on a base table", "usage: ragtide merge BASE OVERLAY OUT\n", ""},
    {"rollback", rt_cmd_rollback, "serve a kept table again, with its summary and contexts",
     "usage: ragtide rollback TABLE [--to N]\n"
     "       ragtide rollback --list TABLE\n"
     "\n"
     "Brings generation N (default 1: the previous table) back to the front, with its summary and\n"
     "contexts; the generations in front of it move down by one, so nothing is lost and a second\n"
     "`rollback` undoes the first. Refused (exit 10) while a refresh holds the table's lock.\n"
     "  --list    the kept generations: run id, created, window end, pairs predicted\n",
     "--to --list"},
    {"explain", rt_cmd_explain, "why a pair holds what it holds: context, prompt, answer, match",
     "usage: [mpirun -n N] ragtide explain --config F [TABLE] C1 C2 [--set section.key=value ...]\n"
     "\n"
     "Replays the refresh for one pair as a dry run (no lock, no endpoint call, nothing written),\n"
     "over the table's own window: the context retrieved (checked against TABLE.contexts), the\n"
     "prompt rendered, the answer the journal holds for that exact request, how it matches the\n"
     "catalog and the provenance that follows, beside the table's candidates. TABLE defaults to\n"
     "output.table. Reads the logs of the window (input.counts makes it quick).\n",
     "--config --set"},
    {"drift", rt_cmd_drift, "month-over-month stability of top-5 successors (Jaccard)",
     "usage: ragtide drift --counts COUNTS [--period month|week|Nd] [--k 5] [--min-count 1] [--json]\n"
     "\n"
     "The paper's stability measure (§2.1): for consecutive periods, the Jaccard similarity of each\n"
     "pair's top-k successor sets (mean and variance), and the top-k overlap of every period with\n"
     "the first (Figure 3b). COUNTS comes from `ragtide aggregate --out`. docs/data-tools.md.\n",
     "--counts --period --k --min-count --json"},
    {"export-finetune", rt_cmd_export_finetune, "write a fine-tuning set (OpenAI and Gemini JSONL)",
     "usage: ragtide export-finetune --config FILE --counts COUNTS --out DIR [--split-date YYYY-MM-DD]\n"
     "                               [--pairs 5000] [--cap-per-next 0.02] [--set section.key=value ...]\n"
     "\n"
     "The fine-tuning set of §2.2: [(c1, c2) -> c_next] samples rendered with the base prompt,\n"
     "as OpenAI chat and Vertex AI Gemini tuning JSONL, split into train and test by date.\n",
     "--config --counts --out --split-date --pairs --cap-per-next --set"},
    {"eval", rt_cmd_eval, "score a table on held-out logs against baselines (MPI)",
     "usage: mpirun -n N ragtide eval --table T --config F --from D1 --to D2 [--previous T2] [--json]\n"
     "                               [--set section.key=value ...]\n"
     "\n"
     "Replays the logs of [D1, D2) (input.logs, input.catalog and the sequence rules of F) through\n"
     "the stages refresh uses (plan, read, shuffle by user, sequence) and scores the table at every\n"
     "position of every held-out sequence: (c1, c2) = two consecutive clusters followed by at least\n"
     "one more. Reports next-1 accuracy, hit rate at eval.horizon (the prediction among the next H\n"
     "clusters), coverage, novelty (not already earlier in the sequence), the table's figures per\n"
     "provenance, and the same for the baselines on the same positions: `popular` (the most frequent\n"
     "next cluster before D1, other than c1 and c2), `history` (the pair's top successor over the\n"
     "days before the table's window), `previous` (T2, with --previous), each with its difference\n"
     "from the table. 95% intervals: bootstrap over users (eval.bootstrap resamples, eval.seed).\n"
     "The result does not depend on the rank or thread count. docs/eval.md defines every figure.\n"
     "  --json    one JSON object instead of the text tables\n",
     "--table --config --from --to --previous --json --set"},
    {"import", rt_cmd_import, "import a public data set (MovieLens) as a catalog and daily event shards",
     "usage: ragtide import movielens [--clusters genre-set|primary-genre] [--format msgpack.zst|tsv] DIR OUT\n"
     "\n"
     "Reads a MovieLens release from DIR — the CSV releases (ratings.csv, movies.csv: ml-latest-small,\n"
     "ml-25m, ...) or the 100K release (u.data, u.item, u.genre) — and writes OUT/catalog.tsv and one\n"
     "event shard per UTC day, OUT/logs/YYYY-MM-DD/part-0000.<format> (docs/formats.md §2.3).\n"
     "  --clusters genre-set     one cluster per distinct set of genres (the genres are its keywords); default\n"
     "  --clusters primary-genre one cluster per genre: a movie's first genre\n"
     "  --format F               msgpack.zst (default) or tsv\n"
     "An event is one rating: (userId, timestamp, the movie's cluster, engagement = rating / 5).\n"
     "Cluster ids are 1..N in the order of the sorted descriptions. Exit 3 names file:line of bad input.\n"
     "\n"
     "MovieLens data is (c) GroupLens, University of Minnesota, for non-commercial use; cite\n"
     "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and Context.\n"
     "ACM Transactions on Interactive Intelligent Systems (TiiS) 5(4):19.\n",
     "--clusters --format"},
};
#define NCOMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

const rt_command *rt_command_find(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(COMMANDS[i].name, name) == 0) return &COMMANDS[i];
  return NULL;
}

void rt_command_help(const rt_command *c) { fputs(c->usage, stdout); }

int rt_flag_value(int argc, char **argv, int *i, const char *name, const char **val, const char *cmd,
                  rt_err *err) {
  size_t n = strlen(name);
  const char *a = argv[*i];
  if (strncmp(a, name, n) != 0) return 0;
  if (a[n] == '=') {
    *val = a + n + 1;
    return 1;
  }
  if (a[n] != '\0') return 0;
  if (*i + 1 >= argc) {
    rt_err_set(err, RT_ERR_USAGE, "%s needs a value (see `ragtide help %s`)", name, cmd);
    return -1;
  }
  *val = argv[++*i];
  return 1;
}

/* Is `flag` one of the space-separated `flags`? */
static int has_flag(const char *flags, const char *flag, size_t n) {
  for (const char *p = flags; *p;) {
    size_t l = strcspn(p, " ");
    if (l == n && !strncmp(p, flag, n)) return 1;
    p += l;
    while (*p == ' ') p++;
  }
  return 0;
}

int rt_bad_arg(const char *cmd, const char *arg, rt_err *err) {
  const rt_command *c = rt_command_find(cmd);
  size_t n = strcspn(arg, "=");
  const char *more = arg[n] ? "=..." : "";
  if (arg[0] != '-' || !arg[1])
    return rt_err_set(err, RT_ERR_USAGE, "%s: unexpected argument \"%.*s%s\" (see `ragtide help %s`)", cmd, (int)n,
                      arg, more, cmd);
  /* another command's flag? */
  char owners[256] = "";
  size_t ol = 0;
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (&COMMANDS[i] != c && has_flag(COMMANDS[i].flags, arg, n) && ol < sizeof owners)
      ol += (size_t)snprintf(owners + ol, sizeof owners - ol, "%s%s", ol ? ", " : "", COMMANDS[i].name);
  if (ol)
    return rt_err_set(err, RT_ERR_USAGE, "%s: unknown flag \"%.*s%s\" (a flag of %s; see `ragtide help %s`)", cmd,
                      (int)n, arg, more, owners, cmd);
  /* the nearest of its own */
  char name[128], copy[512];
  snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name - 1 ? n : sizeof name - 1), arg);
  snprintf(copy, sizeof copy, "%s --help", c ? c->flags : "");
  const char *cand[32];
  size_t nc = 0;
  char *save = NULL;
  for (char *s = strtok_r(copy, " ", &save); s && nc < 32; s = strtok_r(NULL, " ", &save)) cand[nc++] = s;
  const char *near = rt_nearest(name, cand, nc);
  if (near)
    return rt_err_set(err, RT_ERR_USAGE, "%s: unknown flag \"%s%s\"; did you mean \"%s\"? (see `ragtide help %s`)",
                      cmd, name, more, near, cmd);
  return rt_err_set(err, RT_ERR_USAGE, "%s: unknown flag \"%s%s\" (see `ragtide help %s`)", cmd, name, more, cmd);
}

/* The command nearest to an unknown name, or NULL. */
static const char *nearest_command(const char *name) {
  const char *cand[NCOMMANDS + 4];
  size_t n = 0;
  for (size_t i = 0; i < NCOMMANDS; i++) cand[n++] = COMMANDS[i].name;
  cand[n++] = "help";
  cand[n++] = "config"; /* `help confg` */
  cand[n++] = "--version";
  cand[n++] = "--help";
  return rt_nearest(name, cand, n);
}

static int unknown_command(const char *what, const char *name) {
  const char *near = nearest_command(name);
  char h[128] = "";
  if (near) snprintf(h, sizeof h, "; did you mean \"%s\"?", near);
  fprintf(stderr, "ragtide: unknown %s \"%s\"%s (`ragtide help` lists them)\n", what, name, h);
  return RT_ERR_USAGE;
}

int rt_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
  }
  return 0;
}

static void usage(FILE *f) {
  fprintf(f, "ragtide %s — keeps an LLM interest-transition table fresh with RAG refreshes\n\n"
             "usage: ragtide COMMAND [ARGS]   (ragtide help COMMAND for details)\n\ncommands:\n",
          RAGTIDE_VERSION);
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-16s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
  fprintf(f, "  %-16s %s\n", "help", "help on a command, or `help config [COMMAND]` for the config keys");
  fprintf(f, "\nexit status: 0 ok, 1 internal, 2 usage/config, 3 input data, 4 endpoint,\n"
             "             5 quality gate, 6 output, 7 table invalid, 8 out of memory, 9 interrupted,\n"
             "             10 table locked, 11 stale window, 12 recall gate, 13 coverage gate\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return RT_ERR_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
    printf("ragtide %s (libragtide %s, table format %d.%d)\n", RAGTIDE_VERSION, ragtide_version_string(),
           RAGTIDE_FORMAT_MAJOR, RAGTIDE_FORMAT_MINOR);
    return RT_OK;
  }
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    usage(stdout);
    return RT_OK;
  }
  if (!strcmp(cmd, "help")) {
    if (argc < 3) {
      usage(stdout);
      return RT_OK;
    }
    if (!strcmp(argv[2], "config")) {
      if (argc > 3 && !strcmp(argv[3], "--names")) {
        rt_config_print_names(stdout);
        return RT_OK;
      }
      const char *only = argc > 3 ? argv[3] : NULL;
      if (only && strcmp(only, "refresh") && strcmp(only, "aggregate") && strcmp(only, "eval") &&
          strcmp(only, "export-finetune")) {
        fprintf(stderr, "ragtide: help config takes refresh, aggregate, eval or export-finetune, not \"%s\"\n", only);
        return RT_ERR_USAGE;
      }
      printf("Configuration keys (INI [section] key = value; override any with --set section.key=value).\n"
             "A value out of its range or choices is refused with file:line (or --set) and exit 2.\n\n");
      rt_config_print_keys(stdout, only);
      return RT_OK;
    }
    if (!strcmp(argv[2], "flags")) { /* for tests: every command's flags, "command flag" per line */
      for (size_t i = 0; i < NCOMMANDS; i++) {
        char copy[512];
        snprintf(copy, sizeof copy, "%s", COMMANDS[i].flags);
        char *save = NULL;
        for (char *s = strtok_r(copy, " ", &save); s; s = strtok_r(NULL, " ", &save))
          printf("%s %s\n", COMMANDS[i].name, s);
      }
      return RT_OK;
    }
    const rt_command *c = rt_command_find(argv[2]);
    if (!c) return unknown_command("command", argv[2]);
    rt_command_help(c);
    return RT_OK;
  }
  const rt_command *c = rt_command_find(cmd);
  if (!c) return unknown_command("command", cmd);
  if (rt_wants_help(argc - 1, argv + 1)) {
    rt_command_help(c);
    return RT_OK;
  }
  return c->fn(argc - 1, argv + 1);
}
