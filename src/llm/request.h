/* request.h — the wire format of one LLM call: request bodies and response
 * parsing for the OpenAI chat-completions and Gemini generateContent APIs,
 * including constrained output (llm.constrain). No curl, no MPI: pure
 * bytes in, bytes out, so it is unit-tested field by field.
 *
 * The constraint (the catalog descriptions as an enum) is serialised ONCE per
 * client into a JSON fragment and spliced into every body: a 1000-cluster
 * enum is ~30 KB that must not be rebuilt per request. */
#ifndef RT_LLM_REQUEST_H
#define RT_LLM_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "format/catalog.h"
#include "format/config.h"

typedef enum { RT_LLM_API_OPENAI = 0, RT_LLM_API_GEMINI = 1 } rt_llm_api;
typedef enum {
  RT_LLM_CONSTRAIN_OFF = 0,
  RT_LLM_CONSTRAIN_JSON_SCHEMA,
  RT_LLM_CONSTRAIN_GUIDED_CHOICE
} rt_llm_constrain;

typedef struct rt_llm_reqfmt {
  rt_llm_api api;
  rt_llm_constrain constrain;
  char *model;
  double temperature;
  int64_t max_tokens;
  char *fragment;      /* ",\"response_format\":{...}" etc.; NULL when constrain = off */
  size_t fragment_len;
  /* The constant parts of every body, serialised once by jansson so a body is
   * a few memcpy's and one string escape instead of a json_t tree and a
   * json_dumps per request (~6 us). openai: head = {"model":M,"messages":[
   * and tail = ],"temperature":T,"max_tokens":K; gemini: head =
   * {"contents":[{"role":"user","parts":[{"text": and tail =
   * ,"generationConfig":{"temperature":T,"maxOutputTokens":K. */
  char *head, *tail;
  size_t head_len, tail_len;
  /* The same fragment in pieces, so a body can leave two clusters out of the
   * enum (the pair's c1 and c2) at the cost of three copies: frag_pre ends
   * just before the enum array, frag_post starts just after it; items holds
   * every description as a JSON string, each followed by ',' (the last
   * one's dropped), item i at items[item_off[i]], item_off[nitems] = the
   * length + 1. descs keeps the descriptions for the jansson reference. */
  char *frag_pre, *frag_post, *items;
  size_t pre_len, post_len;
  size_t *item_off;
  uint32_t nitems;
  char **descs;
} rt_llm_reqfmt;

typedef struct rt_llm_usage {
  int64_t prompt_tokens, completion_tokens; /* -1 when the response does not say */
} rt_llm_usage;

/* Set up the format from [llm] (api, model, temperature, max_tokens,
 * constrain) and the catalog (the enum). RT_ERR_USAGE for llm.api =
 * retrieval or a combination that does not exist (gemini + guided_choice),
 * RT_ERR_INPUT for an empty catalog with constrain on. */
int rt_llm_reqfmt_init(rt_llm_reqfmt *f, const rt_config *cfg, const rt_catalog *cat, rt_err *err);
void rt_llm_reqfmt_free(rt_llm_reqfmt *f);

/* The endpoint URL for this api: {base}/v1/chat/completions or
 * {base}/v1beta/models/{model}:generateContent (one trailing '/' of base
 * dropped). malloc'ed. */
char *rt_llm_endpoint_url(const rt_llm_reqfmt *f, const char *base_url);

/* Build the request body (malloc'ed, NUL-terminated, *len bytes). system may
 * be NULL; seed 0 is not sent. Deterministic: same inputs, same bytes, and
 * byte for byte what rt_llm_build_body_ref gives (the response-cache key is
 * a hash of these bytes). Strings that are not valid UTF-8 go out lossy
 * (bytes >= 0x80 as '?'), as jansson would refuse them. */
char *rt_llm_build_body(const rt_llm_reqfmt *f, const char *system, const char *user, int64_t seed, size_t *len);

/* The same, for a pair: with constrained output the enum leaves out the
 * clusters excl[0..nexcl) (dense catalog indices: the pair's c1 and c2, so
 * the answer is novel by construction). Indices out of range and repeats are
 * ignored; when nothing would be left, the whole enum goes out. nexcl = 0 is
 * rt_llm_build_body. */
char *rt_llm_build_body_ex(const rt_llm_reqfmt *f, const char *system, const char *user, int64_t seed,
                           const uint32_t *excl, int nexcl, size_t *len);
char *rt_llm_build_body_ref_ex(const rt_llm_reqfmt *f, const char *system, const char *user, int64_t seed,
                               const uint32_t *excl, int nexcl, size_t *len);

/* The same body built the slow, obvious way (a jansson tree and json_dumps):
 * the reference the spliced builder is tested against. */
char *rt_llm_build_body_ref(const rt_llm_reqfmt *f, const char *system, const char *user, int64_t seed,
                            size_t *len);

/* Parse a 200 response body into *text (malloc'ed, trimmed; for json_schema
 * + openai the "cluster" field when the content is such JSON) and *usage.
 * Returns RT_OK, or RT_ERR_ENDPOINT with a short reason in why (malformed
 * JSON at byte N, no choices, content not a string, ...). */
int rt_llm_parse_response(const rt_llm_reqfmt *f, const char *body, size_t len, char **text, rt_llm_usage *usage,
                          char *why, size_t why_cap);

/* The endpoint's own error message from an error body ({"error":{"message":
 * ...}} in both APIs), else the body's first bytes made printable; "" for an
 * empty body. Writes at most cap-1 bytes. */
void rt_llm_error_message(const char *body, size_t len, char *out, size_t cap);


#endif
