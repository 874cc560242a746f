/* prompt.h — stage 7: render each pair's prompt from a template file.
 *
 * Owns the template language (small on purpose; users edit templates under
 * jobs/prompts/ without touching code). A template is text with:
 *   ### system / ### user   lines that start the system or the user message
 *                           (without them, everything is the user message);
 *   {{c1}} {{c2}}           the descriptions of the pair's two clusters;
 *   {{retrieved}}           retrieved successors, one "- description" line each;
 *   {{popular}}             the most watched clusters in the window, same shape;
 *   {{examples}}            global granularity: top triples, "- a | b -> c" lines;
 *   {{#rag}} ... {{/rag}}   lines kept only when the pair has retrieved context
 *                           (prompt.mode = rag); likewise {{#popular}},
 *                           {{#examples}} keep their lines only when non-empty.
 * Block markers stand alone on their line. Anything else in {{ }} is an error
 * at load time with file:line, so a typo never reaches a million prompts. */
#ifndef RT_RAG_PROMPT_H
#define RT_RAG_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "format/catalog.h"

typedef struct rt_template {
  char *path;
  char *text;     /* whole file */
  uint64_t hash;  /* FNV-1a of the text: table header, cache keys */
} rt_template;

int rt_template_load(const char *path, rt_template *t, rt_err *err);
void rt_template_free(rt_template *t);

typedef struct rt_prompt_vars {
  const rt_catalog *cat;
  uint32_t c1, c2;              /* dense indices */
  const uint32_t *retrieved;    /* dense indices */
  size_t n_retrieved;
  const uint32_t *popular;
  size_t n_popular;
  const char *examples;         /* pre-rendered examples block ("" if none) */
} rt_prompt_vars;

/* Render both messages into malloc'ed strings (system may be "" when the
 * template has no system part). Never fails on a loaded template. */
void rt_prompt_render(const rt_template *t, const rt_prompt_vars *v, char **system, char **user);

#endif
