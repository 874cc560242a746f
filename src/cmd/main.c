/* main.c — `ragtide COMMAND ...`: dispatch to the subcommands. */
#include "cmd/commands.h"
#include "base/err.h"
#include "format/config.h"

#include <stdio.h>
#include <string.h>

#ifndef RAGTIDE_VERSION
#define RAGTIDE_VERSION "0.0.0"
#endif

static const rt_command COMMANDS[] = {
    {"refresh", rt_cmd_refresh, "run the refresh job (MPI): logs -> RAG prompts -> LLM -> table",
     "usage: mpirun -n N ragtide refresh --config FILE [--set section.key=value ...] [--no-cache] [--force]\n"
     "\n"
     "Reads the event shards in the refresh window, counts (c1, c2, c_next) triples, builds a RAG\n"
     "prompt for every pair with recent data, asks the LLM endpoint, matches the answers to the\n"
     "catalog and publishes the transition table atomically, with a JSON run summary.\n"
     "  --config FILE        INI configuration (see `ragtide help config`)\n"
     "  --set S.K=V          override one key (repeatable)\n"
     "  --no-cache           ignore cached answers from earlier runs; call the endpoint for every pair\n"
     "  --force              publish even over a table built from a window that ends later (exit 11 otherwise)\n"
     "\n"
     "Resumable: killed or stopped (SIGTERM, SIGINT, SIGUSR1: exit 9), the same command resumes and pays\n"
     "no LLM call twice. One run per table (TABLE.lock; exit 10). docs/operations.md.\n"},
    {"aggregate", rt_cmd_aggregate, "count triples per pair and day into a counts file (MPI)",
     "usage: mpirun -n N ragtide aggregate --config FILE --out COUNTS [--format tsv] [--set section.key=value ...]\n"
     "  --format tsv         write the counts as TSV instead of the counts file (docs/formats.md §4)\n"},
    {"batches", rt_cmd_batches, "list (or cancel) a batch-mode refresh's provider batches",
     "usage: ragtide batches --config FILE [--set section.key=value ...] [--cancel] [--json]\n"
     "\n"
     "Every batch that a refresh with llm.api = openai-batch or gemini-batch recorded in its run\n"
     "directory (TABLE.run/batches-r*.jsonl), with its state as the provider reports it now.\n"
     "  --cancel             cancel every batch that has not ended (a rerun then sends its requests again)\n"
     "  --json               one JSON object per batch\n"},
    {"journal", rt_cmd_journal, "print the answer journal as JSON lines (key, day, answer)",
     "usage: ragtide journal dump JOURNAL\n"
     "One line per request answered: {\"key\": request hash, \"day\": when, \"answer\": text or null if\n"
     "forgotten (it named no cluster)}. Reads a copy: safe while a refresh runs.\n"},
    {"lookup", rt_cmd_lookup, "print the prediction for a pair of cluster ids",
     "usage: ragtide lookup [--json] TABLE C1 C2\n"},
    {"inspect", rt_cmd_inspect, "print a table's header and pairs per provenance",
     "usage: ragtide inspect [--json] TABLE\n"},
    {"validate", rt_cmd_validate, "check a table's checksum and structure",
     "usage: ragtide validate [--json] TABLE\n"},
    {"diff", rt_cmd_diff, "compare two tables pair by pair", "usage: ragtide diff [--json] A B\n"},
    {"export", rt_cmd_export, "write every pair of a table as TSV or JSONL",
     "usage: ragtide export [--format tsv|jsonl] TABLE [OUT]\n"},
    {"merge", rt_cmd_merge, "overlay a RAG table on a base table", "usage: ragtide merge BASE OVERLAY OUT\n"},
    {"rollback", rt_cmd_rollback, "restore the previously published table",
     "usage: ragtide rollback TABLE\n"},
    {"drift", rt_cmd_drift, "month-over-month stability of top-5 successors (Jaccard)",
     "usage: ragtide drift --counts COUNTS [--period month|week|Nd] [--k 5] [--min-count 1] [--json]\n"
     "\n"
     "The paper's stability measure (§2.1): for consecutive periods, the Jaccard similarity of each\n"
     "pair's top-k successor sets (mean and variance), and the top-k overlap of every period with\n"
     "the first (Figure 3b). COUNTS comes from `ragtide aggregate --out`. docs/data-tools.md.\n"},
    {"export-finetune", rt_cmd_export_finetune, "write a fine-tuning set (OpenAI and Gemini JSONL)",
     "usage: ragtide export-finetune --config FILE --counts COUNTS --out DIR [--split-date YYYY-MM-DD]\n"
     "                               [--pairs 5000] [--cap-per-next 0.02] [--set section.key=value ...]\n"
     "\n"
     "The fine-tuning set of §2.2: [(c1, c2) -> c_next] samples rendered with the base prompt,\n"
     "as OpenAI chat and Vertex AI Gemini tuning JSONL, split into train and test by date.\n"},
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
     "  --json    one JSON object instead of the text tables\n"},
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
     "ACM Transactions on Interactive Intelligent Systems (TiiS) 5(4):19.\n"},
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
  fprintf(f, "  %-16s %s\n", "help", "help on a command, or `help config` for every config key");
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
    printf("ragtide %s (table format %d)\n", RAGTIDE_VERSION, 1);
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
      printf("Configuration keys (INI sections; override any with --set section.key=value):\n");
      rt_config_print_keys(stdout);
      return RT_OK;
    }
    const rt_command *c = rt_command_find(argv[2]);
    if (!c) {
      fprintf(stderr, "ragtide: no command \"%s\"; `ragtide help` lists them\n", argv[2]);
      return RT_ERR_USAGE;
    }
    rt_command_help(c);
    return RT_OK;
  }
  const rt_command *c = rt_command_find(cmd);
  if (!c) {
    fprintf(stderr, "ragtide: unknown command \"%s\"; `ragtide help` lists the commands\n", cmd);
    return RT_ERR_USAGE;
  }
  if (rt_wants_help(argc - 1, argv + 1)) {
    rt_command_help(c);
    return RT_OK;
  }
  return c->fn(argc - 1, argv + 1);
}
