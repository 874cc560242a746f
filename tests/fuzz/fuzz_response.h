/* fuzz_response.h — the body of fuzz_openai and fuzz_gemini: the 200-response
 * parser (rt_llm_parse_response) and the error-body reader
 * (rt_llm_error_message) of src/llm/request.c. Input: one selector byte
 * (the llm.constrain mode), then the response body. */
#include "fuzz_common.h"
#include "llm/request.h"

static const char *const fz_constrain[3] = {"off", "json_schema", "guided_choice"};

static int fz_response(const char *api, int nmodes, const uint8_t *data, size_t size) {
  static rt_catalog cat;
  static rt_llm_reqfmt fmt[3];
  static int ready;
  if (!ready) {
    static const uint32_t ids[3] = {7, 3, 100};
    static const char *const desc[3] = {"jazz, piano", "hiking", "late night, radio"};
    rt_err e = {0};
    if (rt_catalog_build(ids, desc, 3, "fuzz", &cat, &e) != RT_OK) abort();
    for (int m = 0; m < nmodes; m++) {
      rt_config cfg;
      rt_config_defaults(&cfg);
      char set[64];
      snprintf(set, sizeof set, "llm.api=%s", api);
      if (rt_config_set(&cfg, set, &e) != RT_OK) abort();
      snprintf(set, sizeof set, "llm.constrain=%s", fz_constrain[m]);
      if (rt_config_set(&cfg, set, &e) != RT_OK) abort();
      if (rt_llm_reqfmt_init(&fmt[m], &cfg, &cat, &e) != RT_OK) abort();
      rt_config_free(&cfg);
    }
    ready = 1;
  }
  if (size < 1) return 0;
  int m = data[0] % nmodes;
  data++, size--;
  /* the client hands the parser a NUL-terminated buffer of len bytes */
  char *body = malloc(size + 1);
  memcpy(body, data, size);
  body[size] = '\0';
  char *text = NULL;
  rt_llm_usage usage;
  char why[256];
  why[0] = '\0';
  int rc = rt_llm_parse_response(&fmt[m], body, size, &text, &usage, why, sizeof why);
  if (rc == RT_OK) {
    if (!text) abort();
    (void)strlen(text);
    free(text);
  } else {
    if (rc != RT_ERR_ENDPOINT) abort();
    fz_check_msg(why, sizeof why);
  }
  char msg[300];
  rt_llm_error_message(body, size, msg, sizeof msg);
  fz_check_msg(msg, sizeof msg);
  free(body);
  return 0;
}
