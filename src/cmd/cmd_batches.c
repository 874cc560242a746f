/* cmd_batches.c — `ragtide batches --config F [--cancel] [--json]`: the
 * provider batches a refresh in batch mode (llm.api = openai-batch |
 * gemini-batch) recorded in its run directory, with their states asked of
 * the provider; --cancel cancels those not ended. No MPI. */
#include "base/err.h"
#include "base/log.h"
#include "cmd/commands.h"
#include "format/config.h"
#include "llm/batch.h"

#include <stdio.h>
#include <string.h>

int rt_cmd_batches(int argc, char **argv) {
  const char *path = NULL;
  int cancel = 0, json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--config") && i + 1 < argc) path = argv[++i];
    else if (!strcmp(argv[i], "--set") && i + 1 < argc) i++;
    else if (!strcmp(argv[i], "--cancel")) cancel = 1;
    else if (!strcmp(argv[i], "--json")) json = 1;
    else {
      fprintf(stderr, "ragtide batches: unexpected argument \"%s\"; usage: ragtide batches --config FILE "
              "[--set s.k=v ...] [--cancel] [--json]\n", argv[i]);
      return RT_ERR_USAGE;
    }
  }
  if (!path) {
    fprintf(stderr, "ragtide batches: --config FILE is required\n");
    return RT_ERR_USAGE;
  }
  rt_config cfg;
  rt_err err = {0};
  int rc = rt_config_from_args(&cfg, path, argc, argv, &err);
  if (rc == RT_OK && !*cfg.table && !*cfg.run_dir)
    rc = rt_err_set(&err, RT_ERR_USAGE, "config: output.table (or output.run_dir) is required to find the batches");
  if (rc == RT_OK) rc = rt_batch_list(&cfg, cancel, json, &err);
  if (rc) fprintf(stderr, "ragtide batches: %s\n", err.msg);
  rt_config_free(&cfg);
  return rc;
}
