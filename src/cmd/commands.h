/* commands.h — the `ragtide` subcommands. Each lives in its own file
 * (cmd_<name>.c), parses its own flags, answers --help, and returns an exit
 * status (rt_status). main.c only dispatches. */
#ifndef RT_CMD_COMMANDS_H
#define RT_CMD_COMMANDS_H

#include "base/err.h"

typedef int (*rt_cmd_fn)(int argc, char **argv);

typedef struct rt_command {
  const char *name;
  rt_cmd_fn fn;
  const char *summary;
  const char *usage; /* full help text */
  const char *flags; /* the flags it takes, space-separated (its help names each; usage.sh checks) */
} rt_command;

int rt_cmd_refresh(int argc, char **argv);
/* `ragtide explain --config F [TABLE] C1 C2`: stages 1–9 replayed for one pair (cmd_explain.c). */
int rt_cmd_explain(int argc, char **argv);
int rt_cmd_aggregate(int argc, char **argv);
int rt_cmd_lookup(int argc, char **argv);
int rt_cmd_inspect(int argc, char **argv);
int rt_cmd_validate(int argc, char **argv);
int rt_cmd_diff(int argc, char **argv);
int rt_cmd_export(int argc, char **argv);
int rt_cmd_merge(int argc, char **argv);
int rt_cmd_rollback(int argc, char **argv);
int rt_cmd_journal(int argc, char **argv);
int rt_cmd_drift(int argc, char **argv);
int rt_cmd_export_finetune(int argc, char **argv);
int rt_cmd_import(int argc, char **argv);
int rt_cmd_eval(int argc, char **argv);
int rt_cmd_batches(int argc, char **argv);

/* Look a command up by name; NULL if unknown. */
const rt_command *rt_command_find(const char *name);
/* Print a command's help (usage text) to stdout. */
void rt_command_help(const rt_command *c);
/* "--name V" or "--name=V" at argv[*i]: returns 1 with *val set (advancing
 * *i past V), 0 if argv[*i] is another flag, -1 with err set (RT_ERR_USAGE,
 * naming `cmd`) when the value is missing. */
int rt_flag_value(int argc, char **argv, int *i, const char *name, const char **val, const char *cmd,
                  rt_err *err);

/* An argument `cmd` does not take: RT_ERR_USAGE naming the flag (never its
 * value: it may be a secret) with the nearest flag of `cmd` ("did you mean"),
 * or the commands the flag belongs to. Returns RT_ERR_USAGE. */
int rt_bad_arg(const char *cmd, const char *arg, rt_err *err);

/* True if argv[1..] contains -h or --help. */
int rt_wants_help(int argc, char **argv);

#endif
